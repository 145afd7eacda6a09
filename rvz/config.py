"""One TOML file configures every rvz process; every key has a default.

The file is read and validated once, into frozen dataclasses that are handed
down explicitly. A bad value raises ``ConfigError`` naming the file and the key,
so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

from rvz.errors import ConfigError, EncodeError
from rvz.wire.codec import to_value

Role = Literal["champion", "challenger", "canary", "decoy"]
OnTimeout = Literal["error", "default"]
# What gRPC core does with calls that wait too long for the frontend to pick them up (see rvz.grpc_overflow).
GrpcOverflow = Literal["cancel", "refuse"]
ROLES: tuple[str, ...] = get_args(Role)
DEFAULT_USE_CASE = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class FrontendConfig:
    listen: str = "127.0.0.1:50051"
    max_in_flight: int = 1000
    default_use_case: str = DEFAULT_USE_CASE
    # How often the frontend probes the pipeline; also the heartbeat period.
    heartbeat_ms: int = 100
    # No word from the rendezvous this long: answer UNAVAILABLE at once.
    rendezvous_timeout_ms: int = 1000
    # A model that has not answered a probe this long is considered gone.
    model_timeout_ms: int = 3000
    # Calls gRPC core may hold for the frontend before it turns new ones away at random (all of them at
    # 3x this), and how: "cancel" (gRPC's standard transport: CANCELLED, counted by the frontend) or
    # "refuse" (gRPC's promise-based HTTP/2 server: RESOURCE_EXHAUSTED). See rvz.grpc_overflow.
    grpc_backlog: int = 1000
    grpc_overflow: GrpcOverflow = "cancel"


@dataclass(frozen=True)
class StreamsConfig:
    requests: str = "tcp://127.0.0.1:5555"
    scores: str = "tcp://127.0.0.1:5556"
    results: str = "tcp://127.0.0.1:5557"
    # Messages queued per peer before a sender refuses more (never silently drops).
    high_water_mark: int = 100_000


@dataclass(frozen=True)
class LogConfig:
    dir: str = "rvz-data"
    segment_mb: int = 64
    fsync: bool = True
    # Answer a caller only once its request record is on disk (fdatasync'ed).
    durable_answers: bool = True
    # The rendezvous's scores and results logs are written before each answer is sent, and fdatasync'ed
    # at most this often: nobody waits on them, and syncing per loop pass costs a thread wake-up and a
    # sync per pass. A host crash can lose this much of them; never the request log (synced at once).
    sync_every_ms: float = 10.0


TraceExporter = Literal["none", "otlp", "console"]
MetricsExporter = Literal["none", "prometheus", "otlp", "console"]


@dataclass(frozen=True)
class TracingConfig:
    # OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_TRACES_SAMPLER(_ARG) override these.
    exporter: TraceExporter = "none"
    endpoint: str = ""
    sample_ratio: float = 1.0


@dataclass(frozen=True)
class MetricsConfig:
    # Prometheus scrape endpoint of the frontend; the rendezvous uses port + 1 and `rvz up`'s models
    # port + 2, + 3, ... Setting it implies exporter = "prometheus".
    listen: str = ""
    # OTEL_METRICS_EXPORTER overrides this.
    exporter: MetricsExporter = "none"


@dataclass(frozen=True)
class DriftConfig:
    # Warn (and expose in `rvz models` and the metrics) when a model's recent outputs are further than this
    # from the canary's: Jensen-Shannon distance for labels, KS statistic for numbers, both in [0, 1].
    threshold: float = 0.3
    check_s: float = 10.0


@dataclass(frozen=True)
class Window:
    until_ms: float
    accept: tuple[str, ...]


@dataclass(frozen=True)
class RendezvousConfig:
    deadline_ms: float = 100.0
    on_timeout: OnTimeout = "error"
    default_output: Any = None
    schedule: tuple[Window, ...] = (
        Window(30.0, ("champion",)),
        Window(100.0, ("champion", "challenger", "canary")),
    )
    # How long a score whose request has not been seen yet is held before it is logged as an orphan.
    early_score_ms: float = 1000.0


@dataclass(frozen=True)
class ModelConfig:
    name: str
    entry: str = ""  # a decoy needs none: it archives what it receives
    version: str = "1"
    role: Role = "champion"
    use_case: str = DEFAULT_USE_CASE
    # Upper bound on requests handed to predict_batch at once.
    batch_max: int = 32
    # A request already this far past its deadline is not scored: late scores are still logged for
    # comparison, but a model that falls far behind catches up instead of queueing without bound.
    late_limit_ms: float = 1000.0
    # CPU priority of the worker process (nice, 0-19): give comparison models (challengers, the canary,
    # a decoy) a higher one so that, on a busy machine, the champion and the rendezvous get the CPU first.
    # It stays with the process: a challenger promoted to champion keeps it until restarted.
    nice: int = 0


@dataclass(frozen=True)
class Config:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    rendezvous: RendezvousConfig = field(default_factory=RendezvousConfig)
    models: tuple[ModelConfig, ...] = ()
    tracing: TracingConfig = field(default_factory=TracingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    source: str = "<defaults>"

    def with_overrides(self, *, listen: str | None = None, data_dir: str | None = None) -> Config:
        """Apply command-line options, which win over the file."""
        config = self
        if listen:
            check_listen(listen, _Reader("command line"), "--listen")
            config = replace(config, frontend=replace(config.frontend, listen=listen))
        if data_dir:
            config = replace(config, log=replace(config.log, dir=data_dir))
        return config


DEMO_MODELS = (
    ModelConfig(name="gbm", version="1", role="champion", entry="rvz.demo:Champion"),
    ModelConfig(name="logreg", version="1", role="challenger", entry="rvz.demo:Challenger"),
    ModelConfig(name="rules", version="1", role="canary", entry="rvz.demo:Canary"),
    ModelConfig(name="archive", version="1", role="decoy"),
)


def demo_config() -> Config:
    return Config(models=DEMO_MODELS, source="<demo>")


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
    reader = _Reader(source)
    reader.reject_unknown(data, "", {"frontend", "streams", "log", "rendezvous", "models", "tracing", "metrics",
                                       "drift"})
    config = Config(
        frontend=_frontend(reader, reader.table(data, "frontend")),
        streams=_streams(reader, reader.table(data, "streams")),
        log=_log(reader, reader.table(data, "log")),
        rendezvous=parse_rendezvous(reader, reader.table(data, "rendezvous"), "rendezvous"),
        models=_models(reader, data.get("models", [])),
        tracing=_tracing(reader, reader.table(data, "tracing")),
        metrics=_metrics(reader, reader.table(data, "metrics")),
        drift=_drift(reader, reader.table(data, "drift")),
        source=source,
    )
    return config


class _Reader:
    """Typed access to TOML tables that names the file and key in every error."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a table, got {type(value).__name__}")
        return value

    def reject_unknown(self, data: Mapping[str, Any], prefix: str, known: set[str]) -> None:
        for key in data:
            if key not in known:
                raise self.fail(prefix + key, f"unknown key (known: {', '.join(sorted(known))})")

    def get(self, data: Mapping[str, Any], prefix: str, key: str, kind: type, default: Any) -> Any:
        if key not in data:
            return default
        value = data[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise self.fail(prefix + key, f"must be {_KIND_NAMES[kind]}, got {value!r}")
        return value

    def positive(self, data: Mapping[str, Any], prefix: str, key: str, kind: type, default: Any) -> Any:
        value = self.get(data, prefix, key, kind, default)
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise self.fail(prefix + key, f"must be a positive number, got {value!r}")
        return value

    def non_negative(self, data: Mapping[str, Any], prefix: str, key: str, kind: type, default: Any) -> Any:
        value = self.get(data, prefix, key, kind, default)
        if not value >= 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise self.fail(prefix + key, f"must be zero or a positive number, got {value!r}")
        return value

    def name(self, data: Mapping[str, Any], prefix: str, key: str, default: str | None) -> str:
        value = self.get(data, prefix, key, str, default)
        if value is None:
            raise self.fail(prefix + key, "is required")
        if not _NAME.match(value):
            raise self.fail(prefix + key, f"{value!r} must be 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)")
        return cast(str, value)

    def choice(self, data: Mapping[str, Any], prefix: str, key: str, choices: Sequence[str], default: str) -> str:
        value = self.get(data, prefix, key, str, default)
        if value not in choices:
            raise self.fail(prefix + key, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return cast(str, value)

    def endpoint(self, data: Mapping[str, Any], prefix: str, key: str, default: str) -> str:
        value = self.get(data, prefix, key, str, default)
        if not re.match(r"^(tcp|ipc|inproc)://.+", value):
            raise self.fail(prefix + key, f"must be a ZeroMQ endpoint like tcp://127.0.0.1:5555, got {value!r}")
        return cast(str, value)


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}


def _frontend(r: _Reader, data: Mapping[str, Any]) -> FrontendConfig:
    p, d = "frontend.", FrontendConfig()
    r.reject_unknown(data, p, set(FrontendConfig.__dataclass_fields__))
    return FrontendConfig(
        listen=check_listen(r.get(data, p, "listen", str, d.listen), r, p + "listen"),
        max_in_flight=r.positive(data, p, "max_in_flight", int, d.max_in_flight),
        default_use_case=r.name(data, p, "default_use_case", d.default_use_case),
        heartbeat_ms=r.positive(data, p, "heartbeat_ms", int, d.heartbeat_ms),
        rendezvous_timeout_ms=r.positive(data, p, "rendezvous_timeout_ms", int, d.rendezvous_timeout_ms),
        model_timeout_ms=r.positive(data, p, "model_timeout_ms", int, d.model_timeout_ms),
        grpc_backlog=r.positive(data, p, "grpc_backlog", int, d.grpc_backlog),
        grpc_overflow=cast(GrpcOverflow, r.choice(data, p, "grpc_overflow", get_args(GrpcOverflow),
                                                  d.grpc_overflow)),
    )


def check_listen(listen: str, r: _Reader, key: str) -> str:
    match = re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\s\[\]]+):(\d{1,5})$", listen)
    if not match or int(match.group(2)) > 65535:
        raise r.fail(key, f"must be HOST:PORT with a port from 0 to 65535, got {listen!r}")
    return listen


def _tracing(r: _Reader, data: Mapping[str, Any]) -> TracingConfig:
    p, d = "tracing.", TracingConfig()
    r.reject_unknown(data, p, set(TracingConfig.__dataclass_fields__))
    ratio = r.get(data, p, "sample_ratio", float, d.sample_ratio)
    if not 0.0 <= ratio <= 1.0:
        raise r.fail(p + "sample_ratio", f"must be between 0 and 1, got {ratio!r}")
    return TracingConfig(
        exporter=cast(TraceExporter, r.choice(data, p, "exporter", get_args(TraceExporter), d.exporter)),
        endpoint=r.get(data, p, "endpoint", str, d.endpoint),
        sample_ratio=ratio,
    )


def _drift(r: _Reader, data: Mapping[str, Any]) -> DriftConfig:
    p, d = "drift.", DriftConfig()
    r.reject_unknown(data, p, set(DriftConfig.__dataclass_fields__))
    threshold = r.positive(data, p, "threshold", float, d.threshold)
    if threshold > 1:
        raise r.fail(p + "threshold", f"must be at most 1 (divergences are in [0, 1]), got {threshold!r}")
    return DriftConfig(threshold=threshold, check_s=r.positive(data, p, "check_s", float, d.check_s))


def _metrics(r: _Reader, data: Mapping[str, Any]) -> MetricsConfig:
    p, d = "metrics.", MetricsConfig()
    r.reject_unknown(data, p, set(MetricsConfig.__dataclass_fields__))
    listen = r.get(data, p, "listen", str, d.listen)
    return MetricsConfig(
        listen=check_listen(listen, r, p + "listen") if listen else "",
        exporter=cast(MetricsExporter, r.choice(data, p, "exporter", get_args(MetricsExporter), d.exporter)),
    )


def _streams(r: _Reader, data: Mapping[str, Any]) -> StreamsConfig:
    p, d = "streams.", StreamsConfig()
    r.reject_unknown(data, p, set(StreamsConfig.__dataclass_fields__))
    return StreamsConfig(
        requests=r.endpoint(data, p, "requests", d.requests),
        scores=r.endpoint(data, p, "scores", d.scores),
        results=r.endpoint(data, p, "results", d.results),
        high_water_mark=r.positive(data, p, "high_water_mark", int, d.high_water_mark),
    )


def _log(r: _Reader, data: Mapping[str, Any]) -> LogConfig:
    p, d = "log.", LogConfig()
    r.reject_unknown(data, p, set(LogConfig.__dataclass_fields__))
    return LogConfig(
        dir=r.get(data, p, "dir", str, d.dir),
        segment_mb=r.positive(data, p, "segment_mb", int, d.segment_mb),
        fsync=r.get(data, p, "fsync", bool, d.fsync),
        durable_answers=r.get(data, p, "durable_answers", bool, d.durable_answers),
        sync_every_ms=r.non_negative(data, p, "sync_every_ms", float, d.sync_every_ms),
    )


def parse_policy(data: Mapping[str, Any], source: str) -> RendezvousConfig:
    """Validate a policy table given outside the config file (the Admin API, saved admin state)."""
    return parse_rendezvous(_Reader(source), data, "policy")


def parse_rendezvous(r: _Reader, data: Mapping[str, Any], prefix: str) -> RendezvousConfig:
    """Validate a policy table (also used when a policy is changed while serving)."""
    p, d = prefix + ".", RendezvousConfig()
    r.reject_unknown(data, p, set(RendezvousConfig.__dataclass_fields__))
    deadline_ms = r.positive(data, p, "deadline_ms", float, d.deadline_ms)
    on_timeout = r.choice(data, p, "on_timeout", get_args(OnTimeout), d.on_timeout)
    default_output = data.get("default_output")
    if on_timeout == "default" and default_output is None:
        raise r.fail(p + "default_output", 'is required when on_timeout = "default"')
    if default_output is not None:
        try:
            to_value(default_output)
        except EncodeError as e:
            raise r.fail(p + "default_output", str(e).removeprefix("output: ").removeprefix("output")) from e
    schedule = _schedule(r, data["schedule"], p + "schedule") if "schedule" in data else d.schedule
    return RendezvousConfig(
        deadline_ms=deadline_ms,
        on_timeout=cast(OnTimeout, on_timeout),
        default_output=default_output,
        schedule=schedule,
        early_score_ms=r.positive(data, p, "early_score_ms", float, d.early_score_ms),
    )


def _schedule(r: _Reader, data: Any, key: str) -> tuple[Window, ...]:
    if not isinstance(data, list) or not data:
        raise r.fail(key, "must be a non-empty array of tables ([[rendezvous.schedule]])")
    windows: list[Window] = []
    for i, item in enumerate(data):
        p = f"{key}[{i}]."
        if not isinstance(item, Mapping):
            raise r.fail(f"{key}[{i}]", "must be a table with until_ms and accept")
        r.reject_unknown(item, p, {"until_ms", "accept"})
        if "until_ms" not in item:
            raise r.fail(p + "until_ms", "is required")
        until_ms = r.positive(item, p, "until_ms", float, None)
        if windows and until_ms <= windows[-1].until_ms:
            raise r.fail(p + "until_ms", f"must be greater than the previous window's ({windows[-1].until_ms:g})")
        accept = item.get("accept")
        if not isinstance(accept, list) or not accept or not all(isinstance(a, str) and a for a in accept):
            raise r.fail(p + "accept", "must be a non-empty list of roles or model names")
        if "decoy" in accept:
            raise r.fail(p + "accept", "a decoy never answers; remove 'decoy'")
        windows.append(Window(until_ms, tuple(accept)))
    return tuple(windows)


def _models(r: _Reader, data: Any) -> tuple[ModelConfig, ...]:
    if not isinstance(data, list):
        raise r.fail("models", "must be an array of tables ([[models]])")
    models: list[ModelConfig] = []
    for i, item in enumerate(data):
        if not isinstance(item, Mapping):
            raise r.fail(f"models[{i}]", "must be a table")
        model = _model(r, item, f"models[{i}].")
        _check_unique(r, models, model, f"models[{i}].")
        models.append(model)
    return tuple(models)


def parse_model(item: Mapping[str, Any], source: str) -> ModelConfig:
    """One model given outside [[models]] (command-line options of `rvz model run` and `rvz replay`)."""
    return _model(_Reader(source), item, "")


def _model(r: _Reader, item: Mapping[str, Any], p: str) -> ModelConfig:
    r.reject_unknown(item, p, set(ModelConfig.__dataclass_fields__))
    role = r.choice(item, p, "role", ROLES, "champion")
    entry = r.get(item, p, "entry", str, "")
    if (entry or role != "decoy") and not re.match(r"^[\w.]+:[\w.]+$", entry):
        raise r.fail(p + "entry", f"must be MODULE:ATTR (e.g. mypkg.models:predict), got {entry!r}")
    return ModelConfig(
        name=r.name(item, p, "name", None),
        entry=entry,
        version=r.get(item, p, "version", str, "1"),
        role=cast(Role, role),
        use_case=r.name(item, p, "use_case", DEFAULT_USE_CASE),
        batch_max=r.positive(item, p, "batch_max", int, 32),
        late_limit_ms=r.get(item, p, "late_limit_ms", float, 1000.0),
        nice=_nice(r, item, p),
    )


def _nice(r: _Reader, item: Mapping[str, Any], p: str) -> int:
    nice: int = r.get(item, p, "nice", int, 0)
    if not 0 <= nice <= 19:
        raise r.fail(p + "nice", f"must be from 0 (as the rendezvous and frontend) to 19 (lowest CPU priority), "
                                 f"got {nice}")
    return nice


def _check_unique(r: _Reader, models: list[ModelConfig], model: ModelConfig, prefix: str) -> None:
    for other in models:
        if other.use_case != model.use_case:
            continue
        if other.name == model.name:
            raise r.fail(prefix + "name", f"{model.name!r} is used twice in use case {model.use_case!r}")
        if other.role == model.role == "champion":
            raise r.fail(prefix + "role", f"use case {model.use_case!r} already has a champion ({other.name!r})")
