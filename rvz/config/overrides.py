"""Settings given as text, which win over the file: the environment, then the command line.

Every setting of a table of the file can be given in the environment as ``RVZ_<TABLE>_<KEY>``
(``RVZ_FRONTEND_LISTEN``, ``RVZ_LOG_DIR``, ``RVZ_RENDEZVOUS_DEADLINE_MS``); a command-line option
wins over both. Each value is checked by its setting's ``Spec``, as the file's are, and an error
names where it came from (``environment: RVZ_LOG_SEGMENT_MB: must be a positive number, got 0``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from rvz.config.fields import config_error, specs
from rvz.config.settings import SECTIONS, Config, ModelConfig
from rvz.config.toml import check_limits, check_model, check_policy
from rvz.errors import ConfigError

# (table, key) of a setting, e.g. ("frontend", "listen").
SectionKey = tuple[str, str]
# Read by earlier versions; refused with their new names rather than silently ignored.
_RENAMED = {"RVZ_LISTEN": "RVZ_FRONTEND_LISTEN", "RVZ_DATA_DIR": "RVZ_LOG_DIR"}


@dataclass(frozen=True)
class Given:
    """A setting's value as text, and where it was given: ("command line", "--nice"), ("environment", "RVZ_...")."""

    text: str
    source: str
    key: str

    def value(self, cls: type, setting: str) -> Any:
        """The value, checked by ``cls``'s ``setting``; raises ``ConfigError`` naming this source and key."""
        return specs(cls)[setting].validate_text(self.text, self.source, self.key)


def env_name(section: str, key: str) -> str:
    return f"RVZ_{section}_{key}".upper()


def from_environment(environ: Mapping[str, str]) -> dict[SectionKey, Given]:
    """Every setting of a table of the file that ``environ`` gives (an empty variable is unset, as for
    every option's env var); raises ``ConfigError`` for a renamed one."""
    for old, new in _RENAMED.items():
        if old in environ:
            raise ConfigError(f"environment: {old} is no longer read; set {new} instead")
    given: dict[SectionKey, Given] = {}
    for section, cls in SECTIONS.items():
        for key, spec in specs(cls).items():
            name = env_name(section, key)
            if environ.get(name) and not spec.setting.structured:  # empty is unset, as click has it
                given[(section, key)] = Given(environ[name], "environment", name)
    return given


def apply(config: Config, given: Mapping[SectionKey, Given]) -> Config:
    """``config`` with the given settings; raises ``ConfigError`` for a bad one."""
    changes: dict[str, dict[str, Any]] = {}
    for (section, key), value in given.items():
        changes.setdefault(section, {})[key] = value.value(SECTIONS[section], key)
    updated = replace(config, **{section: replace(getattr(config, section), **values)
                                 for section, values in changes.items()})
    if "rendezvous" in changes:
        on_timeout = given.get(("rendezvous", "on_timeout"))
        check_policy(updated.rendezvous, "rendezvous.", on_timeout.source if on_timeout else config.source)
    if "limits" in changes:
        named = given.get(("limits", "message_bytes"))
        check_limits(updated.limits, named.source if named else config.source,
                     named.key if named else "limits.message_bytes")
    return updated


# --- the model of `rvz model run` ----------------------------------------------------------------


def model_from(config: Config, given: Mapping[str, Given]) -> ModelConfig:
    """The model named by ``given["name"]``: its [[models]] entry in ``config`` if one matches (name, and
    use case when given), else the defaults; the other given settings win over either.

    Raises ``ConfigError`` for a bad value, a name found in several use cases, or a missing entry.
    """
    if "name" not in given:
        raise ConfigError("command line: --name: is required")
    name: str = given["name"].value(ModelConfig, "name")
    use_case: str | None = given["use_case"].value(ModelConfig, "use_case") if "use_case" in given else None
    index = _entry_index(config, name, use_case)
    base: dict[str, Any] = (asdict(config.models[index]) if index is not None else
                            {"name": name, "use_case": use_case or config.frontend.default_use_case})
    values = {**base, **{key: value.value(ModelConfig, key) for key, value in given.items()}}
    model = ModelConfig(**values)
    if "entry" in given:
        return check_model(model, given["entry"].source, given["entry"].key)
    if index is not None:
        return check_model(model, config.source, f"models[{index}].entry")
    if model.role != "decoy":
        raise config_error("command line", "--entry", f"is required: {config.source} has no [[models]] entry "
                                                     f"named {name!r} in use case {model.use_case!r}")
    return model


def _entry_index(config: Config, name: str, use_case: str | None) -> int | None:
    """The [[models]] entry of ``name`` (in ``use_case``; if None, the only one, or the default use case's)."""
    matches = [i for i, m in enumerate(config.models) if m.name == name and use_case in (None, m.use_case)]
    if len(matches) > 1:
        default = [i for i in matches if config.models[i].use_case == config.frontend.default_use_case]
        if default:
            return default[0]
        use_cases = ", ".join(repr(config.models[i].use_case) for i in matches)
        raise config_error("command line", "--use-case",
                           f"{config.source} has a model {name!r} in use cases {use_cases}: give one")
    return matches[0] if matches else None
