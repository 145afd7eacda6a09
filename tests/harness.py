"""Real rvz deployments for tests: processes started through the CLI, tracked and stopped by PID.

Streams use ipc:// endpoints in a private temporary directory and the frontend
listens on 127.0.0.1:0, so tests never collide on ports. Readiness is waited on
through signals: the frontend's and workers' ready lines on stdout, and the gRPC
health service.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rvz.log.reader import iter_records
from rvz.process.entry import LISTENING_PREFIX, MODEL_READY
from rvz.wire.proto import admin_pb2, admin_pb2_grpc, envelope_pb2, scoring_pb2, scoring_pb2_grpc

TESTS_DIR = Path(__file__).resolve().parent
SCRIPTS_DIR = TESTS_DIR.parent / "scripts"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

DEFAULT_POLICY = """
[rendezvous]
deadline_ms = 100
on_timeout = "error"
[[rendezvous.schedule]]
until_ms = 30
accept = ["champion"]
[[rendezvous.schedule]]
until_ms = 100
accept = ["champion", "challenger", "canary"]
"""


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


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def read_line(self, prefix: str, timeout_s: float = START_TIMEOUT_S) -> str:
        """Block until the process prints a line starting with ``prefix`` (its ready signal)."""
        assert self.popen.stdout is not None
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.popen.stdout], [], [], left)
            if not ready:
                break
            line = self.popen.stdout.readline().decode()
            if not line:
                raise AssertionError(f"{self.name} exited ({self.popen.wait()}) before '{prefix}':\n{self.stderr()}")
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
        raise AssertionError(f"{self.name} did not print '{prefix}' in {timeout_s} s:\n{self.stderr()}")

    def wait_stderr(self, pattern: str, timeout_s: float = START_TIMEOUT_S) -> re.Match[str]:
        """Wait for a log line matching ``pattern`` (some facts, like a bound port, are only logged)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = re.search(pattern, self.stderr_path.read_text(errors="replace"))
            if match:
                return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.02)  # a log file has no readiness signal of its own
        raise AssertionError(f"{self.name} never logged {pattern!r}:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")[-4000:] if self.stderr_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        return self.popen.returncode


@dataclass
class Deployment:
    root: Path
    config_path: Path
    procs: list[Proc] = field(default_factory=list)
    address: str = ""
    # Extra environment for every process started from now on (e.g. OTEL_* variables).
    env: dict[str, str] = field(default_factory=dict)
    _channel: grpc.Channel | None = None

    # --- processes ---------------------------------------------------------------------------

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        stderr_path = self.root / f"{name}.stderr"
        child_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
                     **self.env, **(env or {})}
        with open(stderr_path, "ab") as stderr:
            popen = subprocess.Popen([sys.executable, "-m", "rvz", *args], stdout=subprocess.PIPE, stderr=stderr,
                                     env=child_env, cwd=self.root)
        proc = Proc(name, popen, stderr_path)
        self.procs.append(proc)
        return proc

    def start_rendezvous(self) -> Proc:
        return self.spawn("rendezvous", "rendezvous", "--config", str(self.config_path))

    def start_frontend(self) -> Proc:
        proc = self.spawn("frontend", "frontend", "--config", str(self.config_path))
        self.address = proc.read_line(LISTENING_PREFIX)
        return proc

    def start_model(self, name: str, entry: str = "", role: str = "champion", use_case: str = "default",
                    version: str = "1", wait: bool = True, env: dict[str, str] | None = None) -> Proc:
        args = ["model", "run", "--config", str(self.config_path), "--name", name, "--role", role,
                "--use-case", use_case, "--version", version]
        proc = self.spawn(f"model-{name}", *args, *(["--entry", entry] if entry else []), env=env)
        if wait:
            proc.read_line(MODEL_READY)
        return proc

    def start(self, models: list[tuple[str, str, str] | tuple[str, str, str, dict[str, str]]],
              use_case: str = "default") -> Deployment:
        """Rendezvous, frontend and models given as (name, entry, role[, env]); returns when SERVING."""
        self.start_rendezvous()
        self.start_frontend()
        for name, entry, role, *env in models:
            self.start_model(name, entry, role, use_case=use_case, env=env[0] if env else None)
        self.wait_serving(use_case)
        self.wait_models({name for name, *_ in models})
        return self

    def wait_models(self, names: set[str], timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the rendezvous lists every model: each one's scores can reach it, not only its probes."""
        stub = admin_pb2_grpc.AdminStub(self.channel)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            listed = {m.name for m in stub.ListModels(admin_pb2.ListModelsRequest(), timeout=5).models if m.live}
            if names <= listed:
                return
            time.sleep(0.02)  # announces follow the frontend's probes
        raise AssertionError(f"models {names - listed} never reached the rendezvous")

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def close(self) -> None:
        # Frontend first, rendezvous last: the order `rvz up` uses.
        order = sorted(self.procs, key=lambda p: {"frontend": 0, "rendezvous": 2}.get(p.name, 1))
        for proc in order:
            proc.stop()
        if self._channel is not None:
            self._channel.close()

    # --- gRPC --------------------------------------------------------------------------------

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.address)
        return self._channel

    def wait_serving(self, service: str = "", timeout_s: float = START_TIMEOUT_S) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            try:
                # Watch pushes every change: block on it rather than polling.
                for reply in stub.Watch(health_pb2.HealthCheckRequest(service=service),
                                        timeout=deadline - time.monotonic()):
                    status = reply.status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    break
                raise
        raise AssertionError(f"health of {service!r} is {status} after {timeout_s} s")

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

    # --- logs --------------------------------------------------------------------------------

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
