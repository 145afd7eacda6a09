"""Which models are live, from the announces they send in answer to probes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rvz.wire.proto import envelope_pb2


@dataclass
class Sighting:
    info: envelope_pb2.ModelInfo
    last_seen_ns: int


class ModelRegistry:
    """Models by use case and worker id; a model unheard for ``timeout_ms`` is gone."""

    def __init__(self, timeout_ms: float) -> None:
        self.timeout_ns = int(timeout_ms * 1e6)
        self._by_use_case: dict[str, dict[str, Sighting]] = {}

    def saw(self, info: envelope_pb2.ModelInfo, now: int) -> bool:
        """Record an announce; True when the model is new or back after being gone."""
        workers = self._by_use_case.setdefault(info.use_case, {})
        sighting = workers.get(info.worker_id)
        if sighting is None:
            workers[info.worker_id] = Sighting(info, now)
            return True
        was_gone = now - sighting.last_seen_ns > self.timeout_ns
        sighting.info, sighting.last_seen_ns = info, now
        return was_gone

    def known(self, use_case: str) -> bool:
        """Has any model ever announced this use case?"""
        return use_case in self._by_use_case

    def use_cases(self) -> list[str]:
        return sorted(self._by_use_case)

    def sightings(self, use_case: str) -> list[Sighting]:
        """Every model ever seen for the use case, live or gone."""
        return list(self._by_use_case.get(use_case, {}).values())

    def live(self, use_case: str, now: int | None = None) -> list[envelope_pb2.ModelInfo]:
        now = time.time_ns() if now is None else now
        return [s.info for s in self._by_use_case.get(use_case, {}).values()
                if now - s.last_seen_ns <= self.timeout_ns]

    def live_count(self, use_case: str) -> int:
        """Live models that can answer (decoys never do): replicas of one model count once."""
        return len({(info.name, info.version) for info in self.live(use_case) if info.role != "decoy"})

    def last_seen_ns(self, use_case: str) -> int:
        return max((s.last_seen_ns for s in self._by_use_case.get(use_case, {}).values()), default=0)
