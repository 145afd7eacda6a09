"""What the client sends and returns: requests built from Python values, answers as dataclasses.

Figures a server does not have (no recent scores, no canary, a worker that is gone) are None, never a
sentinel number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format, struct_pb2

from rvz.errors import ConfigError
from rvz.security.audit import describe
from rvz.wire.codec import python_to_value, value_to_python
from rvz.wire.proto import admin_pb2, scoring_pb2

# The Admin API sends -1 for "no data" (a double has no null): read back as None.
NO_FIGURE = -1.0


@dataclass(frozen=True)
class Answer:
    """A Score call's answer (``ScoreResponse``), with the output as a Python value."""

    request_id: str
    output: Any
    model_name: str
    model_version: str
    role: str
    is_default: bool
    rule: str
    elapsed_ms: float
    use_case: str


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``models()``: a model worker, its role and its recent figures (None: no data)."""

    use_case: str
    name: str
    version: str
    role: str
    started_role: str
    worker_id: str
    pid: int
    host: str
    live: bool
    last_heartbeat_age_s: float
    window_s: float
    scores_per_s: float | None
    error_rate: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    on_time_pct: float | None
    divergence: float | None
    times_chosen: int | None
    scores_total: int | None
    # Requests this worker never received (its queue was full), and times `rvz up` restarted it.
    missed_total: int = 0
    restarts: int = 0
    # Live workers of its model; whether it is a replica (takes a share of the model's requests), and the
    # requests it holds, given and not scored yet.
    replicas: int = 1
    shared: bool = False
    outstanding: int = 0


@dataclass(frozen=True)
class ModelTotals:
    """A model's figures over all its workers (replicas) in ``models()``'s ``totals`` (None: no data)."""

    use_case: str
    name: str
    version: str
    replicas: int
    scores_per_s: float | None
    scores_total: int
    missed_total: int
    times_chosen: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


@dataclass(frozen=True)
class PolicyState:
    """A use case's policy: ``policy`` is the `[rendezvous]` table (deadline_ms, schedule, ...)."""

    use_case: str
    version: int
    policy: dict[str, Any]
    # The last Admin change of this use case's policy or roles, for a person ("" if none).
    last_change: str = ""


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` did: ``champion`` is the champion now, ``demoted`` the old one ("" if none)."""

    use_case: str
    champion: str
    demoted: str


ROLE_ORDER = {"champion": 0, "challenger": 1, "canary": 2, "decoy": 3}


def score_request(features: Mapping[str, Any], use_case: str) -> scoring_pb2.ScoreRequest:
    request = scoring_pb2.ScoreRequest(use_case=use_case)
    request.features.update(dict(features))
    return request


def answer_of(response: scoring_pb2.ScoreResponse) -> Answer:
    return Answer(response.request_id, value_to_python(response.output), response.model_name,
                  response.model_version, response.role, response.is_default, response.rule, response.elapsed_ms,
                  response.use_case)


def truth_message(request_id: str, truth: Any) -> scoring_pb2.Truth:
    """A Truth; ``truth`` is a label, a number, a dict holding one, or a ``google.protobuf.Value``."""
    message = scoring_pb2.Truth(request_id=request_id)
    if isinstance(truth, struct_pb2.Value):
        message.truth.CopyFrom(truth)
    else:
        python_to_value(truth, message.truth, "truth")
    return message


def truth_batches(truths: Iterable[tuple[str, Any]], size: int) -> Iterable[scoring_pb2.TruthBatch]:
    batch = scoring_pb2.TruthBatch()
    for request_id, truth in truths:
        batch.truths.append(truth_message(request_id, truth))
        if len(batch.truths) == size:
            yield batch
            batch = scoring_pb2.TruthBatch()
    if batch.truths:
        yield batch


class ModelList(list[ModelStatus]):
    """``models()``'s rows (one per worker), the last Admin change of each use case listed (who, what, when),
    if any, and each model's totals over its workers."""

    def __init__(self, rows: list[ModelStatus], last_changes: dict[str, str],
                 totals: list[ModelTotals] | None = None) -> None:
        super().__init__(rows)
        self.last_changes = last_changes
        self.totals = totals or []

    def totals_of(self, use_case: str, name: str, version: str) -> ModelTotals | None:
        return next((t for t in self.totals if (t.use_case, t.name, t.version) == (use_case, name, version)), None)


def models_of(response: admin_pb2.ListModelsResponse) -> ModelList:
    """The rows in a stable order (use case, role, name, version, live first); a gone worker has no
    figures, and only the latest gone worker of a model is kept."""
    rows = sorted((_status(m) for m in response.models), key=lambda m: (
        m.use_case, ROLE_ORDER.get(m.role, 4), m.name, m.version, not m.live, m.last_heartbeat_age_s))
    seen_gone: set[tuple[str, str, str]] = set()
    kept = []
    for row in rows:
        key = (row.use_case, row.name, row.version)
        if not row.live:
            if key in seen_gone:
                continue
            seen_gone.add(key)
        kept.append(row)
    totals = [ModelTotals(t.use_case, t.name, t.version, t.replicas, _figure(t.scores_per_s, True), t.scores_total,
                          t.missed_total, t.times_chosen, _figure(t.latency_p50_ms, True),
                          _figure(t.latency_p99_ms, True)) for t in response.totals]
    return ModelList(kept, {use_case: describe(change) for use_case, change in sorted(response.last_changes.items())},
                     totals)


def _status(m: admin_pb2.ModelStatus) -> ModelStatus:
    live = m.live
    return ModelStatus(
        use_case=m.use_case, name=m.name, version=m.version, role=m.role, started_role=m.started_role,
        worker_id=m.worker_id, pid=m.pid, host=m.host, live=live, last_heartbeat_age_s=m.last_heartbeat_age_s,
        window_s=m.window_s, scores_per_s=_figure(m.scores_per_s, live), error_rate=_figure(m.error_rate, live),
        latency_p50_ms=_figure(m.latency_p50_ms, live), latency_p99_ms=_figure(m.latency_p99_ms, live),
        on_time_pct=_figure(m.on_time_pct, live), divergence=_figure(m.divergence, live),
        times_chosen=m.times_chosen if live and m.times_chosen >= 0 else None,
        scores_total=m.scores_total if live and m.scores_total >= 0 else None, missed_total=m.missed_total,
        restarts=m.restarts, replicas=m.replicas, shared=m.shared, outstanding=m.outstanding)


def _figure(value: float, live: bool) -> float | None:
    return value if live and value != NO_FIGURE and math.isfinite(value) else None


def policy_state_of(state: admin_pb2.PolicyState) -> PolicyState:
    return PolicyState(state.use_case, state.version, policy_table(state.policy),
                       describe(state.last_change) if state.HasField("last_change") else "")


def policy_table(p: admin_pb2.Policy) -> dict[str, Any]:
    """The API's Policy as the `[rendezvous]` table a config file holds."""
    table: dict[str, Any] = {"deadline_ms": p.deadline_ms, "on_timeout": p.on_timeout,
                             "early_score_ms": p.early_score_ms}
    if p.HasField("default_output"):
        table["default_output"] = value_to_python(p.default_output)
    table["schedule"] = [{"until_ms": w.until_ms, "accept": list(w.accept)} for w in p.schedule]
    return table


def policy_message(table: Mapping[str, Any]) -> admin_pb2.Policy:
    """A `[rendezvous]` table as the API's Policy; the rendezvous validates it (with precise messages).
    Raises ``ConfigError`` when the table does not even have the Policy's shape."""
    policy = admin_pb2.Policy()
    try:
        json_format.ParseDict({k: v for k, v in table.items() if k != "default_output"}, policy)
    except json_format.ParseError as e:
        raise ConfigError(f"policy: {e}") from e
    if "default_output" in table:
        python_to_value(table["default_output"], policy.default_output, "default_output")
    return policy
