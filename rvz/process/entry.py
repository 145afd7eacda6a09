"""Entry points of the long-running processes: signal handling lives here and only sets a flag."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from rvz.admin.state import AdminState
from rvz.config import Config, ModelConfig
from rvz.frontend.server import Frontend
from rvz.process.child import STOP_GRACE_S
from rvz.process.heartbeat import HEARTBEAT_ENV, RESTARTS_ENV, Heartbeat
from rvz.process.scheduling import lower_priority, precise_timers
from rvz.rendezvous.loop import Rendezvous
from rvz.security.deployment import keyring_for
from rvz.security.process import ProcessKeys
from rvz.telemetry.setup import Telemetry, offset_listen
from rvz.telemetry.setup import setup as telemetry_setup
from rvz.worker.loop import Worker, WorkerConfig
from rvz.worker.model import load_model

logger = logging.getLogger(__name__)

# Printed on stdout once the frontend listens; `rvz up` and tests read it to learn the port.
LISTENING_PREFIX = "rvz frontend listening on "
# Printed on stdout by a worker once its subscription is proven (it received a probe).
MODEL_READY = "rvz model ready: "
# Printed on stdout by the rendezvous once its logs are open and its endpoints bound.
RENDEZVOUS_READY = "rvz rendezvous ready"
# Printed on stdout by a frontend the first time its health turns SERVING.
FRONTEND_SERVING = "rvz frontend serving"
# Printed on stdout by the requests hub once both of its endpoints are bound.
HUB_READY = "rvz hub ready"
_PR_SET_PDEATHSIG = 1


def run_frontend(config: Config, metrics_listen: str = "", name: str = "") -> None:
    telemetry = telemetry_setup("frontend", config.tracing, config.metrics, metrics_listen or config.metrics.listen)
    try:
        try:
            import uvloop
        except ImportError:
            asyncio.run(_serve_frontend(config, telemetry, name))
        else:
            uvloop.run(_serve_frontend(config, telemetry, name))
    finally:
        telemetry.shutdown()


async def _serve_frontend(config: Config, telemetry: Telemetry, name: str) -> None:
    should_exit = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, should_exit.set)
    frontend = Frontend(config, telemetry, name)
    frontend.on_serving = lambda: print(FRONTEND_SERVING, flush=True)
    port = await frontend.start()
    freeze_heap()
    host = config.frontend.listen.rsplit(":", 1)[0]
    print(f"{LISTENING_PREFIX}{host}:{port}", flush=True)
    logger.info("serving rvz.v1.Scoring on %s:%d over %s (SLA %g ms as configured, until the rendezvous reports "
                "one set through the Admin API; gRPC backlog %d, overflow %s)", host, port,
                "TLS" if frontend.credentials else "plaintext", config.rendezvous.deadline_ms,
                config.frontend.grpc_backlog, config.frontend.grpc_overflow)
    if frontend.admin_server is not None:
        admin_host = config.security.admin_listen.rsplit(":", 1)[0]
        logger.info("serving rvz.v1.Admin on %s:%d", admin_host, frontend.admin_port)
    await should_exit.wait()
    logger.info("stopping: draining calls in flight")
    await frontend.stop(grace=frontend_grace_s(config))


def frontend_grace_s(config: Config) -> float:
    """How long a stopping frontend lets calls in flight finish: twice the SLA, at least a second."""
    return max(1.0, config.rendezvous.deadline_ms / 1000 * 2)


def run_rendezvous(config: Config, metrics_listen: str = "", index: int = 0) -> None:
    listen = metrics_listen or (offset_listen(config.metrics.listen, 1) if index == 0 else "")
    telemetry = telemetry_setup("rendezvous", config.tracing, config.metrics, listen)
    rendezvous = Rendezvous(config, telemetry, index)
    rendezvous.on_ready = lambda: print(RENDEZVOUS_READY, flush=True)
    logger.info("in force: %s", in_force(rendezvous.admin_state))
    freeze_heap()
    if not precise_timers():  # its loop runs on this thread
        logger.warning("cannot lower the timer slack: fallbacks and timeouts may fire up to 50 µs late")
    try:
        with _exit_on_signal(rendezvous.should_exit):
            rendezvous.run()
    finally:
        telemetry.shutdown()


def run_hub(config: Config) -> None:
    from rvz.hub.relay import RequestsHub

    hub = RequestsHub(config)
    hub.on_ready = lambda: print(HUB_READY, flush=True)
    with _exit_on_signal(hub.should_exit):
        hub.run()


def run_model(config: Config, model: ModelConfig, metrics_listen: str = "") -> None:
    if model.nice:
        lower_priority(model.nice)  # first: threads started later (ZeroMQ's, a model's) inherit it
    keys = ProcessKeys(keyring_for(config, "model", model))  # before loading: a key problem is found at once
    loaded = None if model.role == "decoy" else load_model(model.entry)
    telemetry = telemetry_setup(f"model-{model.name}", config.tracing, config.metrics, metrics_listen)
    beat_path = os.environ.get(HEARTBEAT_ENV)
    worker = Worker(WorkerConfig(model, config.streams, config.log.dir, config.log.fsync,
                                 config.limits.output_bytes, config.limits.message_bytes), loaded,
                    on_ready=lambda: print(f"{MODEL_READY}{model.use_case}/{model.name}", flush=True),
                    telemetry=telemetry, heartbeat=Heartbeat(Path(beat_path)) if beat_path else None,
                    restarts=int(os.environ.get(RESTARTS_ENV, "0") or 0), keys=keys)
    freeze_heap()
    try:
        with _exit_on_signal(worker.should_exit):
            worker.run()
    finally:
        telemetry.shutdown()


def in_force(state: AdminState) -> str:
    """The policies and roles that decide answers: those set through the Admin API (saved in
    DATA_DIR/admin-state.json) win over the configuration's."""
    parts = [f"use case {u!r} policy v{p.version} (SLA {p.deadline_ms:g} ms, set through the Admin API)"
             for u, p in sorted(state.policies.items())]
    default = state.default
    parts.append(f"{'every other use case' if parts else 'every use case'} policy v{default.version} "
                 f"(SLA {default.deadline_ms:g} ms, as configured)")
    roles = [f"{u}/{name} {role}" for u, by_name in sorted(state.roles.items())
             for name, role in sorted(by_name.items())]
    if roles:
        parts.append(f"roles set through the Admin API: {', '.join(roles)}")
    return "; ".join(parts)


def freeze_heap() -> None:
    """Exempt everything built so far (modules, the model, gRPC and OTel objects) from garbage collection.

    The cyclic collector's full passes walk every tracked object: with the tens of thousands a started
    process holds, one pass stalls serving for tens of milliseconds on a busy machine, which showed up as
    the p99 of answers (docs/performance.md). Frozen objects are never walked again; what serving allocates still is.
    """
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def _exit_on_signal(should_exit: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM set ``should_exit`` (the loop decides how to stop) and arm a hard exit after
    STOP_GRACE_S: a model stuck in its own code never stops on a flag, and once `rvz up` itself is gone
    (killed) nobody would send the SIGKILL its stop sends after the same grace."""

    def on_signal(sig: int, _frame: object) -> None:
        if not should_exit.is_set():
            threading.Thread(target=_exit_later, args=(128 + sig,), name="hard-exit", daemon=True).start()
        should_exit.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _exit_later(status: int) -> None:
    time.sleep(STOP_GRACE_S)  # a deadline, not a wait for readiness: a clean stop ends the process first
    logger.error("still running %g s after being asked to stop: exiting now", STOP_GRACE_S)
    os._exit(status)


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (used by `rvz up` for its children)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The parent may have died before prctl took effect.
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)
