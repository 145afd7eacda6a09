"""Loading a user's model from ``MODULE:ATTR`` and calling it uniformly.

A model is any of:
- a function ``f(features: dict) -> JSON-like`` (``async def`` works too);
- an object with ``predict(features)`` (sync or async), and optionally
  ``predict_batch(list_of_features) -> list`` which is preferred when present;
- a class with such methods, instantiated once with no arguments.

A model may declare the features it expects with a ``features`` attribute:
a list of names, or a dict of name -> "number" | "string" | "bool" | "any".
The frontend then rejects requests that do not match, with a precise message.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rvz.errors import ModelLoadError

logger = logging.getLogger(__name__)

FEATURE_TYPES = ("number", "string", "bool", "any")
# What models return, none of it awaitable.
_PLAIN = frozenset((dict, list, tuple, float, int, str, bool, type(None)))


@runtime_checkable
class Predictor(Protocol):
    def predict(self, features: dict[str, Any]) -> Any: ...


@runtime_checkable
class BatchPredictor(Protocol):
    def predict_batch(self, batch: list[dict[str, Any]]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Outcome:
    """What one call of the model gave for one request."""

    output: Any = None
    error: BaseException | None = None


class Model:
    """A loaded model with one calling convention: ``score(batch) -> outcomes``."""

    def __init__(self, target: Any, entry: str) -> None:
        self.entry = entry
        self.features = declared_features(target, entry)
        self._batch_fn: Callable[[list[dict[str, Any]]], Any] | None = None
        self._fn: Callable[[dict[str, Any]], Any]
        if isinstance(target, BatchPredictor):
            self._batch_fn = target.predict_batch
        if isinstance(target, Predictor):
            self._fn = target.predict
        elif callable(target):
            self._fn = target
        elif self._batch_fn is None:
            raise ModelLoadError(f"{entry}: {type(target).__name__} is not callable and has no "
                                 "predict() or predict_batch() method")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def batches(self) -> bool:
        return self._batch_fn is not None

    def score(self, batch: list[dict[str, Any]]) -> list[Outcome]:
        """Score a batch; an exception fails only the requests it concerns."""
        if self._batch_fn is not None:
            try:
                outputs = self._resolve(self._batch_fn(batch))
            except BaseException as e:  # SystemExit, KeyboardInterrupt too: a model never stops its worker
                return [Outcome(error=e)] * len(batch)
            if _length(outputs) != len(batch):
                error = TypeError(f"predict_batch returned {_describe(outputs)} for {len(batch)} requests; "
                                  "it must return one output per request")
                return [Outcome(error=error)] * len(batch)
            return [Outcome(output=output) for output in outputs]
        return [self._score_one(features) for features in batch]

    def _score_one(self, features: dict[str, Any]) -> Outcome:
        try:
            return Outcome(output=self._resolve(self._fn(features)))
        except BaseException as e:  # SystemExit, KeyboardInterrupt too: a model never stops its worker
            return Outcome(error=e)

    def _resolve(self, result: Any) -> Any:
        if type(result) in _PLAIN:  # inspect.isawaitable's ABC check costs more than most models here
            return result
        # Async models run on a private loop owned by this worker process.
        if inspect.isawaitable(result):
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            return self._loop.run_until_complete(_await(result))
        return result

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()
            self._loop = None


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _length(value: Any) -> int | None:
    """len() of a list, tuple or numpy array; None for anything that is not a sized iterable."""
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        return None
    try:
        return len(value)
    except TypeError:
        return None


def _describe(value: Any) -> str:
    try:
        return f"{type(value).__name__} of length {len(value)}"
    except TypeError:
        return type(value).__name__


def load_model(entry: str) -> Model:
    """Import ``MODULE:ATTR`` (the current directory is importable, as with uvicorn)."""
    module_name, _, attr_path = entry.partition(":")
    if not module_name or not attr_path:
        raise ModelLoadError(f"entry {entry!r} must be MODULE:ATTR, e.g. mypkg.models:predict")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ModelLoadError(f"cannot import module {module_name!r} for entry {entry!r}: {e}") from e
    except (Exception, SystemExit) as e:  # the user's module failed (or called sys.exit) while importing
        logger.exception("importing %s failed", module_name)
        raise ModelLoadError(f"importing module {module_name!r} failed: {type(e).__name__}: {e}") from e
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            raise ModelLoadError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if inspect.isclass(target):
        try:
            target = target()
        except (Exception, SystemExit) as e:
            raise ModelLoadError(f"{entry}: cannot instantiate {target.__name__}(): {e}") from e
    return Model(target, entry)


def declared_features(target: Any, entry: str) -> dict[str, str]:
    """The model's ``features`` attribute as name -> type (empty when not declared)."""
    declared = getattr(target, "features", None)
    if declared is None or callable(declared):
        return {}
    if isinstance(declared, Mapping):
        spec = {str(k): str(v) for k, v in declared.items()}
    elif isinstance(declared, Sequence) and not isinstance(declared, str):
        spec = {str(name): "any" for name in declared}
    else:
        raise ModelLoadError(f"{entry}: 'features' must be a list of names or a dict of name -> type")
    for name, kind in spec.items():
        if kind not in FEATURE_TYPES:
            raise ModelLoadError(f"{entry}: feature {name!r} has type {kind!r}; use one of {FEATURE_TYPES}")
    return spec
