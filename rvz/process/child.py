"""One child process, started, watched and stopped the same way by `rvz up`, the tests and the benchmark.

A ``ChildProcess`` runs the command of its ``ChildSpec``, one run at a time; once a run has ended it may
be started again (`rvz up` restarts its children). Its stdout is always read by a thread of ours, line
by line, from start to end of file, so a chatty child never blocks on a full pipe. The first line of a
run that starts with one of the spec's ``announces`` prefixes (a ready line, the address it bound, its
totals) is kept for ``wait_line`` however much the child prints after it; other lines are kept only as
a short tail for error messages. stderr goes where the spec says: inherited (`rvz up`'s terminal) or
appended to a file (the tests and the benchmark, which print it when something fails).

Every wait is bounded (a timeout), gives up at once when a ``stop`` event is set (a signal handler sets
it) and calls ``check`` every ``TICK_S``, which may raise to give up early (e.g. another child died).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rvz.errors import ChildExited, Interrupted, NotReady

logger = logging.getLogger(__name__)

# From start to ready: Python with gRPC, NumPy and SciPy imported takes seconds on a busy 2-core
# machine, and a model may load or train for a while before its worker reports ready.
START_TIMEOUT_S = 120.0
# From SIGTERM to SIGKILL: the frontend drains calls in flight for up to twice the SLA, a worker flushes
# its queued scores for up to streams.FLUSH_MS, logs are synced.
STOP_GRACE_S = 10.0
# From SIGKILL to the exit status: only a process stuck in the kernel takes longer.
KILL_WAIT_S = 5.0
# How long a run's last lines may take to come out of the pipe once the run has ended.
EOF_WAIT_S = 1.0
# How often a wait checks its stop event and calls its check.
TICK_S = 0.1
TAIL_LINES = 50
STDERR_TAIL_CHARS = 4000

Check = Callable[[], None]


@dataclass(frozen=True)
class ChildSpec:
    """What to run. ``env`` is the child's whole environment (None: ours); ``stderr_path`` a file the
    child's stderr is appended to (None: ours); ``own_session`` puts the child in a session of its own,
    so that a Ctrl-C in our terminal reaches only us and we stop it in order."""

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stderr_path: Path | None = None
    announces: tuple[str, ...] = ()
    own_session: bool = False


@dataclass(eq=False)
class _Run:
    """One run of the command: its process, what its stdout announced, and the thread reading it."""

    popen: subprocess.Popen[bytes]
    started_at: float
    announced: dict[str, str] = field(default_factory=dict)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    eof: bool = False
    reader: threading.Thread | None = None


class ChildProcess:
    """A child process: start, wait for a line it announces, stop with a grace period, kill.

    Not thread-safe: one thread drives it (the reader thread it starts only records lines). ``spec``
    may be replaced between runs; the new one applies from the next ``start``.
    """

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self._run: _Run | None = None
        self._changed = threading.Condition()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        """The pid of the current (or last) run; raises RuntimeError before the first start."""
        return self._current().popen.pid

    @property
    def started_at(self) -> float:
        """time.monotonic() at the start of the current (or last) run; 0.0 before the first start."""
        return self._run.started_at if self._run is not None else 0.0

    def start(self) -> int:
        """Start a run of the command and return its pid.

        Starting again once the previous run has ended is a restart: fresh announcements, a fresh
        reader. Raises RuntimeError if the previous run is still going, OSError if the command cannot
        be started (a missing executable or working directory).
        """
        if self._run is not None and self._run.popen.poll() is None:
            raise RuntimeError(f"{self.name} (pid {self._run.popen.pid}) is still running")
        spec = self.spec
        with contextlib.ExitStack() as stack:
            stderr = stack.enter_context(open(spec.stderr_path, "ab")) if spec.stderr_path else None
            popen = subprocess.Popen(spec.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                     env=None if spec.env is None else dict(spec.env), cwd=spec.cwd,
                                     start_new_session=spec.own_session)
        run = _Run(popen, time.monotonic())
        assert popen.stdout is not None
        run.reader = threading.Thread(target=self._drain, args=(run, popen.stdout), name=f"stdout-{self.name}",
                                      daemon=True)
        self._run = run
        run.reader.start()
        return popen.pid

    def poll(self) -> int | None:
        """The exit status of the current run (-N: ended by signal N), None while it runs or before any start."""
        return self._run.popen.poll() if self._run is not None else None

    def wait_line(self, prefix: str, timeout_s: float = START_TIMEOUT_S, *, stop: threading.Event | None = None,
                  check: Check | None = None) -> str:
        """What follows ``prefix`` on the first line of this run's stdout that starts with it.

        Returns at once if the line was printed already, however much the child printed since. Raises
        ValueError if ``prefix`` is not one of the spec's ``announces``, RuntimeError before the first
        start, ChildExited if the run ends without printing it, NotReady after ``timeout_s`` (or if the
        child closed its stdout without printing it), Interrupted once ``stop`` is set, and whatever
        ``check`` raises.
        """
        if prefix not in self.spec.announces:
            raise ValueError(f"{prefix!r} is not one of the lines {self.name} announces: {self.spec.announces}")
        run = self._current()
        for left in ticks(f"{self.name} to print {prefix.strip()!r}", timeout_s, stop, check):
            with self._changed:
                if prefix not in run.announced and not run.eof:
                    self._changed.wait(min(left, TICK_S))
                if prefix in run.announced:
                    return run.announced[prefix]
            if run.eof or run.popen.poll() is not None:
                return self._line_after_end(run, prefix)
        raise NotReady(f"{self.name} (pid {run.popen.pid}) did not print {prefix.strip()!r} within {timeout_s:g} s"
                       f"{self._stderr_note()}")

    def wait(self, timeout_s: float) -> int | None:
        """Wait up to ``timeout_s`` for the run to end on its own; its exit status, or None if it still runs."""
        run = self._current()
        try:
            run.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self._join_reader(run)
        return run.popen.returncode

    def stop(self, sig: int = signal.SIGTERM, *, grace_s: float = STOP_GRACE_S) -> int | None:
        """Send ``sig`` to the run, wait up to ``grace_s`` for it to end, then kill it; return its exit status.

        Idempotent: on a run that has ended it only returns its status (None before any start). Does not
        raise for a child that is already gone. Returns once the run's stdout has been read to its end
        (or EOF_WAIT_S has passed, if a grandchild still holds the pipe open).
        """
        run = self._run
        if run is None:
            return None
        if run.popen.poll() is None:
            run.popen.send_signal(sig)  # a no-op if it has just been reaped
            try:
                run.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) did not stop within %g s; killing it", self.name, run.popen.pid, grace_s)
                return self.kill()
        self._join_reader(run)
        return run.popen.returncode

    def kill(self) -> int | None:
        """SIGKILL the run and return its exit status; idempotent, like ``stop``.

        Returns None (and logs an error) if the kernel has not ended the process KILL_WAIT_S later.
        """
        run = self._run
        if run is None:
            return None
        run.popen.kill()  # a no-op once it has been reaped
        try:
            run.popen.wait(KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            logger.error("%s (pid %d) is still there %g s after SIGKILL", self.name, run.popen.pid, KILL_WAIT_S)
            return None
        self._join_reader(run)
        return run.popen.returncode

    def output_tail(self) -> str:
        """The last TAIL_LINES lines the current run printed on stdout."""
        if self._run is None:
            return ""
        with self._changed:
            return "\n".join(self._run.tail)

    def stderr_tail(self, chars: int = STDERR_TAIL_CHARS) -> str:
        """The end of the stderr file ("" when stderr is inherited or nothing was written yet)."""
        path = self.spec.stderr_path
        return path.read_text(errors="replace")[-chars:] if path is not None and path.exists() else ""

    # --- internals ----------------------------------------------------------------------------

    def _current(self) -> _Run:
        if self._run is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._run

    def _drain(self, run: _Run, stdout: IO[bytes]) -> None:
        """The reader thread: every line until end of file, so the pipe never fills up."""
        with stdout:
            for raw in stdout:
                self._on_line(run, raw.decode(errors="replace").rstrip("\r\n"))
        with self._changed:
            run.eof = True
            self._changed.notify_all()

    def _on_line(self, run: _Run, line: str) -> None:
        with self._changed:
            run.tail.append(line)
            for prefix in self.spec.announces:
                if line.startswith(prefix) and prefix not in run.announced:
                    run.announced[prefix] = line.removeprefix(prefix).strip()
                    self._changed.notify_all()

    def _line_after_end(self, run: _Run, prefix: str) -> str:
        """The run ended or closed its stdout: the line is in by now, or will never come."""
        self._join_reader(run)
        with self._changed:
            if prefix in run.announced:
                return run.announced[prefix]
        try:
            code = run.popen.wait(EOF_WAIT_S)  # its stdout ends a moment before it does
        except subprocess.TimeoutExpired:
            raise NotReady(f"{self.name} (pid {run.popen.pid}) closed its stdout without printing "
                           f"{prefix.strip()!r}{self._stderr_note()}") from None
        raise ChildExited(f"{self.name} (pid {run.popen.pid}) exited with code {code} before printing "
                          f"{prefix.strip()!r}{self._stderr_note()}", code)

    def _join_reader(self, run: _Run) -> None:
        if run.reader is not None and run.reader is not threading.current_thread():
            run.reader.join(EOF_WAIT_S)

    def _stderr_note(self) -> str:
        if self.spec.stderr_path is None:
            return " (its own error, if any, is above)"
        return f"; its stderr ends with:\n{self.stderr_tail()}"


def ticks(what: str, timeout_s: float, stop: threading.Event | None = None,
          check: Check | None = None) -> Iterator[float]:
    """The rounds of a bounded wait: yields the seconds left, until ``timeout_s`` has passed.

    Before each round raises Interrupted if ``stop`` is set, then calls ``check`` (which may raise).
    The caller waits at most TICK_S per round, on whatever it waits for, and gives its own error when
    the rounds run out.
    """
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        if stop is not None and stop.is_set():
            raise Interrupted(f"asked to stop while waiting for {what}")
        if check is not None:
            check()
        yield left


def pause(stop: threading.Event | None, seconds: float) -> None:
    """Wait ``seconds`` between two reads of something that has no signal of its own; at once when ``stop`` is set."""
    (stop or threading.Event()).wait(seconds)
