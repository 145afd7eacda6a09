"""A worker's CPU priority ([[models]] nice)."""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


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
