"""What a model's output means for comparisons: its label and/or its number.

Shared by the live drift check (rvz.model_stats) and `rvz report`, so both read
outputs the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import struct_pb2

NUMBER_KEYS = ("score", "value", "prediction")


def extract(value: struct_pb2.Value) -> tuple[str | None, float | None]:
    """(label, number) of a model output.

    Label: a string or bool output, or the "label" entry of a dict output (a string, bool or class number).
    Number: a number output, or a dict's first numeric "score"/"value"/"prediction" entry, or else the
    largest value of its "probabilities" dict (a classifier's confidence). Anything else: neither.
    """
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value, None
    if kind == "number_value":
        return None, value.number_value
    if kind == "bool_value":
        return _bool_label(value.bool_value), None
    if kind != "struct_value":
        return None, None
    fields = value.struct_value.fields
    label = _label_of(fields["label"]) if "label" in fields else None
    return label, _number_of(fields)


def _bool_label(flag: bool) -> str:
    return "true" if flag else "false"


def _label_of(value: struct_pb2.Value) -> str | None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return _bool_label(value.bool_value)
    if kind == "number_value":  # a class id: JSON has no integers, so 2.0 is printed as 2
        number = value.number_value
        return str(int(number)) if number.is_integer() else repr(number)
    return None


def _number_of(fields: Mapping[str, struct_pb2.Value]) -> float | None:
    for key in NUMBER_KEYS:
        item = fields.get(key)
        if item is not None and item.WhichOneof("kind") == "number_value":
            return item.number_value
    probabilities = fields.get("probabilities")
    if probabilities is None or probabilities.WhichOneof("kind") != "struct_value":
        return None
    numbers = [v.number_value for v in probabilities.struct_value.fields.values()
               if v.WhichOneof("kind") == "number_value"]
    return max(numbers) if numbers else None
