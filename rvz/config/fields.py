"""What a setting is, declared once on the config dataclasses: its default, help, range and format.

A field of a config dataclass becomes a setting with ``setting(default, help, ...)``. Its type
(``str``, ``int``, ``float``, ``bool`` or a ``Literal`` of choices) and its ``Setting`` are read
back as a ``Spec``, which validates a value however it was given: typed, from a TOML file or a JSON
config, or as text, from the command line or the environment (``Spec.from_text`` reads text as TOML
would read the same literal, so both are refused with the same message). Every error names the
source and the key: ``rvz.toml: models[0].nice: ...``, ``command line: --nice: ...``.
"""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from rvz.errors import ConfigError

T = TypeVar("T")
# A format a value must have: returns what is wrong with it, or None.
Check = Callable[[Any], str | None]
_METADATA_KEY = "rvz.setting"
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
_INTEGER = re.compile(r"^[+-]?\d+(_\d+)*$")
_FLOAT = re.compile(r"^[+-]?(\d+(_\d+)*)(\.\d+(_\d+)*)?([eE][+-]?\d+)?$|^[+-]?(inf|nan)$")


@dataclass(frozen=True)
class Setting:
    """How one setting is checked and documented (the default is the field's)."""

    help: str
    minimum: float | None = None
    maximum: float | None = None
    # The minimum itself is refused (a positive number).
    above_minimum: bool = False
    # The range in words, when the numbers alone do not say why.
    range_text: str = ""
    check: Check | None = None
    # Parsed by code of its own (a table, an array, any JSON value): never given as text.
    structured: bool = False
    # What the value is, in an option's help (default: its type).
    metavar: str = ""


def setting(default: Any = MISSING, help: str = "", **checks: Any) -> Any:
    """A dataclass field that is a setting; without a default, the setting is required."""
    metadata = {_METADATA_KEY: Setting(help, **checks)}
    return field(metadata=metadata) if default is MISSING else field(default=default, metadata=metadata)


def config_error(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {problem}")


@dataclass(frozen=True)
class Spec:
    """One setting of a config dataclass, with the type its field declares."""

    key: str
    kind: type
    choices: tuple[str, ...]
    default: Any
    setting: Setting

    @property
    def required(self) -> bool:
        return self.default is MISSING

    @property
    def help(self) -> str:
        return self.setting.help

    def validate(self, value: Any, source: str, key: str) -> Any:
        """The value as the config holds it; raises ``ConfigError`` naming ``source`` and ``key``."""
        problem, value = self._problem(value)
        if problem:
            raise config_error(source, key, problem)
        return value

    def validate_text(self, text: str, source: str, key: str) -> Any:
        return self.validate(self.from_text(text), source, key)

    def from_text(self, text: str) -> Any:
        """Text read as the TOML literal it spells for a number or true/false setting; else the text itself."""
        if self.kind is str:
            return text
        if text in ("true", "false"):
            return text == "true"
        if _INTEGER.match(text):
            return int(text.replace("_", ""))
        if _FLOAT.match(text):
            return float(text.replace("_", ""))
        return text

    def to_text(self, value: Any) -> str:
        """The text ``from_text`` reads back as ``value`` (how a default is shown in --help)."""
        return str(value).lower() if isinstance(value, bool) else str(value)

    def _problem(self, value: Any) -> tuple[str, Any]:
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        wrong_type = not isinstance(value, self.kind) or (self.kind in (int, float) and isinstance(value, bool))
        if wrong_type:
            return f"must be {_KIND_NAMES[self.kind]}, got {value!r}", value
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}", value
        if self._out_of_range(value):
            return f"must be {self.range_text()}, got {value!r}", value
        check = self.setting.check
        return (check(value) or "") if check else "", value

    def _out_of_range(self, value: Any) -> bool:
        s = self.setting
        if s.minimum is None and s.maximum is None:
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return True
        below = s.minimum is not None and (value <= s.minimum if s.above_minimum else value < s.minimum)
        return below or (s.maximum is not None and value > s.maximum)

    def range_text(self) -> str:
        s = self.setting
        if s.range_text:
            return s.range_text
        if s.maximum is None:
            return "a positive number" if s.above_minimum else "zero or a positive number"
        return f"between {s.minimum:g} and {s.maximum:g}"


@cache
def specs(cls: type) -> dict[str, Spec]:
    """Every setting of a config dataclass, by key, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: _spec(f, hints[f.name]) for f in fields(cls) if _METADATA_KEY in f.metadata}


def _spec(f: Field[Any], hint: Any) -> Spec:
    s: Setting = f.metadata[_METADATA_KEY]
    choices: tuple[str, ...] = get_args(hint) if get_origin(hint) is Literal else ()
    kind = str if choices else hint if hint in _KIND_NAMES else object
    if kind is object and not s.structured:
        raise TypeError(f"setting {f.name}: {hint} is not a scalar; declare it structured")
    return Spec(f.name, kind, choices, f.default, s)


def scalar_specs(cls: type) -> list[Spec]:
    """The settings that can be given as text (on the command line, in the environment)."""
    return [spec for spec in specs(cls).values() if not spec.setting.structured]


# --- formats --------------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[^:\s\[\]]+):(\d{1,5})$")
_ENDPOINT = re.compile(r"^(tcp|ipc|inproc)://.+")
_ENTRY = re.compile(r"^[\w.]+:[\w.]+$")
_FIELD_PATH = re.compile(r"^[^.\s]+(\.[^.\s]+)*$")


def name_problem(value: str) -> str | None:
    if _NAME.match(value):
        return None
    return f"{value!r} must be 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)"


def listen_problem(value: str) -> str | None:
    match = _LISTEN.match(value)
    if match and int(match.group(2)) <= 65535:
        return None
    return f"must be HOST:PORT with a port from 0 to 65535, got {value!r}"


def optional_listen_problem(value: str) -> str | None:
    return listen_problem(value) if value else None


def metrics_listen_problem(value: str) -> str | None:
    """Empty (off), HOST:PORT, or :PORT (loopback)."""
    if not value or (value.startswith(":") and value[1:].isdigit() and int(value[1:]) <= 65535):
        return None
    return listen_problem(value)


_HOST = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)$")


def hosts_problem(value: str) -> str | None:
    """Empty, or host names or addresses separated by commas."""
    hosts = [h.strip() for h in value.split(",")] if value.strip() else []
    bad = [h for h in hosts if not _HOST.match(h)]
    if bad:
        return f"must be host names or addresses separated by commas, got {bad[0]!r} in {value!r}"
    return None


def endpoint_problem(value: str) -> str | None:
    if _ENDPOINT.match(value):
        return None
    return f"must be a ZeroMQ endpoint like tcp://127.0.0.1:5555, got {value!r}"


def optional_endpoint_problem(value: str) -> str | None:
    """Empty (a default derived from another setting) or a ZeroMQ endpoint."""
    return None if not value else endpoint_problem(value)


def entry_problem(value: str) -> str | None:
    """Empty is left to the model's check (only a decoy may have no entry)."""
    if not value or _ENTRY.match(value):
        return None
    return f"must be MODULE:ATTR (e.g. mypkg.models:predict), got {value!r}"


def directory_problem(value: str) -> str | None:
    """A directory rvz may create: empty, or a path that is a directory or does not exist yet."""
    if not value:
        return "must name a directory, got ''"
    path = Path(value)
    if path.exists() and not path.is_dir():
        return f"{value!r} is a file, not a directory: give a directory (rvz creates it if it is missing)"
    return None


def field_path_problem(value: str) -> str | None:
    """Empty (the whole value) or dict keys joined by dots: ``progression``, ``result.score``."""
    if not value or _FIELD_PATH.match(value):
        return None
    return f"must be a dict key, or keys joined by dots (e.g. result.score), got {value!r}"
