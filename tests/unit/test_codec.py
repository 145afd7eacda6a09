"""Conversions between protobuf Struct/Value and plain Python values (rvz.codec)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest
from google.protobuf import struct_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from rvz.errors import EncodeError
from rvz.wire.codec import embed, python_to_value, struct_to_dict, to_value, value_to_python
from rvz.wire.proto import envelope_pb2

pytestmark = pytest.mark.timeout(30)

NESTED = {
    "label": "setosa",
    "probabilities": {"setosa": 0.9, "versicolor": 0.1, "virginica": 0},
    "flags": [True, False, None],
    "matrix": [[1, 2], [3.5, -4], []],
    "empty": {},
    "unicode": "naïve ✓",
}


def typed(obj: Any) -> Any:
    """``obj`` with each leaf paired with its type, so True and 1.0 compare unequal."""
    if isinstance(obj, dict):
        return {key: typed(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [typed(value) for value in obj]
    return (type(obj).__name__, obj)


def decoded(obj: Any) -> Any:
    """What a round trip should give: numbers come back as floats, tuples as lists."""
    if isinstance(obj, dict):
        return {key: decoded(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [decoded(value) for value in obj]
    if isinstance(obj, int) and not isinstance(obj, bool):
        return float(obj)
    return obj


def round_trip(obj: Any) -> Any:
    wire = to_value(obj).SerializeToString()
    return value_to_python(struct_pb2.Value.FromString(wire))


@pytest.mark.parametrize("obj", [
    None, True, False, 0, -7, 2.5, 1e300, "", "text", [], {}, [[]], [{}], {"a": {}}, {"a": []},
    (1, "two", None), NESTED,
], ids=repr)
def test_round_trip(obj: Any) -> None:
    assert typed(round_trip(obj)) == typed(decoded(obj))


def test_value_kinds() -> None:
    assert to_value(None).WhichOneof("kind") == "null_value"
    assert to_value(True).WhichOneof("kind") == "bool_value"
    assert to_value(3).number_value == 3.0
    assert to_value("x").string_value == "x"
    assert to_value({}).WhichOneof("kind") == "struct_value"
    assert to_value(()).WhichOneof("kind") == "list_value"


def test_an_unset_value_decodes_as_none() -> None:
    assert value_to_python(struct_pb2.Value()) is None


def test_struct_to_dict_reads_a_struct_built_by_protobuf() -> None:
    struct = struct_pb2.Struct()
    struct.update({"x": 1.5, "name": "iris", "ok": True, "none": None, "nested": {"list": [1, "a"]}})
    assert typed(struct_to_dict(struct)) == typed(
        {"x": 1.5, "name": "iris", "ok": True, "none": None, "nested": {"list": [1.0, "a"]}})


def test_struct_to_dict_of_an_encoded_dict() -> None:
    value = to_value(NESTED)
    assert typed(struct_to_dict(value.struct_value)) == typed(decoded(NESTED))


def test_refilling_a_value_replaces_its_old_contents() -> None:
    value = to_value({"stale": 1, "kept": 2})
    python_to_value({"kept": 3}, value)
    assert value_to_python(value) == {"kept": 3.0}
    python_to_value([1, 2], value)
    python_to_value(["x"], value)
    assert value_to_python(value) == ["x"]
    python_to_value(None, value)
    assert value.WhichOneof("kind") == "null_value"


@pytest.mark.parametrize(("obj", "expected"), [
    (np.int64(3), 3.0),
    (np.float32(1.5), 1.5),
    (np.float64(-0.25), -0.25),
    (np.bool_(True), True),
    (np.arange(3), [0.0, 1.0, 2.0]),
    (np.array([[1.5, 2.0], [3.0, 4.0]]), [[1.5, 2.0], [3.0, 4.0]]),
    (np.array(["a", "b"]), ["a", "b"]),
    (np.array([True, False]), [True, False]),
    ({"probabilities": np.array([0.25, 0.75]), "label": np.str_("virginica")},
     {"probabilities": [0.25, 0.75], "label": "virginica"}),
], ids=repr)
def test_numpy_values_encode(obj: Any, expected: Any) -> None:
    assert typed(round_trip(obj)) == typed(expected)


@pytest.mark.parametrize(("obj", "message"), [
    (math.nan, "output: nan is not a finite number"),
    (math.inf, "output: inf is not a finite number"),
    (-math.inf, "output: -inf is not a finite number"),
    ({"a": [1, math.nan]}, "output.a[1]: nan is not a finite number"),
    (np.float64("nan"), "output: nan is not a finite number"),
    ({"scores": np.array([0.5, 1.0, np.inf])}, "output.scores[2]: inf is not a finite number"),
    ({1: "x"}, "output: dict keys must be strings, got int"),
    ({"a": {("x", 1): 1}}, "output.a: dict keys must be strings, got tuple"),
    ([object()], "output[0]: object cannot be encoded; return JSON-like values (dict, list, str, number, bool, None)"),
    ({"a": {1, 2}}, "output.a: set cannot be encoded; return JSON-like values (dict, list, str, number, bool, None)"),
    (b"raw", "output: bytes cannot be encoded; return JSON-like values (dict, list, str, number, bool, None)"),
], ids=repr)
def test_unencodable_values_name_the_path(obj: Any, message: str) -> None:
    with pytest.raises(EncodeError) as info:
        to_value(obj)
    assert str(info.value) == message
    assert isinstance(info.value, TypeError)


def test_the_path_prefix_is_the_callers() -> None:
    with pytest.raises(EncodeError, match=r"^default_output\.x\[0\]: nan is not a finite number$"):
        python_to_value({"x": [math.nan]}, struct_pb2.Value(), "default_output")


def test_an_int_too_large_for_a_float_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match=r"^output\.n: "):
        to_value({"n": 10**400})


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-(2**53), 2**53)  # exactly representable as a double
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "str":
        return "".join(rng.choice("abcXYZ é✓_.-") for _ in range(rng.randint(0, 8)))
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_json_key(rng): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_json_key(rng: random.Random) -> str:
    return "".join(rng.choice("abc.[]0 ") for _ in range(rng.randint(0, 5)))


# hypothesis drives the generator (it shrinks a failing case to a small random state it prints).
@settings(max_examples=100, deadline=None)
@given(rng=st.randoms(use_true_random=False))
def test_round_trip_of_random_json_like_values(rng: random.Random) -> None:
    for _ in range(5):
        obj = random_json(rng)
        assert typed(round_trip(obj)) == typed(decoded(obj))


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 20_000, 3_000_000])
def test_embedded_bytes_parse_as_the_copied_message(size: int) -> None:
    score = envelope_pb2.ScoreEnvelope(request_id="r-1", model_name="m", role="champion", error="e" * size)
    copied = envelope_pb2.ScoreRecord(received_unix_ns=123, late=True)
    copied.score.CopyFrom(score)
    tag = envelope_pb2.ScoreRecord.SCORE_FIELD_NUMBER << 3 | 2
    spliced = embed(tag, score.SerializeToString()) + envelope_pb2.ScoreRecord(received_unix_ns=123,
                                                                               late=True).SerializeToString()
    assert envelope_pb2.ScoreRecord.FromString(spliced) == copied
