"""Checks a request before it enters the pipeline, with messages that say what to fix."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf import struct_pb2

from rvz.config import LimitsConfig
from rvz.errors import InvalidRequest, RequestTooLarge
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


class RequestCheck:
    """Checks a Score request against the deployment's limits and the preferred model's contract.

    Every check costs a bounded time, whatever the client sends: the size before parsing, then the
    count of features, then each value (nested lists and maps are walked only within limits.values and
    limits.depth, their lengths read before their items). Non-finite numbers (NaN, Infinity) are refused at
    every depth: JSON cannot carry them, and no model should see them.
    """

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits

    def parse(self, data: bytes) -> scoring_pb2.ScoreRequest:
        """The request, or RequestTooLarge / InvalidRequest before anything costly is done."""
        if len(data) > self.limits.request_bytes:
            raise RequestTooLarge(f"the request is {len(data)} bytes, more than limits.request_bytes = "
                                  f"{self.limits.request_bytes}; send fewer or smaller features")
        try:
            request: scoring_pb2.ScoreRequest = scoring_pb2.ScoreRequest.FromString(data)
        except Exception as e:
            raise InvalidRequest(f"the request is not a valid rvz.v1.ScoreRequest message: {e}") from e
        return request

    def check_use_case(self, use_case: str) -> None:
        if len(use_case) > self.limits.use_case_bytes:
            raise InvalidRequest(f"use_case is {len(use_case)} characters long, more than limits.use_case_bytes = "
                                 f"{self.limits.use_case_bytes}; name a configured use case")
        check_use_case(use_case)

    def check_features(self, request: scoring_pb2.ScoreRequest, use_case: str, schema: FeatureSchema) -> None:
        if not request.HasField("features") or not request.features.fields:
            expected = f"; use case {use_case!r} expects {_names(schema.types)}" if schema.types else ""
            raise InvalidRequest(f"features is required: send a map of feature name to value{expected}")
        fields = request.features.fields
        if len(fields) > self.limits.features:
            raise InvalidRequest(f"the request has {len(fields)} features, more than limits.features = "
                                 f"{self.limits.features}")
        missing = [name for name in schema.types if name not in fields]
        if missing:
            raise InvalidRequest(f"missing feature{'s' * (len(missing) > 1)} {_names(missing)} for use case "
                                 f"{use_case!r} (expected: {_names(schema.types)})")
        budget = _Budget(self.limits, self.limits.values - len(fields))
        for name in fields:  # keys then lookups: the map's items() is a slower Python-level view
            budget.check_string(name, name, "feature name")
            _check_value(name, fields[name], schema, use_case, budget)


def check_use_case(use_case: str) -> None:
    if not _USE_CASE.match(use_case):
        raise InvalidRequest(f"use_case {use_case[:140]!r} is not a valid name: use 1-128 of A-Z a-z 0-9 . _ - "
                             "(or leave it empty for the default use case)")


def _check_value(name: str, value: struct_pb2.Value, schema: FeatureSchema, use_case: str, budget: _Budget) -> None:
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
    if kind == "string_value":
        budget.check_string(value.string_value, name, "string")
    elif kind in ("struct_value", "list_value"):
        budget.walk(value, repr(name), 1)


class _Budget:
    """What is left of limits.values for one request, and the walk of nested values within it."""

    def __init__(self, limits: LimitsConfig, values_left: int) -> None:
        self.limits = limits
        self.left = values_left

    def check_string(self, text: str, where: str, what: str) -> None:
        if len(text) > self.limits.string_bytes:
            raise InvalidRequest(f"{what} {where[:60]!r}... is {len(text)} characters long, more than "
                                 f"limits.string_bytes = {self.limits.string_bytes}")

    def walk(self, value: struct_pb2.Value, path: str, depth: int) -> None:
        """Check a list or map value (at ``depth``) and everything inside it."""
        if depth >= self.limits.depth:
            raise InvalidRequest(f"feature {path} nests lists and maps deeper than limits.depth = {self.limits.depth}")
        if value.WhichOneof("kind") == "list_value":
            items = value.list_value.values
            self._spend(len(items))
            for i, item in enumerate(items):
                self._item(item, f"{path}[{i}]", depth)
        else:
            fields = value.struct_value.fields
            self._spend(len(fields))
            for key in fields:
                self.check_string(key, f"{path}.{key}", "key")
                self._item(fields[key], f"{path}.{key}", depth)

    def _item(self, item: struct_pb2.Value, path: str, depth: int) -> None:
        kind = item.WhichOneof("kind")
        if kind == "number_value":
            if not math.isfinite(item.number_value):
                raise InvalidRequest(f"feature {path} must be a finite number, got {item.number_value} "
                                     "(NaN and Infinity are refused at every depth)")
        elif kind == "string_value":
            self.check_string(item.string_value, path, "string")
        elif kind in ("struct_value", "list_value"):
            self.walk(item, path, depth + 1)

    def _spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise InvalidRequest(f"the request has more than limits.values = {self.limits.values} values "
                                 "(counting every item of its lists and maps)")


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    shown = ", ".join(repr(n) for n in listed[:_MAX_LISTED])
    return shown + (f" and {len(listed) - _MAX_LISTED} more" if len(listed) > _MAX_LISTED else "")
