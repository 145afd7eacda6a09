"""Three cheap model callables, so what `scripts/bench` measures is the serving layer, not the models.

Workers and servers load them as ``bench_systems.models:NAME`` (scripts/ is put on PYTHONPATH).
"""

from __future__ import annotations

import time
from typing import Any

# The late champion's delay: longer than the 30 ms champion window, shorter than the 100 ms deadline.
LATE_MS = 50.0
# The I/O-bound model's wait per request (scripts/bench --scale).
IO_MS = 10.0


def _total(features: dict[str, Any]) -> float:
    return sum(float(v) for v in features.values() if isinstance(v, int | float) and not isinstance(v, bool))


def champion(features: dict[str, Any]) -> dict[str, Any]:
    total = _total(features)
    return {"score": round(0.1 * total + 0.05, 6), "label": "high" if total > 10 else "low"}


def challenger(features: dict[str, Any]) -> dict[str, Any]:
    total = _total(features)
    return {"score": round(0.12 * total, 6), "label": "high" if total > 9 else "low"}


def canary(features: dict[str, Any]) -> dict[str, Any]:
    """A fixed rule that never changes: the stable baseline."""
    return {"score": 0.5, "label": "low"}


class LateChampion:
    """The champion, always LATE_MS late: every batch waits once, so the worker never falls behind."""

    def predict_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        time.sleep(LATE_MS / 1000)
        return [champion(features) for features in batch]


def io_bound(features: dict[str, Any]) -> dict[str, Any]:
    """The champion after 10 ms of waiting (a remote feature store, an accelerator): `--scale`'s model."""
    time.sleep(IO_MS / 1000)
    return champion(features)
