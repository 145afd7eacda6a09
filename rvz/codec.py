"""Conversions between protobuf Struct/Value and plain Python values.

Models take and return JSON-like Python values. numpy scalars and arrays are
accepted on the way out because that is what most models return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2


class EncodeError(TypeError):
    """A model returned something that cannot be sent as a google.protobuf.Value."""


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: value_to_python(value) for key, value in struct.fields.items()}


def value_to_python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [value_to_python(v) for v in value.list_value.values]
    return None


def python_to_value(obj: Any, out: struct_pb2.Value, path: str = "output") -> None:
    """Fill ``out`` from ``obj``; raise EncodeError naming the offending path."""
    if obj is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        out.bool_value = obj
    elif isinstance(obj, int | float):
        try:
            number = float(obj)
        except OverflowError:
            raise EncodeError(f"{path}: {obj} is too large for a number") from None
        _set_number(number, out, path)
    elif isinstance(obj, str):
        out.string_value = obj
    elif isinstance(obj, Mapping):
        struct = out.struct_value
        struct.Clear()
        for key, item in obj.items():
            if not isinstance(key, str):
                raise EncodeError(f"{path}: dict keys must be strings, got {type(key).__name__}")
            python_to_value(item, struct.fields[key], f"{path}.{key}")
    elif isinstance(obj, list | tuple):
        values = out.list_value
        values.Clear()
        for i, item in enumerate(obj):
            python_to_value(item, values.values.add(), f"{path}[{i}]")
    elif hasattr(obj, "tolist"):  # numpy arrays and scalars
        python_to_value(obj.tolist(), out, path)
    else:
        raise EncodeError(f"{path}: {type(obj).__name__} cannot be encoded; return JSON-like values "
                          "(dict, list, str, number, bool, None)")


def _set_number(number: float, out: struct_pb2.Value, path: str) -> None:
    if not math.isfinite(number):
        raise EncodeError(f"{path}: {number} is not a finite number")
    out.number_value = number


def to_value(obj: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    python_to_value(obj, value)
    return value


def embed(tag: int, message: bytes) -> bytes:
    """A length-delimited protobuf field holding already-encoded ``message`` bytes (tag: field << 3 | 2).

    Protobuf parsers accept fields in any order, so this can be prepended to the encoding of the rest
    of the enclosing message.
    """
    return _varint(tag) + _varint(len(message)) + message


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _BYTES[n]
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_BYTES = [bytes((n,)) for n in range(0x80)]
