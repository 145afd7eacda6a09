"""Reading a configuration: a TOML file, the JSON that `rvz up` hands its children, a policy table.

Every value goes through its setting's ``Spec`` (``rvz.config.fields``); what involves several
settings (a default output for ``on_timeout = "default"``, a decoy without an entry, one champion
per use case) is checked here. A bad value raises ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rvz.config.fields import config_error, specs
from rvz.config.settings import (
    ROLES,
    SECTIONS,
    Config,
    LimitsConfig,
    ModelConfig,
    RendezvousConfig,
    StreamsConfig,
    UseCaseConfig,
    Window,
    demo_config,
)
from rvz.errors import ConfigError, EncodeError
from rvz.wire.codec import to_value

_TOP_LEVEL = {*SECTIONS, "models", "use_cases"}
# Room for a stream message's envelope and framing beside the largest request or output it carries.
MESSAGE_OVERHEAD_BYTES = 64 * 1024


def load_config(path: str | Path | None) -> Config:
    """Read and validate ``path``; no path gives the demo deployment."""
    if path is None:
        return demo_config()
    source = str(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as e:
        raise ConfigError(f"{source}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not UTF-8 text: {e.reason} at byte {e.start}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    return parse_config(data, source)


def config_to_json(config: Config) -> str:
    """The effective configuration, for child processes (``config_from_json`` reads it back)."""
    data = asdict(config)
    source = data.pop("source")
    if data["rendezvous"]["default_output"] is None:
        del data["rendezvous"]["default_output"]
    return json.dumps({"config": data, "source": source})


def config_from_json(text: str) -> Config:
    wrapper = json.loads(text)
    return parse_config(wrapper["config"], wrapper["source"])


def parse_config(data: Mapping[str, Any], source: str) -> Config:
    _reject_unknown(data, "", _TOP_LEVEL, source)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = _table(data, name, source)
        sections[name] = (_rendezvous(table, "rendezvous.", source) if cls is RendezvousConfig
                          else cls(**section_values(cls, table, name + ".", source)))
    config = Config(**sections, models=_models(data.get("models", []), source),
                    use_cases=_use_cases(data.get("use_cases", []), source), source=source)
    _check_accept_names(config, data, source)
    check_limits(config.limits, source, "limits.message_bytes")
    check_work_stream(config.streams, source)
    check_requests_hub(config, source)
    check_rendezvous_hosts(config.streams, source)
    return config


def check_rendezvous_hosts(streams: StreamsConfig, source: str) -> None:
    """``streams.rendezvous_hosts``: one host per rendezvous, and tcp:// endpoints to put them in."""
    hosts = streams.hosts_of_rendezvous
    if not hosts:
        return
    if len(hosts) != streams.rendezvous_processes:
        raise config_error(source, "streams.rendezvous_hosts", f"names {len(hosts)} hosts for "
                           f"{streams.rendezvous_processes} rendezvous (streams.rendezvous_processes): give one each")
    for name in ("scores", "results"):
        if not getattr(streams, name).startswith("tcp://"):
            raise config_error(source, "streams.rendezvous_hosts", f"puts rendezvous on hosts of their own, which "
                               f"needs tcp:// endpoints; streams.{name} is {getattr(streams, name)!r}")
    if streams.work and not streams.work.startswith("tcp://"):
        raise config_error(source, "streams.rendezvous_hosts", f"needs a tcp:// streams.work, not {streams.work!r}")


def check_requests_hub(config: Config, source: str) -> None:
    """The requests hub's input (see ``StreamsConfig.requests_in``) cannot share an endpoint with a stream."""
    hub = config.requests_hub
    if not hub:
        return
    for name in ("requests", "scores", "results"):
        if getattr(config.streams, name) == hub or (name == "scores" and config.streams.work_endpoint == hub):
            key = "streams.requests_in" if config.streams.requests_in else "frontend.processes"
            stream = "streams.work" if getattr(config.streams, name) != hub else f"streams.{name}"
            raise config_error(source, key, f"the requests hub's input would be {hub!r}, the endpoint of {stream}; "
                               "give streams.requests_in an endpoint of its own")


def check_work_stream(streams: StreamsConfig, source: str) -> None:
    """The work stream (replicas, see ``StreamsConfig.work``) cannot share an endpoint with another stream."""
    work = streams.work_endpoint
    for name in ("requests", "scores", "results"):
        if getattr(streams, name) == work:
            key = "streams.work" if streams.work else f"streams.{name}"
            raise config_error(source, key, f"the work stream would be {work!r}, the endpoint of streams.{name}; "
                               "give streams.work an endpoint of its own")


def unknown_accept_names(schedule: tuple[Window, ...], models: Iterable[str]) -> list[tuple[int, str]]:
    """(window index, name) of each accepted name that is neither a role nor one of ``models``."""
    known = {*ROLES, *models}
    return [(i, name) for i, window in enumerate(schedule) for name in window.accept if name not in known]


def _check_accept_names(config: Config, data: Mapping[str, Any], source: str) -> None:
    # Models started by hand can still join, so only a config that lists its models can tell a typo.
    if not config.models or "schedule" not in data.get("rendezvous", {}):
        return
    names = {m.name for m in config.models}
    for i, name in unknown_accept_names(config.rendezvous.schedule, names):
        close = difflib.get_close_matches(name, [*ROLES, *sorted(names)], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise config_error(source, f"rendezvous.schedule[{i}].accept",
                           f"{name!r} is neither a role ({', '.join(r for r in ROLES if r != 'decoy')}) nor a "
                           f"model of [[models]] ({', '.join(sorted(names))}){hint}")


def check_limits(limits: LimitsConfig, source: str, key: str) -> None:
    """What involves several limits: a stream message must be able to carry the largest request or output."""
    need = max(limits.request_bytes, limits.output_bytes) + MESSAGE_OVERHEAD_BYTES
    if limits.message_bytes < need:
        raise config_error(source, key, f"must be at least {need} (the larger of "
                           "request_bytes and output_bytes, plus 64 KiB for the envelope), got "
                           f"{limits.message_bytes}")


def section_values(cls: type, data: Mapping[str, Any], prefix: str, source: str) -> dict[str, Any]:
    """The validated scalar settings of one table (unknown keys refused, required ones demanded)."""
    known = specs(cls)
    _reject_unknown(data, prefix, set(known), source)
    values: dict[str, Any] = {}
    for key, spec in known.items():
        if spec.setting.structured:
            continue
        if key in data:
            values[key] = spec.validate(data[key], source, prefix + key)
        elif spec.required:
            raise config_error(source, prefix + key, "is required")
    return values


def _table(data: Mapping[str, Any], key: str, source: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise config_error(source, key, f"must be a table, got {type(value).__name__}")
    return value


def _reject_unknown(data: Mapping[str, Any], prefix: str, known: set[str], source: str) -> None:
    for key in data:
        if key not in known:
            raise config_error(source, prefix + key, f"unknown key (known: {', '.join(sorted(known))})")


# --- the policy ----------------------------------------------------------------------------------


def parse_policy(data: Mapping[str, Any], source: str, prefix: str = "policy.") -> RendezvousConfig:
    """Validate a policy table given outside the config file (a policy file, the Admin API, saved admin
    state); errors name ``prefix`` + the key (a policy file's own table, e.g. "rendezvous.")."""
    return _rendezvous(data, prefix, source)


def _rendezvous(data: Mapping[str, Any], prefix: str, source: str) -> RendezvousConfig:
    values = section_values(RendezvousConfig, data, prefix, source)
    if "default_output" in data:
        values["default_output"] = _default_output(data["default_output"], prefix + "default_output", source)
    if "schedule" in data:
        values["schedule"] = _schedule(data["schedule"], prefix + "schedule", source)
    return check_policy(RendezvousConfig(**values), prefix, source)


def check_policy(policy: RendezvousConfig, prefix: str, source: str) -> RendezvousConfig:
    """What involves several settings of a policy."""
    if policy.on_timeout == "default" and policy.default_output is None:
        raise config_error(source, prefix + "default_output", 'is required when on_timeout = "default"')
    return policy


def _default_output(value: Any, key: str, source: str) -> Any:
    if value is not None:
        try:
            to_value(value)
        except EncodeError as e:
            raise config_error(source, key, str(e).removeprefix("output: ").removeprefix("output")) from e
    return value


def _schedule(data: Any, key: str, source: str) -> tuple[Window, ...]:
    if not isinstance(data, list) or not data:
        raise config_error(source, key, "must be a non-empty array of tables ([[rendezvous.schedule]])")
    windows: list[Window] = []
    for i, item in enumerate(data):
        windows.append(_window(item, f"{key}[{i}]", windows[-1] if windows else None, source))
    return tuple(windows)


_UNTIL = specs(RendezvousConfig)["deadline_ms"]  # a window's end is a positive number of ms, as a deadline


def _window(item: Any, key: str, previous: Window | None, source: str) -> Window:
    if not isinstance(item, Mapping):
        raise config_error(source, key, "must be a table with until_ms and accept")
    _reject_unknown(item, key + ".", {"until_ms", "accept"}, source)
    if "until_ms" not in item:
        raise config_error(source, key + ".until_ms", "is required")
    until_ms: float = _UNTIL.validate(item["until_ms"], source, key + ".until_ms")
    if previous and until_ms <= previous.until_ms:
        raise config_error(source, key + ".until_ms",
                           f"must be greater than the previous window's ({previous.until_ms:g})")
    accept = item.get("accept")
    if not isinstance(accept, list) or not accept or not all(isinstance(a, str) and a for a in accept):
        raise config_error(source, key + ".accept", "must be a non-empty list of roles or model names")
    if "decoy" in accept:
        raise config_error(source, key + ".accept", "a decoy never answers; remove 'decoy'")
    return Window(until_ms, tuple(accept))


# --- models --------------------------------------------------------------------------------------


def _models(data: Any, source: str) -> tuple[ModelConfig, ...]:
    if not isinstance(data, list):
        raise config_error(source, "models", "must be an array of tables ([[models]])")
    models: list[ModelConfig] = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise config_error(source, f"models[{i}]", "must be a table")
        model = parse_model(item, source, f"models[{i}].")
        _check_unique(models, model, f"models[{i}].", source)
        models.append(model)
    return tuple(models)


def parse_model(item: Mapping[str, Any], source: str, prefix: str = "") -> ModelConfig:
    """One model's table ([[models]], or the saved form of one given elsewhere)."""
    return check_model(ModelConfig(**section_values(ModelConfig, item, prefix, source)), source, prefix + "entry")


def check_model(model: ModelConfig, source: str, entry_key: str) -> ModelConfig:
    """What involves several settings of a model: only a decoy may have no entry, and it has no replicas."""
    if not model.entry and model.role != "decoy":
        raise config_error(source, entry_key, "must be MODULE:ATTR (e.g. mypkg.models:predict), got ''")
    if model.role == "decoy" and model.shared:
        key = entry_key.removesuffix("entry") + "replicas"
        raise config_error(source, key, f"must be 1 for a decoy (it archives every request), got {model.replicas}")
    return model


def _check_unique(models: list[ModelConfig], model: ModelConfig, prefix: str, source: str) -> None:
    for other in models:
        if other.use_case != model.use_case:
            continue
        if other.name == model.name:
            raise config_error(source, prefix + "name", f"{model.name!r} is used twice in use case {model.use_case!r}")
        if other.role == model.role == "champion":
            raise config_error(source, prefix + "role",
                               f"use case {model.use_case!r} already has a champion ({other.name!r})")


# --- use cases -----------------------------------------------------------------------------------


def _use_cases(data: Any, source: str) -> tuple[UseCaseConfig, ...]:
    if not isinstance(data, list):
        raise config_error(source, "use_cases", "must be an array of tables ([[use_cases]])")
    use_cases: list[UseCaseConfig] = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise config_error(source, f"use_cases[{i}]", "must be a table")
        use_case = UseCaseConfig(**section_values(UseCaseConfig, item, f"use_cases[{i}].", source))
        if any(u.name == use_case.name for u in use_cases):
            raise config_error(source, f"use_cases[{i}].name", f"{use_case.name!r} is declared twice")
        if use_case.probabilities and use_case.kind != "label":
            raise config_error(source, f"use_cases[{i}].probabilities", "only a label use case has probabilities")
        use_cases.append(use_case)
    return tuple(use_cases)
