"""rvz.process.child.ChildProcess, the one wrapper `rvz up`, the tests and the benchmark start children with."""

from __future__ import annotations

import signal
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rvz.errors import ChildExited, Interrupted, NotReady
from rvz.process.child import ChildProcess, ChildSpec

pytestmark = pytest.mark.timeout(60)

# Far more than a pipe holds (64 KiB): a child whose stdout nobody read would block on it.
CHATTY = textwrap.dedent("""
    import sys, time
    for i in range(20000):
        print("chatter", i, "x" * 80)
    print("ready at", 42, flush=True)
    for i in range(20000):
        print("more chatter", i, "x" * 80)
    print("done", flush=True)
    time.sleep(60)
""")


def child(root: Path, code: str, *announces: str, name: str = "child") -> ChildProcess:
    spec = ChildSpec(name, (sys.executable, "-c", code), cwd=root, stderr_path=root / f"{name}.stderr",
                     announces=announces)
    return ChildProcess(spec)


def test_a_chatty_child_never_blocks_and_its_ready_line_is_found(root: Path) -> None:
    proc = child(root, CHATTY, "ready at ", "done")
    proc.start()
    try:
        # Read after everything was printed: the line is kept however much came after it.
        assert proc.wait_line("done", timeout_s=30) == ""
        assert proc.wait_line("ready at ") == "42"
        assert proc.output_tail().splitlines()[-1] == "done"
    finally:
        code = proc.stop()
    assert code == -signal.SIGTERM
    assert proc.stop() == code and proc.kill() == code  # idempotent once it has ended


def test_a_child_that_exits_before_its_line_says_how_and_why(root: Path) -> None:
    proc = child(root, "import sys; print('oops: bad config', file=sys.stderr); sys.exit(2)", "ready")
    proc.start()
    with pytest.raises(ChildExited) as caught:
        proc.wait_line("ready")
    assert caught.value.returncode == 2
    assert "child" in str(caught.value) and "exited with code 2" in str(caught.value)
    assert "oops: bad config" in str(caught.value)


def test_the_last_line_of_a_child_that_ends_is_still_found(root: Path) -> None:
    proc = child(root, "print('totals: 7 calls')", "totals: ")
    proc.start()
    assert proc.wait(timeout_s=30) == 0
    assert proc.wait_line("totals: ") == "7 calls"


def test_a_child_that_ignores_sigterm_is_killed_after_its_grace(root: Path) -> None:
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)")
    proc = child(root, code, "ready")
    proc.start()
    proc.wait_line("ready")
    started = time.monotonic()
    assert proc.stop(grace_s=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_waits_give_up_at_once_when_asked_to_stop_or_when_a_check_fails(root: Path) -> None:
    proc = child(root, "import time; time.sleep(60)", "ready")
    proc.start()
    try:
        stop = threading.Event()
        timer = threading.Timer(0.2, stop.set)  # as a signal handler would, while the wait goes on
        timer.start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            proc.wait_line("ready", stop=stop)
        assert time.monotonic() - started < 2
        timer.join()

        def sibling_died() -> None:
            raise NotReady("the rendezvous exited")

        with pytest.raises(NotReady, match="the rendezvous exited"):
            proc.wait_line("ready", check=sibling_died)
        with pytest.raises(NotReady, match=r"did not print 'ready' within 0\.3 s"):
            proc.wait_line("ready", timeout_s=0.3)
        with pytest.raises(ValueError, match="not one of the lines"):
            proc.wait_line("listening on ")
    finally:
        proc.stop()


def test_a_restart_is_a_fresh_run(root: Path) -> None:
    proc = child(root, "import os, time; print('pid', os.getpid(), flush=True); time.sleep(60)", "pid ")
    first = proc.start()
    try:
        with pytest.raises(RuntimeError, match="still running"):
            proc.start()
        assert proc.wait_line("pid ") == str(first)
    finally:
        proc.stop()
    second = proc.start()
    try:
        assert second != first and proc.pid == second
        assert proc.wait_line("pid ") == str(second)
    finally:
        proc.stop()
