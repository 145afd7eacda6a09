"""What a model declared it needs (its ``features``), checked by its own worker for every request.

The frontend refuses a request only for what the model the schedule prefers first requires; any other
model whose declaration a request does not meet gets an error score for it here ("missing feature
..."), so a challenger's contract never costs the champion's callers an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What each declared type accepts, as decoded from a google.protobuf.Struct (numbers are floats).
_ACCEPTS: dict[str, type | tuple[type, ...]] = {"number": float, "string": str, "bool": bool}
_MAX_LISTED = 8


class Contract:
    """A model's declared features (name -> "number" | "string" | "bool" | "any"); empty: anything goes."""

    def __init__(self, declared: Mapping[str, str]) -> None:
        self.declared = dict(declared)
        self._typed = {name: _ACCEPTS[kind] for name, kind in self.declared.items() if kind in _ACCEPTS}

    def problem(self, features: Mapping[str, Any]) -> str | None:
        """Why the model cannot score these features, or None. Features it did not declare are ignored."""
        if not self.declared:
            return None
        missing = [name for name in self.declared if name not in features]
        if missing:
            listed = ", ".join(repr(name) for name in missing[:_MAX_LISTED])
            more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
            return f"missing feature{'s' * (len(missing) > 1)} {listed}{more}"
        for name, accepted in self._typed.items():
            value = features[name]
            # bool is an int subclass in Python, never a float: the isinstance check keeps them apart
            if not isinstance(value, accepted):
                return f"feature {name!r} must be a {self.declared[name]}, got {_kind(value)}"
        return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "list" if isinstance(value, list) else "struct"
