"""One Admin reply from the replies of several rendezvous (``streams.rendezvous_processes``).

Every rendezvous carries out every Admin change, so a change's replies agree: the first (lowest index)
stands for all, and a refusal by any of them is the answer. ListModels is different: each rendezvous
knows every worker (workers announce themselves to all) but the figures of its own share of the
requests only. The merged list has one row per worker and one total per model, with:

- counts summed (scores, times chosen, what a replica holds or missed; a worker's own count of what it
  missed on the requests stream is the same in every reply, so it is taken once);
- rates summed (scores/s), ratios and latencies averaged, weighted by each share's scores: an
  approximation for percentiles (p50, p99 of the whole are not the mean of the shares' p50, p99), close
  when the shares are alike, as the frontends' even split makes them;
- for each use case, the latest Admin change any of them reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from rvz.wire.proto import admin_pb2, envelope_pb2

NO_FIGURE = -1.0
Row = TypeVar("Row", admin_pb2.ModelStatus, admin_pb2.ModelTotals)


def merge_replies(replies: Sequence[envelope_pb2.AdminReply]) -> envelope_pb2.AdminReply:
    """The reply of one Admin call answered by every rendezvous in ``replies`` (in index order; not empty)."""
    if len(replies) == 1:
        return replies[0]
    refused = next((r for r in replies if r.status_code), None)
    if refused is not None:
        return refused
    first = replies[0]
    if first.WhichOneof("reply") != "models":
        return first
    merged = envelope_pb2.AdminReply(call_id=first.call_id)
    merged.models.CopyFrom(merge_model_lists([r.models for r in replies]))
    return merged


def merge_model_lists(lists: Sequence[admin_pb2.ListModelsResponse]) -> admin_pb2.ListModelsResponse:
    """One ListModelsResponse from several rendezvous' (see the module for the rules)."""
    merged = admin_pb2.ListModelsResponse()
    merged.models.extend(_merge_rows([r for part in lists for r in part.models], lambda m: m.worker_id,
                                     _merge_statuses))
    merged.totals.extend(_merge_rows([t for part in lists for t in part.totals],
                                     lambda t: f"{t.use_case}\0{t.name}\0{t.version}", _merge_totals))
    for part in lists:
        for use_case, change in part.last_changes.items():
            if use_case not in merged.last_changes or change.unix_ns > merged.last_changes[use_case].unix_ns:
                merged.last_changes[use_case].CopyFrom(change)
    return merged


def _merge_rows(rows: list[Row], key: Callable[[Row], str], merge: Callable[[list[Row]], Row]) -> list[Row]:
    """Rows grouped by ``key`` (in the order each key is first seen), each group merged into one."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return [group[0] if len(group) == 1 else merge(group) for group in groups.values()]


def _merge_statuses(rows: list[admin_pb2.ModelStatus]) -> admin_pb2.ModelStatus:
    merged = admin_pb2.ModelStatus()
    merged.CopyFrom(next((r for r in rows if r.live), rows[0]))  # names, role, pid: the same in every reply
    weights = [max(r.scores_total, 0) for r in rows]
    merged.live = any(r.live for r in rows)
    merged.last_heartbeat_age_s = min(r.last_heartbeat_age_s for r in rows)
    merged.scores_per_s = _sum(r.scores_per_s for r in rows)
    merged.times_chosen = int(_sum(r.times_chosen for r in rows))
    merged.scores_total = int(_sum(r.scores_total for r in rows))
    merged.outstanding = sum(r.outstanding for r in rows)
    # A replica's missed are the requests each rendezvous gave it and it never scored; another worker's are
    # its own count of the stream, reported alike by every rendezvous.
    merged.missed_total = sum(r.missed_total for r in rows) if merged.shared else max(r.missed_total for r in rows)
    merged.replicas = max(r.replicas for r in rows)
    merged.restarts = max(r.restarts for r in rows)
    for name in ("error_rate", "latency_p50_ms", "latency_p99_ms", "on_time_pct", "divergence"):
        setattr(merged, name, _weighted([getattr(r, name) for r in rows], weights))
    return merged


def _merge_totals(rows: list[admin_pb2.ModelTotals]) -> admin_pb2.ModelTotals:
    merged = admin_pb2.ModelTotals()
    merged.CopyFrom(rows[0])
    weights = [max(r.scores_total, 0) for r in rows]
    merged.replicas = max(r.replicas for r in rows)
    merged.scores_per_s = _sum(r.scores_per_s for r in rows)
    merged.scores_total = int(_sum(r.scores_total for r in rows))
    merged.missed_total = int(_sum(r.missed_total for r in rows))
    merged.times_chosen = int(_sum(r.times_chosen for r in rows))
    merged.latency_p50_ms = _weighted([r.latency_p50_ms for r in rows], weights)
    merged.latency_p99_ms = _weighted([r.latency_p99_ms for r in rows], weights)
    return merged


def _sum(values: Iterable[float]) -> float:
    """The sum of the figures that are not NO_FIGURE (-1); NO_FIGURE when none is."""
    present = [v for v in values if v >= 0]
    return sum(present) if present else NO_FIGURE


def _weighted(values: list[float], weights: list[int]) -> float:
    """The mean of the figures that are not NO_FIGURE, weighted by ``weights`` (plain when they are all 0)."""
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if v >= 0]
    if not pairs:
        return NO_FIGURE
    total = sum(w for _, w in pairs)
    if total == 0:
        return sum(v for v, _ in pairs) / len(pairs)
    return sum(v * w for v, w in pairs) / total
