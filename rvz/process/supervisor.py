"""`rvz up`: run the rendezvous, the frontend and every model as child processes.

Children get the effective configuration as JSON (RVZ_CONFIG_JSON), run in their
own sessions (so Ctrl-C reaches only us and we stop them in order) and die with
us (PR_SET_PDEATHSIG). A child that exits is restarted with exponential backoff;
one that fails on its configuration during start-up stops the whole deployment.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rvz.cli.options import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from rvz.config import Config, ModelConfig, config_to_json
from rvz.errors import StartupFailed
from rvz.process.entry import LISTENING_PREFIX, MODEL_READY
from rvz.security.deployment import ensure_keys, own_connection
from rvz.telemetry.setup import offset_listen
from rvz.wire.proto import admin_pb2, admin_pb2_grpc

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# A child that ran this long before dying starts over with the shortest backoff.
STABLE_AFTER_S = 30.0
TICK_S = 0.1


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    log: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.should_exit = threading.Event()
        self.address = ""
        base = [sys.executable, "-m", "rvz"]
        self.rendezvous = Child("rendezvous", [*base, "rendezvous"])
        self.frontend = Child("frontend", [*base, "frontend"])
        self.models = [Child(f"model {m.name}", [*base, "model", "run", *_model_args(m), *_metrics_args(config, i + 2)])
                       for i, m in enumerate(config.models)]
        self._env = {**os.environ, "RVZ_CONFIG_JSON": config_to_json(config), "RVZ_PARENT_PID": str(os.getpid())}

    @property
    def children(self) -> list[Child]:
        # Stop order: the frontend first so calls in flight can still be answered, the rendezvous last.
        return [self.frontend, *self.models, self.rendezvous]

    def run(self) -> int:
        try:
            self._start()
        except StartupFailed as e:
            logger.error("%s", e)
            self.stop()
            return e.exit_code
        models = ", ".join(f"{m.name} ({m.role})" for m in self.config.models) or "none"
        print(f"rvz serving on {self.address} (use cases: {self._use_cases()}; models: {models}; "
              f"logs in {self.config.log.dir}). Try: rvz score --target {self.address} --example", flush=True)
        while not self.should_exit.is_set():
            self._tend()
            self.should_exit.wait(TICK_S)
        self.stop()
        return EXIT_OK

    def _start(self) -> None:
        ensure_keys(self.config)  # the first `rvz up` makes the deployment's keys: the demo stays one command
        self._spawn(self.rendezvous)
        self._spawn(self.frontend, stdout=subprocess.PIPE)
        for child in self.models:
            self._spawn(child, stdout=subprocess.PIPE)
        self.address = self._read_line(self.frontend, LISTENING_PREFIX)
        # A restarted frontend must come back on the same port, even when the configured one was 0.
        self.frontend.argv += ["--listen", self.address]
        for child in self.models:
            self._read_line(child, MODEL_READY)
        self._wait_serving()
        self._wait_models()

    def _spawn(self, child: Child, stdout: int = subprocess.DEVNULL) -> None:
        # Only the first start's stdout is read (for its ready line); a restarted child's is not needed.
        child.process = subprocess.Popen(child.argv, env=self._env, stdout=stdout, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info("started %s (pid %d)", child.name, child.process.pid)

    def _read_line(self, child: Child, prefix: str) -> str:
        """Wait for the child's ready line on stdout; return what follows ``prefix``."""
        assert child.process is not None and child.process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and not self.should_exit.is_set():
            ready, _, _ = select.select([child.process.stdout], [], [], TICK_S)
            self._check_startup()
            if ready:
                line = child.process.stdout.readline().decode()
                if not line:
                    code = child.process.wait()
                    raise StartupFailed(f"{child.name} exited with code {code} while starting (see its error above)",
                                        EXIT_USAGE if code == EXIT_USAGE else EXIT_FAILURE)
                if line.startswith(prefix):
                    return line.removeprefix(prefix).strip()
        raise StartupFailed(f"{child.name} did not report ready within {START_TIMEOUT_S:.0f} s")

    def _wait_serving(self) -> None:
        """Poll the health service until the frontend says SERVING (rendezvous and a model are ready)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        with own_connection(self.config, self.address).channel() as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.should_exit.is_set():
                    raise StartupFailed("interrupted while starting", EXIT_OK)
                self._check_startup()
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                self.should_exit.wait(TICK_S)
        raise StartupFailed(f"not SERVING after {START_TIMEOUT_S:.0f} s: no model answered the frontend's probes")

    def _wait_models(self) -> None:
        """Until the rendezvous lists every configured model: their scores, not only probes, get through."""
        expected = {(m.use_case, m.name) for m in self.config.models}
        deadline = time.monotonic() + START_TIMEOUT_S
        connection = own_connection(self.config, self.address)
        with connection.channel() as channel:
            stub = admin_pb2_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]
            while time.monotonic() < deadline and not self.should_exit.is_set():
                self._check_startup()
                try:
                    listed = stub.ListModels(admin_pb2.ListModelsRequest(), timeout=1.0,
                                             metadata=connection.metadata()).models
                    if expected <= {(m.use_case, m.name) for m in listed if m.live}:
                        return
                except grpc.RpcError:
                    pass
                self.should_exit.wait(TICK_S)
        raise StartupFailed("not every model reached the rendezvous; see the models' errors above")

    def _check_startup(self) -> None:
        for child in self.children:
            code = child.process.poll() if child.process else None
            if code is None:
                continue
            if code == EXIT_USAGE:
                raise StartupFailed(f"{child.name} refused its configuration (see its error above)", EXIT_USAGE)
            if child in (self.frontend, self.rendezvous):
                raise StartupFailed(f"{child.name} exited with code {code} while starting (see above)")
        self._tend()

    def _tend(self) -> None:
        """Restart children that died, with exponential backoff."""
        now = time.monotonic()
        for child in self.children:
            if child.process is None:
                continue
            code = child.process.poll()
            if code is None:
                continue
            if child.restart_at is None:
                ran = now - child.started_at
                child.failures = 1 if ran > STABLE_AFTER_S else child.failures + 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (child.failures - 1))
                child.restart_at = now + delay
                logger.warning("%s (pid %d) exited with code %d after %.1f s; restarting in %.1f s",
                               child.name, child.process.pid, code, ran, delay)
            elif now >= child.restart_at:
                self._spawn(child)

    def stop(self) -> None:
        """SIGTERM each child in order and wait; SIGKILL what does not stop in time."""
        for child in self.children:
            process = child.process
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.error("%s (pid %d) did not stop in %.0f s; killing it", child.name, process.pid,
                             STOP_TIMEOUT_S)
                process.kill()
                process.wait()
        for child in self.children:
            if child.process is not None and child.process.stdout is not None:
                child.process.stdout.close()

    def _use_cases(self) -> str:
        return ", ".join(sorted({m.use_case for m in self.config.models})) or "none"


def _model_args(model: ModelConfig) -> list[str]:
    # The rest of the model's settings come from its [[models]] entry in RVZ_CONFIG_JSON.
    return ["--name", model.name, "--use-case", model.use_case]


def _metrics_args(config: Config, offset: int) -> list[str]:
    listen = offset_listen(config.metrics.listen, offset)
    return ["--metrics-listen", listen] if listen else []


def run_up(config: Config) -> int:
    supervisor = Supervisor(config)
    previous = {sig: signal.signal(sig, lambda *_: supervisor.should_exit.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

