"""How Linux schedules rvz's processes: a worker's CPU priority ([[models]] nice) and the rendezvous's
timer precision."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

_PR_SET_TIMERSLACK = 29
# The smallest slack Linux takes (0 would mean "back to the default").
MIN_TIMER_SLACK_NS = 1


def lower_priority(nice: int) -> None:
    """Set this process's nice value (0-19), for every thread it already has.

    On Linux the nice value belongs to a thread, and a new thread inherits its creator's: setting it on
    each existing thread, before serving starts, covers the whole process.
    """
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        threads = [0]  # no /proc: this thread (the others inherit it when they start)
    for tid in threads:
        os.setpriority(os.PRIO_PROCESS, tid, nice)
    logger.info("running at nice %d", nice)


def precise_timers() -> bool:
    """Let this thread's timers fire as soon as they are due: Linux's timer slack set to 1 ns.

    Linux may fire a sleeping thread's timer up to its timer slack late (50 µs by default), to merge
    wake-ups. The rendezvous sleeps until the next window boundary or deadline, so every fallback and
    timeout would be that much later (the gain is in docs/performance.md). The slack belongs to the thread that
    sets it (and the threads it starts later); returns False where it cannot be set.
    """
    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_TIMERSLACK, MIN_TIMER_SLACK_NS, 0, 0, 0) == 0)
    return False
