"""Small models for the tests, importable by workers (the harness puts tests/ on PYTHONPATH)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar


def echo(features: dict[str, Any]) -> dict[str, Any]:
    return {"x": features.get("x"), "by": os.environ.get("RVZ_TEST_TAG", "echo")}


def slow(features: dict[str, Any]) -> dict[str, Any]:
    """Answers after RVZ_TEST_DELAY_MS (default 80) milliseconds."""
    return slow_by(float(os.environ.get("RVZ_TEST_DELAY_MS", "80")))(features)


def slow_by(delay_ms: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """slow with a delay of its own: RVZ_TEST_DELAY_MS for a model in a thread of the test process."""
    def answer(features: dict[str, Any]) -> dict[str, Any]:
        time.sleep(delay_ms / 1000)
        return {"x": features.get("x"), "by": "slow"}

    return answer


def fragile(features: dict[str, Any]) -> dict[str, Any]:
    """Raises on negative x: a model bug the worker must survive."""
    if features.get("x", 0) < 0:
        raise ValueError("x must not be negative")
    return {"x": features["x"], "by": "fragile"}


def unencodable(features: dict[str, Any]) -> Any:
    return object()


async def async_echo(features: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"x": features.get("x"), "by": "async"}


class Batcher:
    """Uses predict_batch and reports the batch size it saw."""

    features: ClassVar[dict[str, str]] = {"x": "number"}

    def predict_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"x": f["x"], "by": "batch", "batch": len(batch)} for f in batch]


class Typed:
    """Declares its features, so the frontend validates requests against them."""

    features: ClassVar[dict[str, str]] = {"x": "number", "name": "string"}

    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        return {"x": features["x"], "by": "typed"}


def numeric(features: dict[str, Any]) -> float:
    """Returns the feature v, shifted by RVZ_TEST_SHIFT: a model whose distribution can drift."""
    return shifted(float(os.environ.get("RVZ_TEST_SHIFT", "0")))(features)


def shifted(shift: float) -> Callable[[dict[str, Any]], float]:
    """numeric with a shift of its own: RVZ_TEST_SHIFT for a model in a thread of the test process."""
    return lambda features: float(features["v"]) + shift


def hang(features: dict[str, Any]) -> dict[str, Any]:
    """Blocks forever on its first request: a hung challenger (stop it with SIGKILL)."""
    threading.Event().wait()
    return {}


def big(features: dict[str, Any]) -> dict[str, Any]:
    """A champion whose outputs are RVZ_TEST_OUTPUT_BYTES (default 10 MB) long."""
    return {"blob": "x" * int(os.environ.get("RVZ_TEST_OUTPUT_BYTES", str(10 * 1024 * 1024)))}


def exits(features: dict[str, Any]) -> dict[str, Any]:
    """Calls sys.exit on negative x, as a buggy model might."""
    if features.get("x", 0) < 0:
        sys.exit(1)
    return {"x": features.get("x"), "by": "exits"}


class NeedsGlucose:
    """Declares a feature the callers do not send."""

    features: ClassVar[dict[str, str]] = {"glucose": "number"}

    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        return {"x": features["glucose"], "by": "glucose"}
