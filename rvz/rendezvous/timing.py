"""When each live score arrived, relative to its request: for `rvz models` and the latency metric."""

from __future__ import annotations

import math
from collections.abc import Callable

from opentelemetry.metrics import Histogram

from rvz.rendezvous.live_stats import StatsBook
from rvz.rendezvous.policy import Policy
from rvz.wire.proto import envelope_pb2


class ScoreTiming:
    """Feeds the StatsBook each live score's latency and on-time-ness, and the latency histogram."""

    def __init__(self, stats: StatsBook, policy_for: Callable[[str], Policy],
                 latency: Histogram | None = None) -> None:
        self.stats = stats
        self.policy_for = policy_for
        self.latency = latency
        # (use case, policy version, role, model) -> end of the first window accepting it, in ns (or None).
        self._on_time_ns: dict[tuple[str, int, str, str], int | None] = {}

    def note(self, score: envelope_pb2.ScoreEnvelope, received_ns: int, request_received_ns: int | None) -> None:
        """Record one live (not replayed) score; ``request_received_ns`` is None when its request is unknown."""
        if request_received_ns is None:
            self.stats.on_score(score, received_ns, math.nan, None)
            return
        since_request_ns = received_ns - request_received_ns
        window_end = self._window_end_ns(score)
        on_time = None if window_end is None else since_request_ns <= window_end
        latency_ms = since_request_ns / 1e6
        self.stats.on_score(score, received_ns, latency_ms, on_time)
        if self.latency is not None:
            self.latency.record(latency_ms, {"use_case": score.use_case, "model": score.model_name,
                                             "role": score.role})

    def _window_end_ns(self, score: envelope_pb2.ScoreEnvelope) -> int | None:
        policy = self.policy_for(score.use_case)
        key = (score.use_case, policy.version, score.role, score.model_name)
        if key not in self._on_time_ns:
            self._on_time_ns[key] = policy.acceptance_end_ns(score.role, score.model_name)
        return self._on_time_ns[key]
