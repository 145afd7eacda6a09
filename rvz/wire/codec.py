"""Conversions between protobuf Struct/Value and plain Python values.

Models take and return JSON-like Python values. numpy scalars and arrays are
accepted on the way out because that is what most models return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from rvz.errors import EncodeError


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    fields = struct.fields
    # Keys, then lookups: the map's items() is a Python-level ItemsView, slower per feature.
    return {key: value_to_python(fields[key]) for key in fields}


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


class _Unencodable(Exception):
    """Raised inside the encoder; the path is built only then, from the inside out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where: list[str] = []  # path steps, innermost first


def python_to_value(obj: Any, out: struct_pb2.Value, path: str = "output") -> None:
    """Fill ``out`` from ``obj``; raise EncodeError naming the offending path.

    Every score passes through here in a worker, so the common types are dispatched on their exact
    type first, and no path string is formatted unless something cannot be encoded.
    """
    try:
        _fill(obj, out)
    except _Unencodable as e:
        raise EncodeError(f"{path}{''.join(reversed(e.where))}: {e.reason}") from None


def _fill(obj: Any, out: struct_pb2.Value) -> None:
    kind = type(obj)
    if kind is float:
        _set_number(obj, out)
    elif kind is str:
        out.string_value = obj
    elif kind is dict:
        _fill_struct(obj, out)
    elif kind is bool:
        out.bool_value = obj
    elif kind is int:
        _set_number(_as_float(obj), out)
    elif kind is list or kind is tuple:
        _fill_list(obj, out)
    elif obj is None:
        out.null_value = struct_pb2.NULL_VALUE
    else:
        _fill_other(obj, out)


def _fill_other(obj: Any, out: struct_pb2.Value) -> None:
    """Subclasses of the JSON-like types (numpy's float64 is a float), other mappings, numpy arrays."""
    if isinstance(obj, bool):
        out.bool_value = obj
    elif isinstance(obj, int | float):
        _set_number(_as_float(obj), out)
    elif isinstance(obj, str):
        out.string_value = obj
    elif isinstance(obj, Mapping):
        _fill_struct(obj, out)
    elif isinstance(obj, list | tuple):
        _fill_list(obj, out)
    elif hasattr(obj, "tolist"):  # numpy arrays and scalars
        _fill(obj.tolist(), out)
    else:
        raise _Unencodable(f"{type(obj).__name__} cannot be encoded; return JSON-like values "
                           "(dict, list, str, number, bool, None)")


def _fill_struct(obj: Mapping[Any, Any], out: struct_pb2.Value) -> None:
    struct = out.struct_value
    struct.Clear()
    fields = struct.fields
    for key, item in obj.items():
        if not isinstance(key, str):
            raise _Unencodable(f"dict keys must be strings, got {type(key).__name__}")
        try:
            _fill(item, fields[key])
        except _Unencodable as e:
            e.where.append(f".{key}")
            raise


def _fill_list(obj: list[Any] | tuple[Any, ...], out: struct_pb2.Value) -> None:
    values = out.list_value
    values.Clear()
    items = values.values
    for i, item in enumerate(obj):
        try:
            _fill(item, items.add())
        except _Unencodable as e:
            e.where.append(f"[{i}]")
            raise


def _as_float(number: int | float) -> float:
    try:
        return float(number)
    except OverflowError:
        raise _Unencodable(f"{number} is too large for a number") from None


def _set_number(number: float, out: struct_pb2.Value) -> None:
    if not math.isfinite(number):
        raise _Unencodable(f"{number} is not a finite number")
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
