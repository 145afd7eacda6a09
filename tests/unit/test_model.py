"""Loading a user's model from MODULE:ATTR and calling it uniformly (rvz.model)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rvz.errors import ModelLoadError
from rvz.worker.model import FEATURE_TYPES, Model, Outcome, declared_features, load_model

pytestmark = pytest.mark.timeout(30)

MODULE = "rvz_test_user_models"

MODELS_SOURCE = '''
import asyncio
import sys
import types

import numpy as np


def double(features):
    return {"y": features["x"] * 2}


double.features = ["x"]


def fragile(features):
    if features["x"] < 0:
        raise ValueError(f"x must not be negative, got {features['x']}")
    return features["x"]


async def slow_double(features):
    await asyncio.sleep(0)
    return {"y": features["x"] * 2}


class Counter:
    """A class: rvz instantiates it once, so state persists between calls."""

    features = {"x": "number", "name": "string"}

    def __init__(self):
        self.calls = 0

    def predict(self, features):
        self.calls += 1
        return {"call": self.calls, "x": features["x"]}


class AsyncPredictor:
    async def predict(self, features):
        await asyncio.sleep(0)
        return features["x"] + 1


class Batching:
    def predict(self, features):
        raise AssertionError("predict_batch should have been used")

    def predict_batch(self, batch):
        return [{"x": f["x"], "size": len(batch)} for f in batch]


class BatchOnly:
    def predict_batch(self, batch):
        return [f["x"] for f in batch]


class AsyncBatch:
    async def predict_batch(self, batch):
        await asyncio.sleep(0)
        return [f["x"] * 10 for f in batch]


class ShortBatch:
    def predict_batch(self, batch):
        return batch[:1]


class NotAListBatch:
    def predict_batch(self, batch):
        return 42


class RaisingBatch:
    def predict_batch(self, batch):
        raise RuntimeError("GPU out of memory")


class NumpyBatch:
    def predict_batch(self, batch):
        return np.array([f["x"] * 0.5 for f in batch])


class Broken:
    def __init__(self):
        raise OSError("no weights in ./weights.bin")


class MethodFeatures:
    def features(self):
        return ["ignored"]

    def predict(self, features):
        return 0


class StringFeatures:
    features = "x"

    def predict(self, features):
        return 0


class BadFeatureType:
    features = {"x": "float"}

    def predict(self, features):
        return 0


def exits(features):
    if features["x"] < 0:
        sys.exit(3)
    return features["x"]


def interrupts(features):
    raise KeyboardInterrupt


class ExitingBatch:
    def predict_batch(self, batch):
        raise SystemExit("bye")


holder = types.SimpleNamespace(model=double)
not_a_model = 42
'''


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Model]]:
    """``load("ATTR")`` loads ``MODULE:ATTR`` from a module written under tmp_path."""
    (tmp_path / f"{MODULE}.py").write_text(textwrap.dedent(MODELS_SOURCE), encoding="utf-8")
    # syspath_prepend restores all of sys.path afterwards, including the cwd load_model adds.
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded: list[Model] = []

    def load_attr(attr: str) -> Model:
        model = load_model(f"{MODULE}:{attr}")
        loaded.append(model)
        return model

    yield load_attr
    for model in loaded:
        model.close()
    sys.modules.pop(MODULE, None)


def outputs(outcomes: list[Outcome]) -> list[Any]:
    assert all(outcome.error is None for outcome in outcomes), outcomes
    return [outcome.output for outcome in outcomes]


# --- the kinds of model --------------------------------------------------------------------------


def test_a_plain_function(load: Callable[[str], Model]) -> None:
    model = load("double")
    assert model.entry == f"{MODULE}:double"
    assert model.batches is False
    assert outputs(model.score([{"x": 1}, {"x": 4}])) == [{"y": 2}, {"y": 8}]
    assert model.score([]) == []


def test_an_object_with_predict_from_a_nested_attribute(load: Callable[[str], Model]) -> None:
    assert outputs(load("holder.model").score([{"x": 3}])) == [{"y": 6}]


def test_a_class_is_instantiated_once(load: Callable[[str], Model]) -> None:
    model = load("Counter")
    assert outputs(model.score([{"x": 1}, {"x": 2}])) == [{"call": 1, "x": 1}, {"call": 2, "x": 2}]
    assert outputs(model.score([{"x": 3}])) == [{"call": 3, "x": 3}]


def test_an_async_function(load: Callable[[str], Model]) -> None:
    model = load("slow_double")
    assert outputs(model.score([{"x": 1}, {"x": 2}])) == [{"y": 2}, {"y": 4}]
    assert outputs(model.score([{"x": 5}])) == [{"y": 10}]  # the private loop is reused


def test_an_async_predict_method(load: Callable[[str], Model]) -> None:
    assert outputs(load("AsyncPredictor").score([{"x": 1}])) == [2]


def test_close_is_idempotent(load: Callable[[str], Model]) -> None:
    model = load("slow_double")
    model.score([{"x": 1}])
    model.close()
    model.close()
    assert outputs(model.score([{"x": 2}])) == [{"y": 4}]  # a closed model opens a new loop


def test_predict_batch_is_preferred(load: Callable[[str], Model]) -> None:
    model = load("Batching")
    assert model.batches is True
    assert outputs(model.score([{"x": 1}, {"x": 2}, {"x": 3}])) == [
        {"x": 1, "size": 3}, {"x": 2, "size": 3}, {"x": 3, "size": 3}]


@pytest.mark.parametrize(("attr", "expected"), [("BatchOnly", [1, 2]), ("AsyncBatch", [10, 20])])
def test_predict_batch_without_predict(load: Callable[[str], Model], attr: str, expected: list[int]) -> None:
    model = load(attr)
    assert model.batches is True
    assert outputs(model.score([{"x": 1}, {"x": 2}])) == expected


def assert_every_request_failed(outcomes: list[Outcome], returned: str) -> None:
    assert len(outcomes) == 2
    for outcome in outcomes:
        assert outcome.output is None
        assert isinstance(outcome.error, TypeError)
        assert str(outcome.error) == (f"predict_batch returned {returned} for 2 requests; "
                                      "it must return one output per request")


def test_predict_batch_of_the_wrong_length_fails_every_request(load: Callable[[str], Model]) -> None:
    assert_every_request_failed(load("ShortBatch").score([{"x": 1}, {"x": 2}]), "list of length 1")


def test_predict_batch_returning_a_non_sequence_fails_every_request(load: Callable[[str], Model]) -> None:
    assert_every_request_failed(load("NotAListBatch").score([{"x": 1}, {"x": 2}]), "int")


def test_predict_batch_may_return_a_numpy_array(load: Callable[[str], Model]) -> None:
    assert outputs(load("NumpyBatch").score([{"x": 1}, {"x": 3}])) == [0.5, 1.5]


def test_a_raising_predict_batch_fails_every_request(load: Callable[[str], Model]) -> None:
    outcomes = load("RaisingBatch").score([{"x": 1}, {"x": 2}])
    assert [(type(o.error), str(o.error), o.output) for o in outcomes] == [
        (RuntimeError, "GPU out of memory", None)] * 2


def test_a_raising_model_fails_only_its_request(load: Callable[[str], Model]) -> None:
    model = load("fragile")
    first, second = model.score([{"x": -1}, {"x": 2}])
    assert isinstance(first.error, ValueError)
    assert str(first.error) == "x must not be negative, got -1"
    assert first.output is None
    assert second == Outcome(output=2)
    assert model.score([{"x": 7}]) == [Outcome(output=7)]


def test_a_model_that_exits_or_interrupts_only_fails_its_requests(load: Callable[[str], Model]) -> None:
    exiting = load("exits")
    failed, ok = exiting.score([{"x": -1}, {"x": 2}])
    assert isinstance(failed.error, SystemExit) and failed.error.code == 3
    assert ok == Outcome(output=2)
    (interrupted,) = load("interrupts").score([{"x": 1}])
    assert isinstance(interrupted.error, KeyboardInterrupt)
    assert [type(o.error) for o in load("ExitingBatch").score([{"x": 1}, {"x": 2}])] == [SystemExit] * 2
    assert exiting.score([{"x": 5}]) == [Outcome(output=5)]


def test_an_object_with_a_broken_predict_fails_per_request(load: Callable[[str], Model]) -> None:
    (outcome,) = load("double").score([{"no_x": 1}])
    assert isinstance(outcome.error, KeyError)


# --- entries that cannot be loaded ---------------------------------------------------------------


@pytest.mark.parametrize("entry", ["justamodule", ":predict", "mymodels:", ""])
def test_an_entry_needs_module_and_attr(entry: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        load_model(entry)
    assert str(info.value) == f"entry {entry!r} must be MODULE:ATTR, e.g. mypkg.models:predict"


def test_a_missing_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))  # restores sys.path after load_model adds the cwd
    with pytest.raises(ModelLoadError) as info:
        load_model("rvz_no_such_module:predict")
    assert str(info.value) == ("cannot import module 'rvz_no_such_module' for entry 'rvz_no_such_module:predict': "
                               "No module named 'rvz_no_such_module'")
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


@pytest.mark.parametrize(("attr", "message"), [
    ("nope", f"module {MODULE!r} has no attribute 'nope'"),
    ("holder.nope", f"module {MODULE!r} has no attribute 'holder.nope'"),
    ("Broken", f"{MODULE}:Broken: cannot instantiate Broken(): no weights in ./weights.bin"),
    ("not_a_model", f"{MODULE}:not_a_model: int is not callable and has no predict() or predict_batch() method"),
    ("StringFeatures", f"{MODULE}:StringFeatures: 'features' must be a list of names or a dict of name -> type"),
    ("BadFeatureType", f"{MODULE}:BadFeatureType: feature 'x' has type 'float'; "
                       "use one of ('number', 'string', 'bool', 'any')"),
])
def test_bad_entries(load: Callable[[str], Model], attr: str, message: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        load(attr)
    assert str(info.value) == message


def test_load_model_imports_from_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rvz_test_cwd_model.py").write_text("def predict(features):\n    return 'here'\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "elsewhere"))  # restores sys.path, which load_model changes
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "rvz_test_cwd_model", raising=False)
    try:
        model = load_model("rvz_test_cwd_model:predict")
        assert outputs(model.score([{}])) == ["here"]
    finally:
        sys.modules.pop("rvz_test_cwd_model", None)


# --- declared features ---------------------------------------------------------------------------


def test_declared_features(load: Callable[[str], Model]) -> None:
    assert load("double").features == {"x": "any"}
    assert load("Counter").features == {"x": "number", "name": "string"}
    assert load("Batching").features == {}
    assert load("MethodFeatures").features == {}  # a method called features is not a declaration


class _Declares:
    def __init__(self, features: Any) -> None:
        self.features = features


@pytest.mark.parametrize(("features", "expected"), [
    (None, {}),
    (["a", "b"], {"a": "any", "b": "any"}),
    (("a",), {"a": "any"}),
    ([], {}),
    ({"a": "number", "b": "bool", "c": "any", "d": "string"}, {"a": "number", "b": "bool", "c": "any", "d": "string"}),
])
def test_declared_features_forms(features: Any, expected: dict[str, str]) -> None:
    assert declared_features(_Declares(features), "m:f") == expected


@pytest.mark.parametrize(("features", "message"), [
    ("abc", "m:f: 'features' must be a list of names or a dict of name -> type"),
    (3, "m:f: 'features' must be a list of names or a dict of name -> type"),
    ({"a", "b"}, "m:f: 'features' must be a list of names or a dict of name -> type"),
    ({"a": "int"}, f"m:f: feature 'a' has type 'int'; use one of {FEATURE_TYPES}"),
    ({"a": float}, f"m:f: feature 'a' has type \"<class 'float'>\"; use one of {FEATURE_TYPES}"),
])
def test_declared_features_rejects(features: Any, message: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        declared_features(_Declares(features), "m:f")
    assert str(info.value) == message
