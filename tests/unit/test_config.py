"""Loading and validating the TOML configuration (rvz.config)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rvz.config import (
    Config,
    FrontendConfig,
    LogConfig,
    ModelConfig,
    RendezvousConfig,
    StreamsConfig,
    Window,
    config_from_json,
    config_to_json,
    demo_config,
    load_config,
)
from rvz.errors import ConfigError

pytestmark = pytest.mark.timeout(30)

FULL_TOML = """
[frontend]
listen = "[::1]:6000"
max_in_flight = 50
default_use_case = "fraud"
heartbeat_ms = 50
rendezvous_timeout_ms = 500
model_timeout_ms = 2000
grpc_backlog = 300
grpc_overflow = "refuse"

[streams]
requests = "ipc:///tmp/rvz-requests"
scores = "tcp://10.0.0.1:7001"
results = "inproc://results"
high_water_mark = 10

[log]
dir = "/var/lib/rvz"
segment_mb = 8
fsync = false
durable_answers = false
sync_every_ms = 0

[rendezvous]
deadline_ms = 250
on_timeout = "default"
default_output = { label = "unknown", probabilities = [0.5, 0.5] }
early_score_ms = 2.5

[[rendezvous.schedule]]
until_ms = 20
accept = ["champion"]

[[rendezvous.schedule]]
until_ms = 80.5
accept = ["gbm", "challenger"]

[[rendezvous.schedule]]
until_ms = 250
accept = ["champion", "challenger", "canary"]

[[models]]
name = "gbm"
entry = "mymodels.fraud:Champion"
version = "2024.1"
role = "champion"
use_case = "fraud"
batch_max = 64

[[models]]
name = "logreg"
entry = "mymodels.fraud:predict"
nice = 10
role = "challenger"
use_case = "fraud"

[[models]]
name = "archive"
role = "decoy"
use_case = "fraud"

[[models]]
name = "gbm"
entry = "mymodels.churn:Model"
"""

FULL_CONFIG = Config(
    frontend=FrontendConfig(listen="[::1]:6000", max_in_flight=50, default_use_case="fraud", heartbeat_ms=50,
                            rendezvous_timeout_ms=500, model_timeout_ms=2000, grpc_backlog=300,
                            grpc_overflow="refuse"),
    streams=StreamsConfig(requests="ipc:///tmp/rvz-requests", scores="tcp://10.0.0.1:7001",
                          results="inproc://results", high_water_mark=10),
    log=LogConfig(dir="/var/lib/rvz", segment_mb=8, fsync=False, durable_answers=False, sync_every_ms=0.0),
    rendezvous=RendezvousConfig(
        deadline_ms=250.0, on_timeout="default",
        default_output={"label": "unknown", "probabilities": [0.5, 0.5]},
        schedule=(Window(20.0, ("champion",)), Window(80.5, ("gbm", "challenger")),
                  Window(250.0, ("champion", "challenger", "canary"))),
        early_score_ms=2.5),
    models=(
        ModelConfig(name="gbm", entry="mymodels.fraud:Champion", version="2024.1", role="champion",
                    use_case="fraud", batch_max=64),
        ModelConfig(name="logreg", entry="mymodels.fraud:predict", role="challenger", use_case="fraud", nice=10),
        ModelConfig(name="archive", role="decoy", use_case="fraud"),
        # The same name and a second champion are fine in another use case.
        ModelConfig(name="gbm", entry="mymodels.churn:Model"),
    ),
)


def write(tmp_path: Path, text: str, name: str = "rvz.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --- valid files ---------------------------------------------------------------------------------


def test_no_file_gives_the_demo_deployment() -> None:
    config = load_config(None)
    assert config == demo_config()
    assert config.source == "<demo>"
    assert [(m.name, m.role, m.entry) for m in config.models] == [
        ("gbm", "champion", "rvz.demo:Champion"),
        ("logreg", "challenger", "rvz.demo:Challenger"),
        ("rules", "canary", "rvz.demo:Canary"),
        ("archive", "decoy", ""),
    ]
    assert {m.use_case for m in config.models} == {"default"}
    assert (config.frontend, config.streams, config.log) == (FrontendConfig(), StreamsConfig(), LogConfig())
    assert config.rendezvous == RendezvousConfig()
    assert config.rendezvous.schedule == (Window(30.0, ("champion",)),
                                          Window(100.0, ("champion", "challenger", "canary")))


def test_an_empty_file_gives_every_default_and_no_models(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    assert load_config(path) == Config(source=str(path))


def test_a_full_file_is_read_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_TOML)
    config = load_config(path)
    assert config == replace(FULL_CONFIG, source=str(path))
    assert isinstance(config.rendezvous.deadline_ms, float)
    assert isinstance(config.rendezvous.schedule[0].until_ms, float)


def test_load_config_accepts_a_str_path(tmp_path: Path) -> None:
    path = write(tmp_path, '[frontend]\nlisten = "0.0.0.0:7000"\n')
    assert load_config(str(path)).frontend.listen == "0.0.0.0:7000"


@pytest.mark.parametrize("config", [demo_config(), Config(), FULL_CONFIG], ids=["demo", "defaults", "full"])
def test_json_round_trip(config: Config) -> None:
    text = config_to_json(config)
    assert json.loads(text)["source"] == config.source
    assert config_from_json(text) == config


def test_json_from_a_file_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_TOML))
    assert config_from_json(config_to_json(config)) == config


def test_bad_json_config_names_its_source() -> None:
    data = json.loads(config_to_json(demo_config()))
    data["config"]["rendezvous"]["deadline_ms"] = -1
    with pytest.raises(ConfigError) as info:
        config_from_json(json.dumps(data))
    assert str(info.value) == "<demo>: rendezvous.deadline_ms: must be a positive number, got -1.0"


def test_with_overrides() -> None:
    config = demo_config()
    changed = config.with_overrides(listen="0.0.0.0:9000", data_dir="/srv/rvz")
    assert changed.frontend == FrontendConfig(listen="0.0.0.0:9000")
    assert changed.log == LogConfig(dir="/srv/rvz")
    assert (changed.models, changed.rendezvous, changed.source) == (config.models, config.rendezvous, "<demo>")
    assert config.frontend.listen == "127.0.0.1:50051"  # the original is untouched
    assert config.with_overrides() == config
    assert config.with_overrides(listen=None, data_dir="") == config


# --- errors --------------------------------------------------------------------------------------

ERRORS = [
    # (id, file text, "key: problem" expected after the file path)
    ("on_timeout", '[rendezvous]\non_timeout = "retry"',
     "rendezvous.on_timeout: must be one of 'error', 'default', got 'retry'"),
    ("default without output", '[rendezvous]\non_timeout = "default"',
     'rendezvous.default_output: is required when on_timeout = "default"'),
    ("deadline zero", "[rendezvous]\ndeadline_ms = 0",
     "rendezvous.deadline_ms: must be a positive number, got 0.0"),
    ("deadline inf", "[rendezvous]\ndeadline_ms = inf",
     "rendezvous.deadline_ms: must be a positive number, got inf"),
    ("deadline string", '[rendezvous]\ndeadline_ms = "fast"',
     "rendezvous.deadline_ms: must be a number, got 'fast'"),
    ("deadline bool", "[rendezvous]\ndeadline_ms = true",
     "rendezvous.deadline_ms: must be a number, got True"),
    ("early_score_ms", "[rendezvous]\nearly_score_ms = -1",
     "rendezvous.early_score_ms: must be a positive number, got -1.0"),
    ("schedule empty", "[rendezvous]\nschedule = []",
     "rendezvous.schedule: must be a non-empty array of tables ([[rendezvous.schedule]])"),
    ("schedule item", "[rendezvous]\nschedule = [1]",
     "rendezvous.schedule[0]: must be a table with until_ms and accept"),
    ("until_ms missing", '[[rendezvous.schedule]]\naccept = ["champion"]',
     "rendezvous.schedule[0].until_ms: is required"),
    ("until_ms negative", '[[rendezvous.schedule]]\nuntil_ms = -5\naccept = ["champion"]',
     "rendezvous.schedule[0].until_ms: must be a positive number, got -5.0"),
    ("until_ms not increasing",
     '[[rendezvous.schedule]]\nuntil_ms = 50\naccept = ["champion"]\n'
     '[[rendezvous.schedule]]\nuntil_ms = 50\naccept = ["challenger"]',
     "rendezvous.schedule[1].until_ms: must be greater than the previous window's (50)"),
    ("accept decoy", '[[rendezvous.schedule]]\nuntil_ms = 50\naccept = ["champion", "decoy"]',
     "rendezvous.schedule[0].accept: a decoy never answers; remove 'decoy'"),
    ("accept empty", "[[rendezvous.schedule]]\nuntil_ms = 50\naccept = []",
     "rendezvous.schedule[0].accept: must be a non-empty list of roles or model names"),
    ("accept not strings", "[[rendezvous.schedule]]\nuntil_ms = 50\naccept = [1]",
     "rendezvous.schedule[0].accept: must be a non-empty list of roles or model names"),
    ("accept empty string", '[[rendezvous.schedule]]\nuntil_ms = 50\naccept = [""]',
     "rendezvous.schedule[0].accept: must be a non-empty list of roles or model names"),
    ("schedule unknown key", '[[rendezvous.schedule]]\nuntil_ms = 50\naccept = ["champion"]\nreject = []',
     "rendezvous.schedule[0].reject: unknown key (known: accept, until_ms)"),
    ("entry missing", '[[models]]\nname = "lr"\nrole = "challenger"',
     "models[0].entry: must be MODULE:ATTR (e.g. mypkg.models:predict), got ''"),
    ("entry without colon", '[[models]]\nname = "lr"\nentry = "mymodels.predict"',
     "models[0].entry: must be MODULE:ATTR (e.g. mypkg.models:predict), got 'mymodels.predict'"),
    ("decoy with bad entry", '[[models]]\nname = "archive"\nrole = "decoy"\nentry = "x"',
     "models[0].entry: must be MODULE:ATTR (e.g. mypkg.models:predict), got 'x'"),
    ("bad role", '[[models]]\nname = "lr"\nentry = "m:f"\nrole = "leader"',
     "models[0].role: must be one of 'champion', 'challenger', 'canary', 'decoy', got 'leader'"),
    ("two champions", '[[models]]\nname = "a"\nentry = "m:a"\n[[models]]\nname = "b"\nentry = "m:b"',
     "models[1].role: use case 'default' already has a champion ('a')"),
    ("duplicate name",
     '[[models]]\nname = "a"\nentry = "m:a"\n[[models]]\nname = "a"\nentry = "m:b"\nrole = "canary"',
     "models[1].name: 'a' is used twice in use case 'default'"),
    ("name missing", '[[models]]\nentry = "m:f"', "models[0].name: is required"),
    ("bad name", '[[models]]\nname = "-x"\nentry = "m:f"',
     "models[0].name: '-x' must be 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)"),
    ("bad use case", '[[models]]\nname = "x"\nentry = "m:f"\nuse_case = "a b"',
     "models[0].use_case: 'a b' must be 1-128 of A-Z a-z 0-9 . _ - (not starting with . _ -)"),
    ("batch_max", '[[models]]\nname = "x"\nentry = "m:f"\nbatch_max = 0',
     "models[0].batch_max: must be a positive number, got 0"),
    ("version type", '[[models]]\nname = "x"\nentry = "m:f"\nversion = 2',
     "models[0].version: must be a string, got 2"),
    ("model unknown key", '[[models]]\nname = "x"\nentry = "m:f"\ngpu = true',
     "models[0].gpu: unknown key (known: batch_max, entry, late_limit_ms, name, nice, replica_queue, replicas, role, "
     "use_case, version, watchdog_ms)"),
    ("late limit negative", '[[models]]\nname = "m"\nentry = "a:b"\nlate_limit_ms = -5.0',
     "models[0].late_limit_ms: must be zero or a positive number, got -5.0"),
    ("nice too high", '[[models]]\nname = "m"\nentry = "a:b"\nnice = 20',
     "models[0].nice: must be from 0 (as the rendezvous and frontend) to 19 (lowest CPU priority), got 20"),
    ("nice negative", '[[models]]\nname = "m"\nentry = "a:b"\nnice = -5',
     "models[0].nice: must be from 0 (as the rendezvous and frontend) to 19 (lowest CPU priority), got -5"),
    ("models not an array", '[models]\nname = "x"', "models: must be an array of tables ([[models]])"),
    ("models item", "models = [1]", "models[0]: must be a table"),
    ("unknown top-level key", "[metric]\nport = 9090",
     "metric: unknown key (known: drift, frontend, limits, log, metrics, models, rendezvous, security, streams, "
     "tls, tracing, use_cases)"),
    ("use case kind missing", '[[use_cases]]\nname = "d"', "use_cases[0].kind: is required"),
    ("use case kind", '[[use_cases]]\nname = "d"\nkind = "nominal"',
     "use_cases[0].kind: must be one of 'label', 'number', got 'nominal'"),
    ("use case output path", '[[use_cases]]\nname = "d"\nkind = "number"\noutput = "a..b"',
     "use_cases[0].output: must be a dict key, or keys joined by dots (e.g. result.score), got 'a..b'"),
    ("use case twice", '[[use_cases]]\nname = "d"\nkind = "label"\n[[use_cases]]\nname = "d"\nkind = "label"',
     "use_cases[1].name: 'd' is declared twice"),
    ("number probabilities", '[[use_cases]]\nname = "d"\nkind = "number"\nprobabilities = "p"',
     "use_cases[0].probabilities: only a label use case has probabilities"),
    ("unknown metrics key", "[metrics]\nport = 9090",
     "metrics.port: unknown key (known: exporter, listen)"),
    ("bad trace exporter", '[tracing]\nexporter = "jaeger"',
     "tracing.exporter: must be one of 'none', 'otlp', 'console', got 'jaeger'"),
    ("sample ratio above 1", "[tracing]\nsample_ratio = 1.5",
     "tracing.sample_ratio: must be between 0 and 1, got 1.5"),
    ("unknown frontend key", "[frontend]\nport = 9090",
     "frontend.port: unknown key (known: default_use_case, grpc_backlog, grpc_overflow, heartbeat_ms, listen, "
     "max_in_flight, "
     "model_timeout_ms, processes, rendezvous_timeout_ms)"),
    ("frontend not a table", 'frontend = "x"', "frontend: must be a table, got str"),
    ("max_in_flight float", "[frontend]\nmax_in_flight = 1.5", "frontend.max_in_flight: must be an integer, got 1.5"),
    ("max_in_flight bool", "[frontend]\nmax_in_flight = true",
     "frontend.max_in_flight: must be an integer, got True"),
    ("heartbeat zero", "[frontend]\nheartbeat_ms = 0", "frontend.heartbeat_ms: must be a positive number, got 0"),
    ("gRPC backlog zero", "[frontend]\ngrpc_backlog = 0", "frontend.grpc_backlog: must be a positive number, got 0"),
    ("unknown gRPC overflow", '[frontend]\ngrpc_overflow = "drop"',
     "frontend.grpc_overflow: must be one of 'cancel', 'refuse', got 'drop'"),
    ("negative sync period", "[log]\nsync_every_ms = -1",
     "log.sync_every_ms: must be zero or a positive number, got -1.0"),
    ("sync period not a number", '[log]\nsync_every_ms = "10"', "log.sync_every_ms: must be a number, got '10'"),
    ("listen without port", '[frontend]\nlisten = "localhost"',
     "frontend.listen: must be HOST:PORT with a port from 0 to 65535, got 'localhost'"),
    ("listen port too large", '[frontend]\nlisten = "localhost:99999"',
     "frontend.listen: must be HOST:PORT with a port from 0 to 65535, got 'localhost:99999'"),
    ("listen bad port", '[frontend]\nlisten = "localhost:http"',
     "frontend.listen: must be HOST:PORT with a port from 0 to 65535, got 'localhost:http'"),
    ("listen type", "[frontend]\nlisten = 50051", "frontend.listen: must be a string, got 50051"),
    ("bad endpoint", '[streams]\nrequests = "localhost:5555"',
     "streams.requests: must be a ZeroMQ endpoint like tcp://127.0.0.1:5555, got 'localhost:5555'"),
    ("bad endpoint scheme", '[streams]\nresults = "udp://127.0.0.1:5557"',
     "streams.results: must be a ZeroMQ endpoint like tcp://127.0.0.1:5555, got 'udp://127.0.0.1:5557'"),
    ("fsync type", '[log]\nfsync = "yes"', "log.fsync: must be true or false, got 'yes'"),
    ("segment_mb", "[log]\nsegment_mb = -1", "log.segment_mb: must be a positive number, got -1"),
    ("log dir type", "[log]\ndir = 3", "log.dir: must be a string, got 3"),
]


@pytest.mark.parametrize(("text", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_invalid_values_name_the_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text + "\n")
    assert load_error(path) == f"{path}: {expected}"


def test_invalid_toml_syntax(tmp_path: Path) -> None:
    path = write(tmp_path, "[rendezvous]\ndeadline_ms = \n")
    message = load_error(path)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line 2" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert load_error(path) == f"{path}: file not found"


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('[log]\ndir = "données"\n'.encode("latin-1"))
    assert load_error(path).startswith(f"{path}: ")


def test_a_directory_instead_of_a_file(tmp_path: Path) -> None:
    assert load_error(tmp_path).startswith(f"{tmp_path}: ")


@pytest.mark.parametrize("value", ["nan", "1979-05-27"])
def test_default_output_must_be_encodable(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f'[rendezvous]\non_timeout = "default"\ndefault_output = {value}\n')
    assert load_error(path).startswith(f"{path}: rendezvous.default_output: ")
