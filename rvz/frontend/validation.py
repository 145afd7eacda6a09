"""Checks a request before it enters the pipeline, with messages that say what to fix."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf import struct_pb2

from rvz.errors import InvalidRequest
from rvz.wire.proto import envelope_pb2, scoring_pb2

_USE_CASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_KIND_OF = {"number": "number_value", "string": "string_value", "bool": "bool_value"}
_MAX_LISTED = 12


@dataclass(frozen=True)
class FeatureSchema:
    """What a request must carry to be accepted: the features the preferred live model declared."""

    types: dict[str, str]
    # True when unknown names are allowed (the preferred model declared nothing, or none is live).
    open: bool

    @classmethod
    def of(cls, models: Iterable[envelope_pb2.ModelInfo], prefer: Sequence[str] = ("champion",)) -> FeatureSchema:
        """The schema of the live model the schedule prefers first (``prefer``: roles or names, in order).

        Only that model's contract refuses a request: any other model that needs more records an error
        score for it (its worker checks its own contract), and its callers never notice.
        """
        candidates = [m for m in models if m.role != "decoy"]
        for accepted in prefer:
            for model in candidates:
                if accepted in (model.role, model.name):
                    types = {spec.name: spec.type for spec in model.features}
                    return cls(types, not types)
        return OPEN




OPEN = FeatureSchema({}, True)


def parse_request(data: bytes) -> scoring_pb2.ScoreRequest:
    try:
        request: scoring_pb2.ScoreRequest = scoring_pb2.ScoreRequest.FromString(data)
    except Exception as e:
        raise InvalidRequest(f"the request is not a valid rvz.v1.ScoreRequest message: {e}") from e
    return request


def check_use_case(use_case: str) -> None:
    if not _USE_CASE.match(use_case):
        raise InvalidRequest(f"use_case {use_case[:140]!r} is not a valid name: use 1-128 of A-Z a-z 0-9 . _ - "
                             "(or leave it empty for the default use case)")


def check_features(request: scoring_pb2.ScoreRequest, use_case: str, schema: FeatureSchema) -> None:
    if not request.HasField("features") or not request.features.fields:
        expected = f"; use case {use_case!r} expects {_names(schema.types)}" if schema.types else ""
        raise InvalidRequest(f"features is required: send a map of feature name to value{expected}")
    fields = request.features.fields
    missing = [name for name in schema.types if name not in fields]
    if missing:
        raise InvalidRequest(f"missing feature{'s' * (len(missing) > 1)} {_names(missing)} for use case "
                             f"{use_case!r} (expected: {_names(schema.types)})")
    for name in fields:  # keys then lookups: the map's items() is a slower Python-level view
        _check_value(name, fields[name], schema, use_case)


def _check_value(name: str, value: struct_pb2.Value, schema: FeatureSchema, use_case: str) -> None:
    expected = schema.types.get(name)
    if expected is None and not schema.open:
        raise InvalidRequest(f"unknown feature {name!r} for use case {use_case!r} "
                             f"(expected: {_names(schema.types)})")
    kind = value.WhichOneof("kind")
    if kind == "number_value" and not math.isfinite(value.number_value):
        raise InvalidRequest(f"feature {name!r} must be a finite number, got {value.number_value}")
    if expected in _KIND_OF and kind != _KIND_OF[expected]:
        got = (kind or "nothing").removesuffix("_value")
        raise InvalidRequest(f"feature {name!r} must be a {expected}, got {got}")


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    shown = ", ".join(repr(n) for n in listed[:_MAX_LISTED])
    return shown + (f" and {len(listed) - _MAX_LISTED} more" if len(listed) > _MAX_LISTED else "")
