"""The configuration of a deployment: frozen dataclasses, each field a setting declared once.

Each field's default, range, format and help text are here and nowhere else: the TOML reader
(``rvz.config.toml``), the environment (``rvz.config.overrides``) and the command-line options
(``rvz.config.cli``) all read them from these declarations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from rvz.config.fields import (
    directory_problem,
    endpoint_problem,
    entry_problem,
    field_path_problem,
    hosts_problem,
    listen_problem,
    metrics_listen_problem,
    name_problem,
    optional_endpoint_problem,
    optional_listen_problem,
    setting,
)

Role = Literal["champion", "challenger", "canary", "decoy"]
OnTimeout = Literal["error", "default"]
# What gRPC core does with calls that wait too long for the frontend to pick them up (see rvz.grpc_overflow).
GrpcOverflow = Literal["cancel", "refuse"]
# How a use case's outputs (and truths) are compared: as labels (classes) or as numbers.
OutputKind = Literal["label", "number"]
TraceExporter = Literal["none", "otlp", "console"]
MetricsExporter = Literal["none", "prometheus", "otlp", "console"]
ROLES: tuple[str, ...] = get_args(Role)
DEFAULT_USE_CASE = "default"
POSITIVE: dict[str, Any] = {"minimum": 0, "above_minimum": True}
NOT_NEGATIVE: dict[str, Any] = {"minimum": 0}


@dataclass(frozen=True)
class FrontendConfig:
    listen: str = setting("127.0.0.1:50051", "HOST:PORT the gRPC frontend listens on (port 0: any free port).",
                          check=listen_problem, metavar="HOST:PORT")
    max_in_flight: int = setting(1000, "Calls in flight at most; more are refused with RESOURCE_EXHAUSTED.",
                                 **POSITIVE)
    default_use_case: str = setting(DEFAULT_USE_CASE, "Use case of a request that names none.", check=name_problem)
    heartbeat_ms: int = setting(100, "How often the frontend probes the pipeline; also the heartbeat period.",
                                **POSITIVE)
    rendezvous_timeout_ms: int = setting(1000, "No word from the rendezvous this long: answer UNAVAILABLE at once.",
                                         **POSITIVE)
    model_timeout_ms: int = setting(3000, "A model that has not answered a probe this long is considered gone.",
                                    **POSITIVE)
    grpc_backlog: int = setting(1000, "Calls gRPC core may hold for the frontend before it turns new ones away at "
                                "random (all of them at 3x this).", **POSITIVE)
    processes: int = setting(1, "Frontend processes `rvz up` starts, serving frontend.listen together (SO_REUSEPORT: "
                             "the kernel spreads connections over them); more than 1 runs the requests hub (see "
                             "streams.requests_in).", minimum=1, maximum=64)
    grpc_overflow: GrpcOverflow = setting("cancel", "How gRPC core turns calls away past grpc_backlog: cancel "
                                          "(CANCELLED, counted by the frontend) or refuse (RESOURCE_EXHAUSTED, "
                                          "gRPC's promise-based HTTP/2 server).")


@dataclass(frozen=True)
class StreamsConfig:
    requests: str = setting("tcp://127.0.0.1:5555", "ZeroMQ endpoint of the requests stream (the frontend binds it).",
                            check=endpoint_problem, metavar="ENDPOINT")
    scores: str = setting("tcp://127.0.0.1:5556", "ZeroMQ endpoint of the scores stream (the rendezvous binds it).",
                          check=endpoint_problem, metavar="ENDPOINT")
    results: str = setting("tcp://127.0.0.1:5557", "ZeroMQ endpoint of the results stream (the rendezvous binds "
                           "it).", check=endpoint_problem, metavar="ENDPOINT")
    high_water_mark: int = setting(100_000, "Messages queued per peer before a sender refuses more (never "
                                   "silently drops).", **POSITIVE)
    requests_in: str = setting("", "ZeroMQ endpoint of the requests hub's input: with it (or frontend.processes > "
                               "1), `rvz hub` binds streams.requests and this endpoint, and every frontend, on this "
                               "host or another, publishes to the hub instead of binding streams.requests, so any "
                               "number of frontends share one deployment [default with frontend.processes > 1: "
                               "from streams.requests: its ipc path + '.in', or its tcp port + 4].",
                               check=optional_endpoint_problem, metavar="ENDPOINT")
    rendezvous_processes: int = setting(1, "Rendezvous processes sharing the requests: the frontend gives each "
                                        "request to one of the live ones, whose scores the models send there. "
                                        "The first binds streams.scores, results and work; rendezvous i (from 0) "
                                        "binds them with their tcp port + 10 x i (ipc: path + '.i'), or on its own "
                                        "host (see rendezvous_hosts).", minimum=1, maximum=16)
    rendezvous_hosts: str = setting("", "Rendezvous on several hosts: one host per rendezvous process, comma-separated "
                                    "(e.g. \"rv1.example, rv2.example\"); rendezvous i binds streams.scores, results "
                                    "and work on host i, with their ports. Empty: all on the host of those "
                                    "endpoints.", check=hosts_problem, metavar="HOST,HOST,...")
    work: str = setting("", "ZeroMQ endpoint of the work stream: the rendezvous binds it when a model has replicas, "
                        "and each replica takes its share of that model's requests from it [default: from "
                        "streams.scores: its ipc path + '.work', or its tcp port + 2].",
                        check=optional_endpoint_problem, metavar="ENDPOINT")

    def of_rendezvous(self, index: int) -> StreamsConfig:
        """The streams as rendezvous ``index`` (from 0) binds them: these for the first, derived for the others
        (see ``rendezvous_processes``); the requests stream is everyone's."""
        hosts = self.hosts_of_rendezvous
        if hosts:
            host = hosts[index]
            return replace(self, scores=_on_host(self.scores, host), results=_on_host(self.results, host),
                           work=_on_host(self.work_endpoint, host))
        if index == 0:
            return self
        return replace(self, scores=_nth(self.scores, index), results=_nth(self.results, index),
                       work=_nth(self.work_endpoint, index))

    @property
    def hosts_of_rendezvous(self) -> list[str]:
        """``rendezvous_hosts`` as a list (empty when not given)."""
        return [h.strip() for h in self.rendezvous_hosts.split(",") if h.strip()]

    @property
    def rendezvous(self) -> list[StreamsConfig]:
        """The streams of every rendezvous process, in index order."""
        return [self.of_rendezvous(i) for i in range(self.rendezvous_processes)]

    @property
    def work_endpoint(self) -> str:
        """``work``, or the endpoint derived from ``scores`` when it is empty (see the setting)."""
        return self.work or derived_endpoint(self.scores, 2, ".work")


def _on_host(endpoint: str, host: str) -> str:
    """A tcp endpoint with ``host`` in place of its own (checked tcp:// when the config is read)."""
    _, _, port = endpoint.rpartition(":")
    return f"tcp://{host}:{port}"


def _nth(endpoint: str, index: int) -> str:
    """The endpoint of rendezvous ``index``: a tcp port + 10 x index, or an ipc path + '.index'."""
    return derived_endpoint(endpoint, 10 * index, f".{index}")


def derived_endpoint(endpoint: str, port_offset: int, suffix: str) -> str:
    """An endpoint of its own next to ``endpoint``: its tcp port + ``port_offset``, else (ipc, or a port that
    would pass 65535) its address + ``suffix``."""
    if endpoint.startswith("tcp://"):
        host, _, port = endpoint.rpartition(":")
        if port.isdigit() and int(port) + port_offset <= 65535:
            return f"{host}:{int(port) + port_offset}"
    return f"{endpoint}{suffix}"


@dataclass(frozen=True)
class LogConfig:
    dir: str = setting("rvz-data", "The data directory: every log (requests, scores, results, feedback, policies, "
                       "audit, decoy archives), the stream keys (keys/), admin-state.json and run/LOCK.",
                       metavar="DIR",
                       check=directory_problem)
    segment_mb: int = setting(64, "Size of a log segment file, MB.", **POSITIVE)
    fsync: bool = setting(True, "fdatasync the logs (false: a host crash can lose what the OS had not written).")
    # On by default: an answered request is never lost to a crash. The deadline bounds its cost (a stalled
    # sync delays an answer to its deadline at most); docs/reliability.md has the measured price.
    durable_answers: bool = setting(True, "Answer a caller only once its request record is on disk, waiting at "
                                    "most until the call's deadline (then answered anyway and counted in "
                                    "rvz_frontend_answers_before_sync_total).")
    # Nobody waits on the scores and results logs, and syncing per loop pass costs a thread wake-up and a
    # sync per pass; a host crash can lose this much of them, never the request log (synced at once).
    sync_every_ms: float = setting(10.0, "fdatasync the rendezvous's scores and results logs at most this often "
                                   "(they are written before each answer is sent).", **NOT_NEGATIVE)


@dataclass(frozen=True)
class TracingConfig:
    # OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_TRACES_SAMPLER(_ARG) override these.
    exporter: TraceExporter = setting("none", "Where spans go (OTEL_TRACES_EXPORTER wins).")
    endpoint: str = setting("", "OTLP endpoint of the collector (OTEL_EXPORTER_OTLP_ENDPOINT wins).")
    sample_ratio: float = setting(1.0, "Share of requests traced.", minimum=0, maximum=1)


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = setting("", "HOST:PORT of the frontend's Prometheus /metrics (:PORT: on loopback only); the "
                          "rendezvous uses port + 1 and `rvz up`'s models port + 2, + 3, ... Setting it implies "
                          "exporter = prometheus. A host other than loopback serves the metrics to anyone who can "
                          "reach it.", check=metrics_listen_problem, metavar="HOST:PORT")
    exporter: MetricsExporter = setting("none", "Where metrics go (OTEL_METRICS_EXPORTER wins).")


@dataclass(frozen=True)
class DriftConfig:
    threshold: float = setting(0.3, "Warn (and show in `rvz models` and the metrics) when a model's recent outputs "
                               "are further than this from the canary's: Jensen-Shannon distance for labels, KS "
                               "statistic for numbers.", minimum=0, above_minimum=True, maximum=1,
                               range_text="more than 0 and at most 1 (divergences are in [0, 1])")
    check_s: float = setting(10.0, "How often drift is measured, seconds.", **POSITIVE)


@dataclass(frozen=True)
class LimitsConfig:
    """What one input may cost: every request, model output and stream message is refused past these, before
    any costly work, so no client, model or peer can take unbounded memory or stall the others."""

    request_bytes: int = setting(1024 * 1024, "Largest Score request, bytes: more is refused with "
                                 "RESOURCE_EXHAUSTED before it is parsed.", **POSITIVE)
    features: int = setting(1000, "Most features (top-level keys) in a request.", **POSITIVE)
    depth: int = setting(8, "Deepest nesting of lists and maps in a feature value (a flat value is depth 1).",
                         **POSITIVE)
    values: int = setting(10_000, "Most values in a request, at every depth (each list, map and item counts once).",
                          **POSITIVE)
    string_bytes: int = setting(64 * 1024, "Longest string in a request (a value or a map key), bytes.", **POSITIVE)
    use_case_bytes: int = setting(128, "Longest use case name, bytes.", minimum=1, maximum=128,
                                  range_text="from 1 to 128 (a use case is a name of at most 128 characters)")
    output_bytes: int = setting(1024 * 1024, "Largest model output, encoded, bytes: more becomes an error score "
                                "(\"output too large\") instead of log and answer traffic.", **POSITIVE)
    message_bytes: int = setting(16 * 1024 * 1024, "Largest message a stream socket takes (ZeroMQ's MAXMSGSIZE); "
                                 "senders split their batches below it, and a peer that sends more is "
                                 "disconnected. At least request_bytes and output_bytes plus 64 KiB.", **POSITIVE)
    early_scores: int = setting(10_000, "Most scores held for requests not seen yet; past it the oldest are "
                                "dropped and counted.", **POSITIVE)
    early_score_bytes: int = setting(64 * 1024 * 1024, "Most bytes of scores held for requests not seen yet.",
                                     **POSITIVE)


@dataclass(frozen=True)
class SecurityConfig:
    curve: bool = setting(True, "Authenticate and encrypt the ZeroMQ streams with CURVE: only known public keys, each "
                          "in its role, get in (see docs/security.md).")
    keys_dir: str = setting("", "Directory of the deployment's keys (made by `rvz keys create` and the first `rvz "
                            "up`) [default: DATA_DIR/keys].", metavar="DIR")
    model_keys: str = setting("", "A model's key file from `rvz keys add-model` (for a model on another host): its "
                              "key pair and the servers' public keys, instead of keys_dir.", metavar="FILE")
    allow_plaintext_tcp: bool = setting(False, "With curve = false, allow tcp:// streams to a non-loopback address "
                                        "(anyone on the network can then read and forge every message).")
    admin_token_file: str = setting("", "File of the Admin API's bearer tokens, one NAME:SECRET a line [default: "
                                    "KEYS_DIR/admin.token, made with the keys].", metavar="FILE")
    admin_cert_names: str = setting("", "Comma-separated common names of client certificates (verified against "
                                    "tls.client_ca) that may change policies and roles; * for any verified one.")
    admin_reads_open: bool = setting(True, "Let ListModels and GetPolicy through without an Admin credential "
                                     "(changes always need one).")
    admin_listen: str = setting("", "HOST:PORT of a listener of its own for the Admin API (then the main one does "
                                "not serve it); it has the same TLS settings.", check=optional_listen_problem,
                                metavar="HOST:PORT")


@dataclass(frozen=True)
class TlsConfig:
    cert: str = setting("", "PEM certificate (chain) of the frontend: with key, gRPC is served over TLS only.",
                        metavar="FILE")
    key: str = setting("", "PEM private key of tls.cert.", metavar="FILE")
    client_ca: str = setting("", "PEM CA certificates that client certificates are verified against (mTLS).",
                             metavar="FILE")
    require_client_auth: bool = setting(False, "Refuse clients without a certificate signed by tls.client_ca.")
    ca: str = setting("", "PEM CA that signed tls.cert: what rvz's own commands (`rvz up`, `rvz score`, ...) "
                      "verify the frontend with [default: tls.cert itself, for a self-signed one].", metavar="FILE")


@dataclass(frozen=True)
class Window:
    until_ms: float
    accept: tuple[str, ...]


@dataclass(frozen=True)
class RendezvousConfig:
    deadline_ms: float = setting(100.0, "SLA of a request, ms after the frontend received it.", **POSITIVE)
    on_timeout: OnTimeout = setting("error", "At the deadline without a score: answer an error, or default_output.")
    default_output: Any = setting(None, "What to answer at the deadline when on_timeout = \"default\".",
                                  structured=True)
    schedule: tuple[Window, ...] = setting(
        (Window(30.0, ("champion",)), Window(100.0, ("champion", "challenger", "canary"))),
        "Windows ([[rendezvous.schedule]]: until_ms, accept) of the roles or models that may answer.",
        structured=True)
    early_score_ms: float = setting(1000.0, "How long a score whose request has not been seen yet is held before "
                                    "it is logged as an orphan.", **POSITIVE)


@dataclass(frozen=True)
class ModelConfig:
    name: str = setting(help="Model name (unique within its use case).", check=name_problem)
    entry: str = setting("", "MODULE:ATTR of the model callable (a decoy needs none: it archives what it "
                         "receives).", check=entry_problem, metavar="MODULE:ATTR")
    version: str = setting("1", "Model version.")
    role: Role = setting("champion", "Role in the schedule.")
    use_case: str = setting(DEFAULT_USE_CASE, "Use case the model serves.", check=name_problem)
    batch_max: int = setting(32, "Most requests handed to predict_batch at once.", **POSITIVE)
    # Late scores are still logged for comparison; a model that falls far behind catches up instead of
    # queueing without bound.
    late_limit_ms: float = setting(1000.0, "Do not score requests already this far past their deadline (a model "
                                   "that fell behind catches up).", **NOT_NEGATIVE)
    watchdog_ms: float = setting(0.0, "Under `rvz up`, restart the worker when it makes no progress this long "
                                 "(a hung model, a stopped process); 0: five times rendezvous.deadline_ms, at "
                                 "least 1 s. A slow model needs more than its slowest batch.", **NOT_NEGATIVE)
    # It stays with the process: a challenger promoted to champion keeps it until restarted.
    nice: int = setting(0, "CPU priority of the worker (higher is lower): e.g. 10 for a challenger, canary or "
                        "decoy, so the champion and the rendezvous get the CPU first on a busy machine.",
                        minimum=0, maximum=19,
                        range_text="from 0 (as the rendezvous and frontend) to 19 (lowest CPU priority)")
    replicas: int = setting(1, "Worker processes that share this model's requests (`rvz up` starts this many; "
                            "`rvz model run` processes of the same name and version join them): each request is "
                            "scored once per model, by the replica that has room for it.", minimum=1, maximum=64,
                            range_text="from 1 (one process scores every request) to 64")
    replica_queue: int = setting(0, "With replicas > 1: requests a replica holds at most (taken, not scored yet); "
                                 "the others go to replicas with room. 0: twice batch_max for a model that "
                                 "batches, else 4.", minimum=0, maximum=4096,
                                 range_text="from 0 (the default) to 4096")

    @property
    def shared(self) -> bool:
        """Whether this model's workers share its requests (replicas > 1) instead of each taking all."""
        return self.replicas > 1

    def queue_bound(self, batches: bool) -> int:
        """A replica's queue: ``replica_queue``, or its default for a model that batches (or not)."""
        return self.replica_queue or (2 * self.batch_max if batches else 4)


@dataclass(frozen=True)
class UseCaseConfig:
    """What a use case's models output, so `rvz report` compares the right thing ([[use_cases]])."""

    name: str = setting(help="Use case name, as its models' use_case.", check=name_problem)
    kind: OutputKind = setting(help="How outputs and truths are compared: label (accuracy, precision, recall, "
                               "F1, log-loss, ROC AUC) or number (MAE, RMSE, R²).")
    output: str = setting("", "The output field holding the label or number: a key of a dict output (a.b for "
                          "nested dicts); empty: the output itself.", check=field_path_problem, metavar="FIELD")
    probabilities: str = setting("", "For labels: the output field holding a dict of class -> probability (for "
                                 "log-loss and ROC AUC); empty: none.", check=field_path_problem, metavar="FIELD")


@dataclass(frozen=True)
class Config:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    rendezvous: RendezvousConfig = field(default_factory=RendezvousConfig)
    models: tuple[ModelConfig, ...] = ()
    use_cases: tuple[UseCaseConfig, ...] = ()
    tracing: TracingConfig = field(default_factory=TracingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    # Where it was read from, named in every error about it.
    source: str = "<defaults>"

    @property
    def requests_hub(self) -> str:
        """Where frontends publish their requests to the hub (``streams.requests_in``, or derived from
        ``streams.requests`` with ``frontend.processes > 1``); "" when the frontend binds the stream itself."""
        if self.streams.requests_in:
            return self.streams.requests_in
        if self.frontend.processes <= 1:
            return ""
        return derived_endpoint(self.streams.requests, 4, ".in")

    def use_case(self, name: str) -> UseCaseConfig | None:
        """The [[use_cases]] entry of ``name``, if the config declares one."""
        return next((u for u in self.use_cases if u.name == name), None)

    def with_overrides(self, *, listen: str | None = None, data_dir: str | None = None) -> Config:
        """Apply command-line options, which win over the file; raises ``ConfigError`` for a bad one."""
        from rvz.config.overrides import Given, apply

        given = {("frontend", "listen"): Given(listen, "command line", "--listen") if listen else None,
                 ("log", "dir"): Given(data_dir, "command line", "--data-dir") if data_dir else None}
        return apply(self, {key: value for key, value in given.items() if value is not None})


# The sections of the file that are tables of settings, by key.
SECTIONS: dict[str, type] = {"frontend": FrontendConfig, "streams": StreamsConfig, "log": LogConfig,
                             "rendezvous": RendezvousConfig, "tracing": TracingConfig, "metrics": MetricsConfig,
                             "drift": DriftConfig, "limits": LimitsConfig, "security": SecurityConfig,
                             "tls": TlsConfig}

DEMO_MODELS = (
    ModelConfig(name="gbm", version="1", role="champion", entry="rvz.demo:Champion"),
    ModelConfig(name="logreg", version="1", role="challenger", entry="rvz.demo:Challenger"),
    ModelConfig(name="rules", version="1", role="canary", entry="rvz.demo:Canary"),
    ModelConfig(name="archive", version="1", role="decoy"),
)


def demo_config() -> Config:
    return Config(models=DEMO_MODELS, source="<demo>")
