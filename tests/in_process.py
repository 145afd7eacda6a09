"""A real rvz deployment inside the test process, as gRPC's own tests run a server in theirs.

The ``Frontend`` (grpc.aio on 127.0.0.1:0) serves on an event loop of its own, on a thread; the
``Rendezvous`` and each ``Worker`` run their loops on threads; all of them on real ZeroMQ ipc://
streams in a private directory, writing their logs to ROOT/data as a deployment of processes does.
Readiness is awaited on signals (a worker's ``on_ready``, the health service's SERVING), never a
sleep; closing the deployment stops every part, each of which closes its own sockets, and joins
every thread. A part whose thread died makes the waits fail at once with its error.

Models are given as an entry (``MODULE:ATTR``, loaded as a worker loads it) or as the model object
itself, e.g. ``rvz_test_models.slow_by(60)`` where a process would read RVZ_TEST_DELAY_MS: the parts
share this process's environment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness import Calls
from rvz.config import Config, ModelConfig, Role
from rvz.frontend.server import Frontend
from rvz.process.child import START_TIMEOUT_S, STOP_GRACE_S
from rvz.process.entry import frontend_grace_s
from rvz.rendezvous.loop import Rendezvous
from rvz.security.deployment import keyring_for
from rvz.security.process import ProcessKeys
from rvz.worker.loop import Worker, WorkerConfig
from rvz.worker.model import Model, load_model

# (name, entry or model object, role)
ModelSpec = tuple[str, Any, Role]


class Loop(Protocol):
    should_exit: threading.Event

    def run(self) -> None: ...


class LoopThread:
    """A serving loop (``Rendezvous.run``, ``Worker.run``) on a thread of its own."""

    def __init__(self, name: str, loop: Loop) -> None:
        self.name = name
        self.loop = loop
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name)

    def _run(self) -> None:
        try:
            self.loop.run()
        except BaseException as e:  # reported by check(), where the test waits
            self.error = e

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def check(self) -> None:
        """Raise what the loop died of, if it did."""
        if self.error is not None:
            raise RuntimeError(f"{self.name} died: {self.error!r}") from self.error

    def ask_to_stop(self) -> None:
        """Ask the loop to return, without waiting for it (several can then stop at once)."""
        self.loop.should_exit.set()

    def stop(self) -> None:
        """Ask the loop to return and join its thread; idempotent. Raises if it does not end in time, or
        what it died of."""
        self.ask_to_stop()
        self._thread.join(STOP_GRACE_S)
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {STOP_GRACE_S:g} s")
        self.check()


class FrontendThread:
    """A ``Frontend`` serving on an event loop that runs on a thread of its own."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.frontend: Frontend | None = None
        self._port: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="frontend")

    def start(self) -> int:
        """Start serving; return the bound port. Raises what ``Frontend.start`` raised."""
        self._thread.start()
        return self._port.result(START_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop taking calls (those in flight get the frontend's grace period) and join the thread; idempotent."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.ident is not None:
            self._thread.join(STOP_GRACE_S + frontend_grace_s(self.config))
        if self._thread.is_alive():
            raise RuntimeError("the frontend did not stop in time")

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Built on its loop: the grpc.aio server belongs to the loop it was created on.
        frontend = self.frontend = Frontend(self.config)
        try:
            port = await frontend.start()
        except BaseException as e:  # the test gets it from start()
            self._port.set_exception(e)
            return
        self._port.set_result(port)
        await self._stop.wait()
        await frontend.stop(grace=frontend_grace_s(self.config))


class LogLines(logging.Handler):
    """rvz's log records while a deployment runs, for tests that check what a part logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(record.getMessage())
            self.changed.notify_all()

    def wait_for(self, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
        with self.changed:
            found = self.changed.wait_for(lambda: self._search(pattern), timeout_s)
        if found is None:
            raise AssertionError(f"nothing logged {pattern!r} in {timeout_s:g} s; logged:\n" + "\n".join(self.lines))
        return found

    def _search(self, pattern: str) -> re.Match[str] | None:
        return next((m for line in self.lines if (m := re.search(pattern, line))), None)


@contextmanager
def logs_captured() -> Iterator[LogLines]:
    """Every record of rvz's loggers at INFO and above, for as long as the block runs."""
    rvz_logger = logging.getLogger("rvz")
    handler, level = LogLines(), rvz_logger.level
    rvz_logger.addHandler(handler)
    rvz_logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        rvz_logger.removeHandler(handler)
        rvz_logger.setLevel(level)


@dataclass
class InProcessDeployment(Calls):
    """Frontend, rendezvous and models of one configuration, in threads of the test process."""

    root: Path
    # The configuration, and the file it was read from (for a command run beside the deployment).
    config: Config
    config_path: Path
    log: LogLines
    loops: dict[str, LoopThread] = field(default_factory=dict)
    frontend: FrontendThread | None = None
    _frozen: bool = False

    def start_rendezvous(self) -> Rendezvous:
        rendezvous = Rendezvous(self.config)
        self._start_loop("rendezvous", rendezvous)
        return rendezvous

    def start_frontend(self) -> Frontend:
        self.frontend = FrontendThread(self.config)
        port = self.frontend.start()
        self.address = f"127.0.0.1:{port}"
        assert self.frontend.frontend is not None
        return self.frontend.frontend

    def start_model(self, name: str, model: Any = "", role: Role = "champion", use_case: str = "default",
                    version: str = "1", wait: bool = True) -> Worker:
        """A worker for ``model`` (an entry, a model object, or a loaded Model; "" for a decoy); with ``wait``,
        returns once it has received a probe (its subscription is in place)."""
        entry = model if isinstance(model, str) else f"<{name} in the test process>"
        spec = ModelConfig(name=name, entry=entry, version=version, role=role, use_case=use_case)
        if role == "decoy":
            loaded = None
        elif isinstance(model, Model):
            loaded = model
        else:
            loaded = load_model(model) if isinstance(model, str) else Model(model, entry)
        ready = threading.Event()
        worker = Worker(WorkerConfig(spec, self.config.streams, self.config.log.dir, self.config.log.fsync), loaded,
                        on_ready=ready.set, keys=ProcessKeys(keyring_for(self.config, "model", spec)))
        self._start_loop(f"model-{name}", worker)
        if wait and not ready.wait(START_TIMEOUT_S):
            raise AssertionError(f"model {name} never received a probe")
        return worker

    def start(self, models: list[ModelSpec], use_case: str = "default") -> InProcessDeployment:
        """Rendezvous, frontend and models given as (name, entry or model, role); returns when SERVING."""
        self.start_rendezvous()
        self.start_frontend()
        for name, model, role in models:
            self.start_model(name, model, role, use_case=use_case)
        self.wait_serving(use_case)
        self.wait_models({name for name, *_ in models}, use_case)
        # As each of rvz's processes does once started (rvz.process.entry.freeze_heap): a full collection
        # of everything this test process holds would stall every part at once, well past a 30 ms window.
        gc.freeze()
        self._frozen = True
        return self

    def stop(self, name: str) -> None:
        """Stop one part ("rendezvous", "model-NAME") and forget it; it can be started again."""
        self.loops.pop(name).stop()

    @property
    def all_alive(self) -> bool:
        """Every part started is still running."""
        return all(loop.alive for loop in self.loops.values()) and (self.frontend is None or self.frontend.alive)

    def check(self) -> None:
        for loop in self.loops.values():
            loop.check()

    def close(self) -> None:
        """Stop every part, frontend first (calls in flight are answered), rendezvous last (the order `rvz up`
        uses), and join every thread; then raise what a part died of, if one did. Idempotent."""
        self.close_channel()
        errors: list[Exception] = []
        if self.frontend is not None:
            _attempt(self.frontend.stop, errors)
        workers = [loop for name, loop in self.loops.items() if name != "rendezvous"]
        for worker in workers:  # together: each may flush its last scores for up to streams.FLUSH_MS
            worker.ask_to_stop()
        for worker in workers:
            _attempt(worker.stop, errors)
        if "rendezvous" in self.loops:
            _attempt(self.loops["rendezvous"].stop, errors)
        self.loops.clear()
        if self._frozen:
            gc.unfreeze()  # what the test allocated can be collected again
            self._frozen = False
        if errors:
            raise errors[0]

    def _start_loop(self, name: str, loop: Loop) -> None:
        if name in self.loops:
            raise AssertionError(f"{name} is running already")
        self.loops[name] = thread = LoopThread(name, loop)
        thread.start()


def _attempt(stop: Callable[[], None], errors: list[Exception]) -> None:
    """Run ``stop``; keep what it raises for later, so that the other parts are stopped too."""
    try:
        stop()
    except Exception as e:
        errors.append(e)
