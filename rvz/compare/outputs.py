"""What a model's output means for comparisons: its label and/or its number.

A use case can declare which output field holds its label or number (``[[use_cases]]`` in the config,
or `rvz report --output`): ``OutputSpec`` reads exactly that field. Without a declaration the
conventional shapes are read (``extract``), which the live drift check (rvz.rendezvous.live_stats)
and `rvz report` share; an output of no such shape is not compared, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import struct_pb2

from rvz.config import OutputKind, UseCaseConfig

NUMBER_KEYS = ("score", "value", "prediction")
PROBABILITIES_KEY = "probabilities"
Read = tuple[str | None, float | None]


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
    probabilities = _probabilities(fields.get(PROBABILITIES_KEY))
    return max(probabilities.values()) if probabilities else None


def _probabilities(value: struct_pb2.Value | None) -> dict[str, float] | None:
    if value is None or value.WhichOneof("kind") != "struct_value":
        return None
    fields = value.struct_value.fields
    numbers = {key: fields[key].number_value for key in fields if fields[key].WhichOneof("kind") == "number_value"}
    return numbers or None


def _at(value: struct_pb2.Value, path: tuple[str, ...]) -> struct_pb2.Value | None:
    """The value at the dict keys ``path`` (the value itself for no keys), or None where there is none."""
    for key in path:
        if value.WhichOneof("kind") != "struct_value" or key not in value.struct_value.fields:
            return None
        value = value.struct_value.fields[key]
    return value


def _as(value: struct_pb2.Value | None, kind: OutputKind) -> Read:
    if value is None:
        return None, None
    if kind == "label":
        return _label_of(value), None
    return None, value.number_value if value.WhichOneof("kind") == "number_value" else None


@dataclass(frozen=True)
class OutputSpec:
    """How the outputs and truths of one use case are read: the declared field and kind, or (``kind``
    None) the conventional shapes of ``extract``. ``source`` says where the declaration was made."""

    kind: OutputKind | None = None
    field: str = ""
    probabilities: str = ""
    source: str = ""

    @classmethod
    def declared_by(cls, use_case: UseCaseConfig, source: str) -> OutputSpec:
        return cls(use_case.kind, use_case.output, use_case.probabilities, source)

    @property
    def declared(self) -> bool:
        return self.kind is not None

    def read(self, value: struct_pb2.Value) -> Read:
        """(label, number) of an output: at most one of them when declared."""
        if self.kind is None:
            return extract(value)
        return _as(_at(value, self._path(self.field)), self.kind)

    def read_truth(self, value: struct_pb2.Value) -> Read:
        """A truth: the declared field when the truth is a dict holding it, else the truth itself."""
        if self.kind is None:
            label, number = extract(value)
            return (label, None) if label is not None else (None, number)
        found = _at(value, self._path(self.field))
        return _as(found if found is not None else value, self.kind)

    def probabilities_of(self, value: struct_pb2.Value) -> dict[str, float] | None:
        """Class -> probability, where the output carries them (labels only)."""
        if self.kind == "number":
            return None
        path = self._path(self.probabilities) if self.probabilities else (PROBABILITIES_KEY,)
        return _probabilities(_at(value, path))

    def describe(self) -> str:
        if self.kind is None:
            return ("not declared: read by the conventional shapes (a string, bool or number; a dict's "
                    f"\"label\", or its first of {', '.join(map(repr, NUMBER_KEYS))})")
        where = f"output field {self.field!r}" if self.field else "the output itself"
        probabilities = f", probabilities in {self.probabilities!r}" if self.probabilities else ""
        return f"{where} as a {self.kind}{probabilities} ({self.source})"

    @staticmethod
    def _path(field: str) -> tuple[str, ...]:
        return tuple(field.split(".")) if field else ()


def shape_of(value: struct_pb2.Value) -> str:
    """A few words on what an output is, for saying why it could not be compared."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        keys = sorted(value.struct_value.fields)
        shown = ", ".join(map(repr, keys[:6])) + (", ..." if len(keys) > 6 else "")
        return f"a dict with keys {shown}" if keys else "an empty dict"
    return {"list_value": "a list", "string_value": "a string", "number_value": "a number",
            "bool_value": "a bool", "null_value": "null"}.get(kind or "", "nothing")
