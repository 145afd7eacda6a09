"""Live per-model figures for `rvz models`, and drift against the canary.

The rendezvous feeds every score it logs into a ``StatsBook``. Recent scores are
kept in bounded deques (a sliding window by count, trimmed by age when read), so
memory stays flat however long the process runs; figures are computed only when
someone asks (ListModels, a metrics scrape, the periodic drift check). Recording
a score is on the hot path, so it only appends: a tuple of its timings, and its
output as received (labels and numbers are read from outputs at drift checks).

Drift: each model's recent outputs are compared with the canary's, the stable
reference, with the same figures as `rvz report`: labels (see ``extract``) use
the Jensen-Shannon distance between label frequencies (base 2), numbers the
two-sample Kolmogorov-Smirnov statistic (rvz.compare.distances: numpy, not scipy,
which the rendezvous does not load). Both are in [0, 1]: 0 is the same
distribution.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from google.protobuf import struct_pb2

from rvz.compare.distances import js_distance, ks_statistic
from rvz.compare.outputs import extract
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)

WINDOW_S = 60.0
MAX_RECENT = 10_000
# The recent outputs drift is measured on, per model. Reading labels and numbers out of them happens at
# each drift check, in the rendezvous's loop, which answers nothing meanwhile: enough outputs to resolve
# a useful difference in a KS statistic, few enough not to stall the loop.
MAX_OUTPUTS = 500
# Fewer outputs than this on either side: no divergence figure (-1).
MIN_OUTPUTS = 30
# Workers whose score totals a model keeps.
MAX_WORKERS = 1024
NO_FIGURE = -1.0

ModelKey = tuple[str, str, str]  # use case, model name, version


class Sample(NamedTuple):
    received_ns: int
    latency_ms: float  # NaN when the request's receipt time is unknown
    error: bool
    on_time: bool | None
    # The worker that sent it, for the figures of each replica of a model.
    worker_id: str = ""


@dataclass
class ModelRecord:
    role: str = ""
    recent: deque[Sample] = field(default_factory=lambda: deque(maxlen=MAX_RECENT))
    # The last outputs that were not errors.
    outputs: deque[struct_pb2.Value] = field(default_factory=lambda: deque(maxlen=MAX_OUTPUTS))
    scores_total: int = 0
    chosen_total: int = 0
    # Scores by worker id (replicas of the model, restarts), for each worker's own total.
    worker_totals: Counter[str] = field(default_factory=Counter)

    def labels_and_numbers(self) -> tuple[list[str], list[float]]:
        labels: list[str] = []
        numbers: list[float] = []
        for output in self.outputs:
            label, number = extract(output)
            if label is not None:
                labels.append(label)
            if number is not None and math.isfinite(number):
                numbers.append(number)
        return labels, numbers


@dataclass(frozen=True)
class Figures:
    scores_per_s: float
    error_rate: float
    latency_p50_ms: float
    latency_p99_ms: float
    on_time_pct: float
    scores_total: int
    times_chosen: int


class StatsBook:
    def __init__(self, drift_threshold: float) -> None:
        self.drift_threshold = drift_threshold
        self.models: dict[ModelKey, ModelRecord] = {}
        # Last computed divergence per model, for the metric and for crossing warnings.
        self.divergence: dict[ModelKey, float] = {}

    def on_score(self, score: envelope_pb2.ScoreEnvelope, received_ns: int, latency_ms: float,
                 on_time: bool | None) -> None:
        key = (score.use_case, score.model_name, score.model_version)
        record = self.models.get(key)
        if record is None:
            record = self.models[key] = ModelRecord()
        record.role = score.role
        record.scores_total += 1
        worker = score.worker_id
        record.worker_totals[worker] += 1
        if len(record.worker_totals) > MAX_WORKERS:  # workers come and go (restarts): keep the recent ones
            record.worker_totals = Counter(dict(record.worker_totals.most_common(MAX_WORKERS // 2)))
        error = bool(score.error)
        record.recent.append(Sample(received_ns, latency_ms, error, on_time, worker))
        if not error:
            record.outputs.append(score.output)

    def on_answer(self, use_case: str, model_name: str, version: str) -> None:
        record = self.models.get((use_case, model_name, version))
        if record is not None:
            record.chosen_total += 1

    def figures(self, key: ModelKey, now_ns: int, worker_id: str | None = None) -> Figures:
        """The model's figures over the window; with ``worker_id``, that worker's alone (``times_chosen`` is
        then -1: an answer is the model's, whichever replica scored it)."""
        record = self.models.get(key) or ModelRecord()
        since = now_ns - int(WINDOW_S * 1e9)
        recent = [s for s in record.recent if s.received_ns >= since and worker_id in (None, s.worker_id)]
        latencies = np.array([s.latency_ms for s in recent if not math.isnan(s.latency_ms)])
        judged = [s.on_time for s in recent if s.on_time is not None]
        p50, p99 = np.percentile(latencies, [50, 99]) if latencies.size else (math.nan, math.nan)
        return Figures(
            scores_per_s=len(recent) / WINDOW_S,
            error_rate=sum(s.error for s in recent) / len(recent) if recent else math.nan,
            latency_p50_ms=float(p50), latency_p99_ms=float(p99),
            on_time_pct=100.0 * sum(judged) / len(judged) if judged else math.nan,
            scores_total=record.scores_total if worker_id is None else record.worker_totals.get(worker_id, 0),
            times_chosen=record.chosen_total if worker_id is None else -1)

    def check_drift(self) -> dict[ModelKey, float]:
        """Recompute every model's divergence from its use case's canary; warn on crossings."""
        canaries = {key[0]: record for key, record in self.models.items() if record.role == "canary"}
        canary_outputs = {use_case: canary.labels_and_numbers() for use_case, canary in canaries.items()}
        for key, record in self.models.items():
            canary = canaries.get(key[0])
            value = (NO_FIGURE if canary is None or canary is record
                     else divergence(record.labels_and_numbers(), canary_outputs[key[0]]))
            self._note(key, value)
        return self.divergence

    def _note(self, key: ModelKey, value: float) -> None:
        before = self.divergence.get(key, NO_FIGURE)
        self.divergence[key] = value
        if value > self.drift_threshold >= before:
            logger.warning("model %s v%s of use case %r drifted from the canary: divergence %.3f > %.3f",
                           key[1], key[2], key[0], value, self.drift_threshold,
                           extra={"use_case": key[0], "model": key[1]})
        elif before > self.drift_threshold >= value >= 0:
            logger.info("model %s v%s of use case %r is back within %.3f of the canary (%.3f)",
                        key[1], key[2], key[0], self.drift_threshold, value)


def divergence(model: tuple[list[str], list[float]], canary: tuple[list[str], list[float]]) -> float:
    """Distance of a model's (labels, numbers) from the canary's: labels first, else numbers, else -1."""
    (labels, numbers), (canary_labels, canary_numbers) = model, canary
    if len(labels) >= MIN_OUTPUTS and len(canary_labels) >= MIN_OUTPUTS:
        return label_distance(Counter(labels), Counter(canary_labels))
    if len(numbers) >= MIN_OUTPUTS and len(canary_numbers) >= MIN_OUTPUTS:
        return ks_statistic(numbers, canary_numbers)
    return NO_FIGURE


def label_distance(a: Counter[str], b: Counter[str]) -> float:
    labels = sorted(a.keys() | b.keys())
    return js_distance([a[k] for k in labels], [b[k] for k in labels])
