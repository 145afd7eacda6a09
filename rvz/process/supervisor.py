"""`rvz up`: run the rendezvous, the frontend and every model as child processes.

Children are `rvz rendezvous`, `rvz frontend` (``frontend.processes`` of them, and `rvz hub` when the config
has a requests hub) and one `rvz model run --name N --use-case U` per
[[models]] entry (``replicas`` of them for a model with replicas > 1, each watched and restarted alone),
or with `rvz up --only ...` this host's share of them (``rvz.process.share``). Each gets the effective
configuration as JSON (RVZ_CONFIG_JSON), runs in its own session (so Ctrl-C reaches only us and we stop
them in order) and dies with us (PR_SET_PDEATHSIG). A child that exits while serving is restarted with
exponential backoff; one that fails during start-up stops the whole deployment (or share). A share prints
its banner (RUNNING_PREFIX) once its own processes are ready: the other parts may start later, on other
hosts.

Exit status of ``run_up``:

- 0: stopped by SIGINT or SIGTERM after it served (an ordinary stop);
- 1: a child could not start, or the deployment did not become ready within its start-up timeout;
- 2: a child refused its configuration;
- 130 (SIGINT) or 143 (SIGTERM): stopped while starting, before it served; every child started so far
  has been stopped. 128 + the signal's number is what shells, Docker and Kubernetes report for a
  process ended by that signal, so a process manager or script tells an interrupted start from a failure.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from rvz.cli.options import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from rvz.config import Config, ModelConfig, config_to_json
from rvz.errors import ChildExited, Interrupted, StartupFailed
from rvz.process import serving
from rvz.process.banner import serving_banner
from rvz.process.child import TICK_S, ChildProcess, ChildSpec
from rvz.process.entry import FRONTEND_SERVING, HUB_READY, LISTENING_PREFIX, MODEL_READY, RENDEZVOUS_READY
from rvz.process.heartbeat import HEARTBEAT_ENV, RESTARTS_ENV, last_beat_ns
from rvz.process.share import Share, describe, whole_share
from rvz.security.deployment import ensure_keys, missing_public_keys, model_identity, own_connection
from rvz.security.keys import KeyInfo
from rvz.telemetry.setup import offset_listen

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The first restart after a crash is at once (a part of the pipeline is down meanwhile); then 0.2, 0.4, ...
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 30.0
# A child that ran this long before dying starts over with the shortest backoff.
STABLE_AFTER_S = 30.0
# Where a deployment keeps what its processes share while it runs: its lock, the models' heartbeats.
RUN_DIR = "run"
WATCHDOG_MIN_MS = 1000.0
# Printed first on the banner line of `rvz up --only ...` once its own processes are ready.
RUNNING_PREFIX = "rvz up running "


@dataclass(eq=False)
class Supervised:
    """A child of `rvz up` and its restart record; a model's also has its heartbeat and watchdog time."""

    process: ChildProcess
    failures: int = 0
    restart_at: float | None = None
    restarts: int = 0
    heartbeat: Path | None = None
    watchdog_ns: int = 0

    @property
    def name(self) -> str:
        return self.process.name


class Supervisor:
    """One deployment's children (those of ``share``: by default all). ``run`` may be called once;
    ``request_stop`` from a signal handler."""

    def __init__(self, config: Config, share: Share | None = None) -> None:
        self.config = config
        self.share = share or whole_share(config)
        self.should_exit = threading.Event()
        self.stop_signal: int | None = None
        self.watchdog_kills = 0
        self._env = {**os.environ, "RVZ_CONFIG_JSON": config_to_json(config), "RVZ_PARENT_PID": str(os.getpid())}
        self._run_dir = Path(config.log.dir) / RUN_DIR
        self._lock_fd = -1
        workers = [(m, r) for m in config.models for r in range(m.replicas)]
        # streams.rendezvous_processes of them: the first is `rvz rendezvous` as ever, the others get --index.
        self.rendezvous_all = [self._rendezvous_child(i, len(workers))
                               for i in range(config.streams.rendezvous_processes)]
        self.rendezvous = self.rendezvous_all[0]
        self.hub = self._child("requests hub", ["hub"], HUB_READY)
        # frontend.processes of them, serving one port: the first is the unnamed frontend (the only one of a
        # deployment with one), the others are named 1, 2, ... for their logs (requests.1, ...).
        self.frontends = [self._frontend_child(i, len(workers)) for i in range(config.frontend.processes)]
        self.frontend = self.frontends[0]
        # Metrics ports stay those of the whole deployment: a model's is the same whichever host runs it.
        self.models = [self._model_child(m, replica, i) for i, (m, replica) in enumerate(workers)
                       if m in self.share.models]

    def _child(self, name: str, command: list[str], *announces: str) -> Supervised:
        spec = ChildSpec(name, (sys.executable, "-m", "rvz", *command), env=self._env, announces=announces,
                         own_session=True)
        return Supervised(ChildProcess(spec))

    def _rendezvous_child(self, index: int, workers: int) -> Supervised:
        """The child of rendezvous ``index`` (from 0); its metrics port comes after every frontend's."""
        if index == 0:
            return self._child("rendezvous", ["rendezvous"], RENDEZVOUS_READY)
        offset = workers + 1 + self.config.frontend.processes + index
        return self._child(f"rendezvous {index + 1}/{self.config.streams.rendezvous_processes}",
                           ["rendezvous", "--index", str(index), *_metrics_args(self.config, offset)], RENDEZVOUS_READY)

    def _frontend_child(self, index: int, workers: int) -> Supervised:
        """The child of frontend process ``index`` (from 0); its metrics port comes after every model's."""
        if index == 0:
            return self._child("frontend", ["frontend"], LISTENING_PREFIX, FRONTEND_SERVING)
        processes = self.config.frontend.processes
        return self._child(f"frontend {index + 1}/{processes}",
                           ["frontend", "--name", str(index), *_metrics_args(self.config, workers + 1 + index)],
                           LISTENING_PREFIX, FRONTEND_SERVING)

    def _model_child(self, model: ModelConfig, replica: int, index: int) -> Supervised:
        """The child of one worker of ``model``: replica number ``replica`` (from 0), the ``index``-th worker."""
        name = f"model {model.name}" + (f" replica {replica + 1}/{model.replicas}" if model.shared else "")
        child = self._child(name, [*model_command(model), *_metrics_args(self.config, index + 2)], MODEL_READY)
        beat = f"{model.use_case}.{model.name}" + (f".{replica + 1}" if model.shared else "")
        child.heartbeat = self._run_dir / f"{beat}.heartbeat"
        child.watchdog_ns = int(watchdog_ms(model, self.config) * 1e6)
        return child

    @property
    def children(self) -> list[Supervised]:
        # Stop order: the frontends first so calls in flight can still be answered, the rendezvous last.
        return [c for c in (*self.frontends, *self.models, self.hub, *self.rendezvous_all) if self._runs(c)]

    def _runs(self, child: Supervised) -> bool:
        if any(child is f for f in self.frontends):
            return self.share.frontend
        if child is self.hub:
            return self.share.hub
        if self._is_rendezvous(child):
            return self.share.runs_rendezvous(next(i for i, r in enumerate(self.rendezvous_all) if r is child))
        return True

    def _is_rendezvous(self, child: Supervised) -> bool:
        return any(child is r for r in self.rendezvous_all)

    def _is_server(self, child: Supervised) -> bool:
        """A rendezvous, the hub or a frontend: one that exits while starting ends the start."""
        return self._is_rendezvous(child) or child is self.hub or any(child is f for f in self.frontends)

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
        """Start the children in order and wait until every model serves; return the banner.

        Models start only once the rendezvous and the frontend hold their endpoints and logs: a second
        deployment on the same ports or data directory fails before any of its models could connect
        to the first one's streams and score its traffic.
        """
        self._lock_deployment()
        if self.share.whole:
            ensure_keys(self.config)  # the first `rvz up` makes the deployment's keys: the demo stays one command
        else:
            self._check_keys_elsewhere()
        address = self._start_servers()
        for child in self.models:
            self._spawn(child)
        for child in self.models:
            child.process.wait_line(MODEL_READY, stop=self.should_exit, check=self._check_startup)
        if not self.share.whole:
            # The other parts may start later, on other hosts: its own processes being ready is this share's start.
            return RUNNING_PREFIX + describe(self.share, self.config, address)
        expected = {(m.use_case, m.name) for m in self.config.models}
        # Every frontend process serves, not only the one this channel reaches (they share the port).
        for child in self.frontends:
            child.process.wait_line(FRONTEND_SERVING, stop=self.should_exit, check=self._check_startup)
        with own_connection(self.config, address).channel() as channel:
            serving.wait_serving(channel, stop=self.should_exit, check=self._check_startup)
            listed = serving.wait_models(channel, expected, stop=self.should_exit, check=self._check_startup,
                                         replicas={(m.use_case, m.name): m.replicas for m in self.config.models})
            policies = serving.policies_in_force(channel, {m.use_case for m in self.config.models},
                                                 stop=self.should_exit)
        return serving_banner(address, self.config, listed, policies)

    def _start_servers(self) -> str:
        """Start the rendezvous and the frontend of this share and wait until both hold their endpoints;
        return the frontend's address ("" when it runs elsewhere)."""
        servers = [c for c in (*self.rendezvous_all, self.hub, self.frontend) if self._runs(c)]
        for child in servers:
            self._spawn(child)
        for child in self.rendezvous_all:
            if self._runs(child):
                child.process.wait_line(RENDEZVOUS_READY, stop=self.should_exit, check=self._check_startup)
        if self.share.hub:
            self.hub.process.wait_line(HUB_READY, stop=self.should_exit, check=self._check_startup)
        if not self.share.frontend:
            return ""
        address = self.frontend.process.wait_line(LISTENING_PREFIX, stop=self.should_exit, check=self._check_startup)
        # A restarted frontend must come back on the same port, even when the configured one was 0; the other
        # frontend processes serve that port with it (SO_REUSEPORT).
        for child in self.frontends:
            child.process.spec = replace(child.process.spec, argv=(*child.process.spec.argv, "--listen", address))
        for child in self.frontends[1:]:
            self._spawn(child)
        for child in self.frontends[1:]:
            child.process.wait_line(LISTENING_PREFIX, stop=self.should_exit, check=self._check_startup)
        return address

    def _check_keys_elsewhere(self) -> None:
        """A share's processes must know the public keys of the parts that run elsewhere: keys made here for
        them would match no secret there, and every handshake would silently fail."""
        if self.config.security.model_keys and not (self.share.rendezvous or self.share.frontend):
            return  # the models' key file holds the servers' public keys
        identities = [KeyInfo(b"", role) for role in ("rendezvous", "frontend") if not getattr(self.share, role)]
        identities += [model_identity(m) for m in self.share.elsewhere]
        missing = missing_public_keys(self.config, identities)
        if missing:
            raise StartupFailed(
                f"the keys directory lacks {', '.join(missing)}, the public keys of parts that run elsewhere: make "
                "the deployment's keys once (`rvz keys create --config FILE`, on one host) and copy the keys "
                "directory to every host before `rvz up --only` (docs/multi-host.md)", EXIT_USAGE)

    def _lock_deployment(self) -> None:
        """Hold DATA_DIR/run/LOCK for the deployment's life: one `rvz up` per data directory."""
        self._run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._run_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartupFailed(f"{self.config.log.dir} is the data directory of a running deployment (rvz up, pid "
                                f"{holder}); stop it, or give this one another log.dir and other [streams]") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _spawn(self, child: Supervised) -> None:
        if self.should_exit.is_set():
            raise Interrupted(f"asked to stop before starting {child.name}")
        if child.heartbeat is not None:
            child.heartbeat.unlink(missing_ok=True)  # a new run beats anew; the watchdog waits for its first beat
            env = {**self._env, HEARTBEAT_ENV: str(child.heartbeat), RESTARTS_ENV: str(child.restarts)}
            child.process.spec = replace(child.process.spec, env=env)
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
            if self._is_server(child):
                raise StartupFailed(f"{child.name} exited with code {code} while starting (see above)")
        self._tend()

    def _tend(self) -> None:
        """Restart children that died (with exponential backoff), and models their watchdog finds stuck."""
        now = time.monotonic()
        for child in self.children:
            if not child.process.started_at:
                continue  # a model not started yet (models start once the rendezvous and frontend are up)
            code = child.process.poll()
            if code is None:
                self._watch(child)
                continue
            if child.restart_at is None:
                ran = now - child.process.started_at
                child.failures = 1 if ran > STABLE_AFTER_S else child.failures + 1
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (child.failures - 1))
                child.restart_at = now + delay
                logger.warning("%s (pid %d) exited with code %d after %.1f s; restarting in %.1f s",
                               child.name, child.process.pid, code, ran, delay)
            elif now >= child.restart_at:
                child.restarts += 1
                self._spawn(child)

    def _watch(self, child: Supervised) -> None:
        """Kill a running model whose last beat is older than its watchdog time; _tend then restarts it."""
        if child.heartbeat is None:
            return
        beat = last_beat_ns(child.heartbeat)
        stuck_ns = time.monotonic_ns() - beat if beat is not None else 0
        if stuck_ns > child.watchdog_ns:
            logger.error("%s (pid %d) made no progress for %.0f ms (watchdog %.0f ms): killing it to restart it",
                         child.name, child.process.pid, stuck_ns / 1e6, child.watchdog_ns / 1e6)
            self.watchdog_kills += 1
            child.process.kill()

    def stop(self) -> None:
        """Stop the children in order (each SIGTERM, then SIGKILL after its grace period): the frontends at
        once, then every model at once (a hung one costs one grace period, not one each), the requests hub,
        the rendezvous last.
        Idempotent."""
        children = self.children
        models = [c for c in children if any(c is m for m in self.models)]
        frontends = [c for c in children if any(c is f for f in self.frontends)]
        for group in (frontends, models):  # each group at once: a hung one costs one grace period, not one each
            if group:
                with ThreadPoolExecutor(max_workers=len(group), thread_name_prefix="stop") as pool:
                    list(pool.map(lambda child: child.process.stop(), group))
        for child in (c for c in children if c is self.hub):
            child.process.stop()
        rendezvous = [c for c in children if self._is_rendezvous(c)]
        if rendezvous:
            with ThreadPoolExecutor(max_workers=len(rendezvous), thread_name_prefix="stop") as pool:
                list(pool.map(lambda child: child.process.stop(), rendezvous))
        if self._lock_fd >= 0:
            os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)
            self._lock_fd = -1


def watchdog_ms(model: ModelConfig, config: Config) -> float:
    """A model's watchdog time: its own, or by default five deadlines (at least WATCHDOG_MIN_MS)."""
    return model.watchdog_ms or max(WATCHDOG_MIN_MS, 5 * config.rendezvous.deadline_ms)


def model_command(model: ModelConfig) -> list[str]:
    """The `rvz` arguments that run one [[models]] entry: its name and use case pick it out of the
    configuration the child is given (RVZ_CONFIG_JSON)."""
    return ["model", "run", "--name", model.name, "--use-case", model.use_case]


def _metrics_args(config: Config, offset: int) -> list[str]:
    listen = offset_listen(config.metrics.listen, offset)
    return ["--metrics-listen", listen] if listen else []


def run_up(config: Config, share: Share | None = None) -> int:
    """Run a deployment (``share``: this host's share of it; default all of it) in this process until SIGINT
    or SIGTERM; return the exit status (see the module)."""
    supervisor = Supervisor(config, share)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        supervisor.request_stop(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
