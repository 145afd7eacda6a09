"""Real rvz deployments for tests: processes started through the CLI, tracked and stopped by PID.

Streams use ipc:// endpoints in a private temporary directory and the frontend
listens on 127.0.0.1:0, so tests never collide on ports. Readiness is waited on
through signals: the frontend's and workers' ready lines on stdout, and the gRPC
health service. Processes are rvz.process.child.ChildProcess, as `rvz up`'s are.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rvz.bench.command import BenchResult
from rvz.log.reader import iter_records
from rvz.process import serving
from rvz.process.child import START_TIMEOUT_S, ChildProcess, ChildSpec
from rvz.process.entry import LISTENING_PREFIX, MODEL_READY
from rvz.wire.proto import admin_pb2, admin_pb2_grpc, envelope_pb2, scoring_pb2, scoring_pb2_grpc
from security_tools import operator_admin

TESTS_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = TESTS_DIR.parent / "scripts"

def policy(deadline_ms: float, *windows: tuple[float, list[str]]) -> str:
    """A [rendezvous] table: the SLA, ``on_timeout = "error"``, and each window as (until_ms, accept)."""
    tables = "".join(f"[[rendezvous.schedule]]\nuntil_ms = {until_ms:g}\naccept = {json.dumps(accept)}\n"
                     for until_ms, accept in windows)
    return f'\n[rendezvous]\ndeadline_ms = {deadline_ms:g}\non_timeout = "error"\n{tables}'


DEFAULT_POLICY = policy(100, (30, ["champion"]), (100, ["champion", "challenger", "canary"]))


def base_config(root: Path, policy: str = DEFAULT_POLICY, frontend: str = "", extra: str = "",
                streams: str = "") -> str:
    return f"""
[frontend]
listen = "127.0.0.1:0"
heartbeat_ms = 50
{frontend}

[streams]
requests = "ipc://{root}/requests.sock"
scores = "ipc://{root}/scores.sock"
results = "ipc://{root}/results.sock"
{streams}

[log]
dir = "{root}/data"
{policy}
{extra}
"""


class Proc(ChildProcess):
    """A child process of a test: stderr in a file the test can search, and print when it fails."""

    def wait_stderr(self, pattern: str, timeout_s: float = START_TIMEOUT_S) -> re.Match[str]:
        """Wait for a log line matching ``pattern`` (some facts, like a bound port, are only logged)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.search(pattern, self.stderr())
            if match:
                return match
            if self.poll() is not None:
                break
            time.sleep(0.02)  # a log file has no readiness signal of its own
        raise AssertionError(f"{self.name} never logged {pattern!r}:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_tail(chars=1_000_000)


def spawn(name: str, args: list[str], root: Path, env: dict[str, str] | None = None,
          announces: tuple[str, ...] = (LISTENING_PREFIX, MODEL_READY), *, prefix: tuple[str, ...] = (),
          python_args: tuple[str, ...] = ("-m", "rvz")) -> Proc:
    """``python -m rvz ARGS`` in ROOT with tests/ importable (the test models), stderr in ROOT/NAME.stderr.

    ``prefix`` runs it through another command that execs it (``ip netns exec NS``: the pid stays its
    own); ``python_args`` replaces ``-m rvz`` (``-c SCRIPT``)."""
    python_path = os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])
    spec = ChildSpec(name, (*prefix, sys.executable, *python_args, *args),
                     env={**os.environ, "PYTHONPATH": python_path, **(env or {})},
                     cwd=root, stderr_path=root / f"{name}.stderr", announces=announces)
    proc = Proc(spec)
    proc.start()
    return proc


class Calls:
    """What a test does with a running deployment, however it runs: gRPC calls and the logs it wrote."""

    root: Path
    address: str = ""
    _channel: grpc.Channel | None = None

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def check(self) -> None:
        """Raise if a part of the deployment has died: waits call it, to fail at once rather than time out."""

    def wait_serving(self, service: str = "", timeout_s: float = START_TIMEOUT_S) -> None:
        serving.wait_serving(self.channel, service, timeout_s, check=self.check)

    def wait_not_serving(self, service: str = "", timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the frontend's health says ``service`` is not SERVING (it noticed a part went away)."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        try:
            for update in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s):
                if update.status != health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        raise AssertionError(f"health of {service!r} still SERVING after {timeout_s:g} s")

    def wait_models(self, names: set[str], use_case: str = "default", timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the rendezvous lists every model: each one's scores can reach it, not only its probes."""
        serving.wait_models(self.channel, {(use_case, name) for name in names}, timeout_s, check=self.check)

    def score(self, features: dict[str, Any], use_case: str = "", timeout_s: float = 5.0) -> scoring_pb2.ScoreResponse:
        request = scoring_pb2.ScoreRequest(use_case=use_case)
        request.features.update(features)
        return scoring_pb2_grpc.ScoringStub(self.channel).Score(request, timeout=timeout_s)

    def score_error(self, features: dict[str, Any] | None, use_case: str = "",
                    timeout_s: float = 5.0) -> grpc.RpcError:
        request = scoring_pb2.ScoreRequest(use_case=use_case)
        if features is not None:
            request.features.update(features)
        try:
            scoring_pb2_grpc.ScoringStub(self.channel).Score(request, timeout=timeout_s)
        except grpc.RpcError as e:
            return e
        raise AssertionError("the call succeeded; an error was expected")

    def records(self, log: str) -> list[Any]:
        kinds = {"requests": envelope_pb2.RequestEnvelope, "scores": envelope_pb2.ScoreRecord,
                 "results": envelope_pb2.ResultEnvelope}
        return [kinds[log].FromString(r.payload) for r in iter_records(self.root / "data" / log)]

    def wait_for_record(self, log: str, predicate: Any, timeout_s: float = 10.0) -> Any:
        """Records are readable as soon as they are appended; wait until one matches."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (self.root / "data" / log).exists():
                for record in self.records(log):
                    if predicate(record):
                        return record
            time.sleep(0.02)  # polling a file: there is no signal to wait on
        raise AssertionError(f"no matching record in {log} after {timeout_s} s")


@dataclass
class Deployment(Calls):
    """Rendezvous, frontend and models as processes started through the CLI."""

    root: Path
    config_path: Path
    procs: list[Proc] = field(default_factory=list)
    # Extra environment for every process started from now on (e.g. OTEL_* variables).
    env: dict[str, str] = field(default_factory=dict)

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None,
              announces: tuple[str, ...] = (LISTENING_PREFIX, MODEL_READY)) -> Proc:
        proc = spawn(name, list(args), self.root, {**self.env, **(env or {})}, announces=announces)
        self.procs.append(proc)
        return proc

    def start_rendezvous(self) -> Proc:
        return self.spawn("rendezvous", "rendezvous", "--config", str(self.config_path))

    def start_frontend(self, wait: bool = True) -> Proc:
        proc = self.spawn("frontend", "frontend", "--config", str(self.config_path))
        if wait:
            self.address = proc.wait_line(LISTENING_PREFIX, check=self.check)
        return proc

    def start_model(self, name: str, entry: str = "", role: str = "champion", use_case: str = "default",
                    version: str = "1", wait: bool = True, env: dict[str, str] | None = None) -> Proc:
        args = ["model", "run", "--config", str(self.config_path), "--name", name, "--role", role,
                "--use-case", use_case, "--version", version]
        proc = self.spawn(f"model-{name}", *args, *(["--entry", entry] if entry else []), env=env)
        if wait:
            proc.wait_line(MODEL_READY, check=self.check)
        return proc

    def start(self, models: list[tuple[str, str, str] | tuple[str, str, str, dict[str, str]]],
              use_case: str = "default") -> Deployment:
        """Rendezvous, frontend and models given as (name, entry, role[, env]); returns when SERVING.

        All are started at once, as `rvz up` starts them, then waited for: they start in parallel.
        """
        self.start_rendezvous()
        frontend = self.start_frontend(wait=False)
        started = [self.start_model(name, entry, role, use_case=use_case, wait=False, env=env[0] if env else None)
                   for name, entry, role, *env in models]
        self.address = frontend.wait_line(LISTENING_PREFIX, check=self.check)
        for proc in started:
            proc.wait_line(MODEL_READY, check=self.check)
        self.wait_serving(use_case)
        self.wait_models({name for name, *_ in models}, use_case)
        return self

    def check(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.name} exited with code {proc.poll()}:\n{proc.stderr()}")

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def close(self) -> None:
        # Frontend first, rendezvous last: the order `rvz up` uses.
        order = sorted(self.procs, key=lambda p: {"frontend": 0, "rendezvous": 2}.get(p.name, 1))
        for proc in order:
            proc.stop()
        self.close_channel()


def admin(d: Calls) -> admin_pb2_grpc.AdminStub:
    """An Admin stub that sends the deployment's token (DATA_DIR/keys/admin.token), as its operator would."""
    return operator_admin(d.channel, d.root / "data")


def models_by_name(d: Calls) -> dict[str, admin_pb2.ModelStatus]:
    return {m.name: m for m in admin(d).ListModels(admin_pb2.ListModelsRequest(), timeout=5).models}


def listed_models(d: Calls, count: int) -> dict[str, admin_pb2.ModelStatus]:
    """Models are known to a (new) rendezvous from their announces, which follow the frontend's probes."""
    deadline = time.monotonic() + 10
    while len(statuses := models_by_name(d)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return statuses


PERCENTILES = ("min", "p50", "p90", "p99", "p99.9", "max")


def assert_coherent(result: dict[str, Any] | BenchResult) -> dict[str, Any]:
    """The figures of one `rvz bench` run agree with each other (no timing assertions: the machine is shared)."""
    r = result.as_dict() if isinstance(result, BenchResult) else result
    assert r["sent"] == r["ok"] + sum(r["errors"].values())
    assert r["missing"] == 0
    assert set(r["error_details"]) == set(r["errors"]) == set(r["error_latency_ms"])
    assert all(r["error_latency_ms"][code]["count"] == n for code, n in r["errors"].items())
    assert r["latency_ms"]["count"] == r["ok"]
    if r["ok"]:
        values = [r["latency_ms"][p] for p in PERCENTILES]
        assert values == sorted(values)
        assert r["throughput_rps"] > 0
        assert sum(r["answers_by_rule"].values()) == r["ok"]
    assert r["completed_total"] >= r["sent"]
    return r


@contextlib.contextmanager
def scripts_importable() -> Iterator[None]:
    """scripts/bench's modules (bench_systems) importable, as scripts/bench makes them."""
    sys.path.insert(0, str(SCRIPTS_DIR))
    try:
        yield
    finally:
        sys.path.remove(str(SCRIPTS_DIR))


def short_tempdir() -> Iterator[Path]:
    # ipc:// paths are limited to ~100 bytes, so keep the directory short.
    root = Path(tempfile.mkdtemp(prefix="rvz-", dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
