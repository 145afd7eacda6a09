"""Models for the fault matrix, switched by files in RVZ_CHAOS_DIR so a fault can start mid-run."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_DIR = Path(os.environ.get("RVZ_CHAOS_DIR", "/nonexistent"))
Model = Callable[[dict[str, Any]], dict[str, Any]]


def switchable(name: str) -> Model:
    """A model that answers at once; hangs forever once RVZ_CHAOS_DIR/hang-NAME exists, returns 10 MB
    outputs once big-NAME exists, calls sys.exit once exit-NAME exists."""

    def predict(features: dict[str, Any]) -> dict[str, Any]:
        if (_DIR / f"hang-{name}").exists():
            threading.Event().wait()
        if (_DIR / f"big-{name}").exists():
            return {"blob": "x" * (10 * 1024 * 1024)}
        if (_DIR / f"exit-{name}").exists():
            sys.exit(1)
        return {"score": float(features.get("x", 0.0)), "by": name, "at": time.time()}

    return predict


champion = switchable("champion")
challenger = switchable("challenger")
canary = switchable("canary")
other = switchable("other")


class Glucose:
    """Declares a feature the callers never send."""

    features = {"glucose": "number"}  # noqa: RUF012 - the declaration rvz reads

    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        return {"score": features["glucose"]}
