"""`rvz up`: run the rendezvous, the frontend and every model as child processes.

Children are `rvz rendezvous`, `rvz frontend` and one `rvz model run --name N --use-case U` per
[[models]] entry; each gets the effective configuration as JSON (RVZ_CONFIG_JSON), runs in its own
session (so Ctrl-C reaches only us and we stop them in order) and dies with us (PR_SET_PDEATHSIG). A
child that exits while serving is restarted with exponential backoff; one that fails during start-up
stops the whole deployment.

Exit status of ``run_up``:

- 0: stopped by SIGINT or SIGTERM after it served (an ordinary stop);
- 1: a child could not start, or the deployment did not become ready within its start-up timeout;
- 2: a child refused its configuration;
- 130 (SIGINT) or 143 (SIGTERM): stopped while starting, before it served; every child started so far
  has been stopped. 128 + the signal's number is what shells, Docker and Kubernetes report for a
  process ended by that signal, so a process manager or script tells an interrupted start from a failure.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from types import FrameType

import grpc

from rvz.cli.options import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from rvz.config import Config, ModelConfig, config_to_json
from rvz.errors import ChildExited, Interrupted, StartupFailed
from rvz.process import serving
from rvz.process.banner import serving_banner
from rvz.process.child import TICK_S, ChildProcess, ChildSpec
from rvz.process.entry import LISTENING_PREFIX, MODEL_READY
from rvz.telemetry.setup import offset_listen

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
# A child that ran this long before dying starts over with the shortest backoff.
STABLE_AFTER_S = 30.0


@dataclass(eq=False)
class Supervised:
    """A child of `rvz up` and its restart record."""

    process: ChildProcess
    failures: int = 0
    restart_at: float | None = None

    @property
    def name(self) -> str:
        return self.process.name


class Supervisor:
    """One deployment's children. ``run`` may be called once; ``request_stop`` from a signal handler."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.should_exit = threading.Event()
        self.stop_signal: int | None = None
        self._env = {**os.environ, "RVZ_CONFIG_JSON": config_to_json(config), "RVZ_PARENT_PID": str(os.getpid())}
        self.rendezvous = self._child("rendezvous", ["rendezvous"])
        self.frontend = self._child("frontend", ["frontend"], LISTENING_PREFIX)
        self.models = [self._child(f"model {m.name}", [*model_command(m), *_metrics_args(config, i + 2)], MODEL_READY)
                       for i, m in enumerate(config.models)]

    def _child(self, name: str, command: list[str], announces: str = "") -> Supervised:
        spec = ChildSpec(name, (sys.executable, "-m", "rvz", *command), env=self._env,
                         announces=(announces,) if announces else (), own_session=True)
        return Supervised(ChildProcess(spec))

    @property
    def children(self) -> list[Supervised]:
        # Stop order: the frontend first so calls in flight can still be answered, the rendezvous last.
        return [self.frontend, *self.models, self.rendezvous]

    def request_stop(self, signum: int) -> None:
        """Ask ``run`` to stop (safe in a signal handler): at once during start-up, at its next tick after."""
        if self.stop_signal is None:
            self.stop_signal = signum
        self.should_exit.set()

    def run(self) -> int:
        """Start every child, print the banner, tend the children until asked to stop; return the exit status."""
        try:
            banner = self._start()
        except StartupFailed as e:
            return self._abandon_start(e)
        print(banner, flush=True)
        while not self.should_exit.is_set():
            self._tend()
            self.should_exit.wait(TICK_S)
        self.stop()
        return EXIT_OK

    def _abandon_start(self, error: StartupFailed) -> int:
        if isinstance(error, Interrupted) or self.should_exit.is_set():
            # A process manager may signal our children too: their exits are part of the same stop.
            signum = self.stop_signal or signal.SIGTERM
            logger.info("%s while starting: stopping every child", signal.Signals(signum).name)
            self.stop()
            return 128 + signum
        logger.error("%s", error)
        self.stop()
        if isinstance(error, ChildExited):
            return EXIT_USAGE if error.returncode == EXIT_USAGE else EXIT_FAILURE
        return error.exit_code

    def _start(self) -> str:
        """Start the children in order and wait until every model serves; return the banner."""
        for child in (self.rendezvous, self.frontend, *self.models):
            self._spawn(child)
        address = self.frontend.process.wait_line(LISTENING_PREFIX, stop=self.should_exit, check=self._check_startup)
        # A restarted frontend must come back on the same port, even when the configured one was 0.
        spec = self.frontend.process.spec
        self.frontend.process.spec = replace(spec, argv=(*spec.argv, "--listen", address))
        for child in self.models:
            child.process.wait_line(MODEL_READY, stop=self.should_exit, check=self._check_startup)
        expected = {(m.use_case, m.name) for m in self.config.models}
        with grpc.insecure_channel(address) as channel:
            serving.wait_serving(channel, stop=self.should_exit, check=self._check_startup)
            listed = serving.wait_models(channel, expected, stop=self.should_exit, check=self._check_startup)
            policies = serving.policies_in_force(channel, {m.use_case for m in self.config.models},
                                                 stop=self.should_exit)
        return serving_banner(address, self.config, listed, policies)

    def _spawn(self, child: Supervised) -> None:
        if self.should_exit.is_set():
            raise Interrupted(f"asked to stop before starting {child.name}")
        pid = child.process.start()
        child.restart_at = None
        logger.info("started %s (pid %d)", child.name, pid)

    def _check_startup(self) -> None:
        """Called while waiting during start-up: a child that refused its configuration, or a frontend or
        rendezvous that exited, ends the start; a model that exited is restarted (with backoff)."""
        for child in self.children:
            code = child.process.poll()
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
            code = child.process.poll()
            if code is None:
                continue
            if child.restart_at is None:
                ran = now - child.process.started_at
                child.failures = 1 if ran > STABLE_AFTER_S else child.failures + 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (child.failures - 1))
                child.restart_at = now + delay
                logger.warning("%s (pid %d) exited with code %d after %.1f s; restarting in %.1f s",
                               child.name, child.process.pid, code, ran, delay)
            elif now >= child.restart_at:
                self._spawn(child)

    def stop(self) -> None:
        """Stop each child in order (SIGTERM, then SIGKILL after its grace period). Idempotent."""
        for child in self.children:
            child.process.stop()


def model_command(model: ModelConfig) -> list[str]:
    """The `rvz` arguments that run one [[models]] entry: its name and use case pick it out of the
    configuration the child is given (RVZ_CONFIG_JSON)."""
    return ["model", "run", "--name", model.name, "--use-case", model.use_case]


def _metrics_args(config: Config, offset: int) -> list[str]:
    listen = offset_listen(config.metrics.listen, offset)
    return ["--metrics-listen", listen] if listen else []


def run_up(config: Config) -> int:
    """Run a deployment in this process until SIGINT or SIGTERM; return the exit status (see the module)."""
    supervisor = Supervisor(config)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.request_stop(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
