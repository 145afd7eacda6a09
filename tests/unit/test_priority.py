"""Scheduling knobs of rvz's processes, checked through /proc."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from rvz.process.scheduling import MIN_TIMER_SLACK_NS, precise_timers


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timer slack is a Linux notion")
def test_precise_timers_sets_the_calling_threads_slack_only() -> None:
    before = Path("/proc/self/timerslack_ns").read_text()
    seen: dict[str, object] = {}

    def on_a_thread() -> None:
        seen["set"] = precise_timers()
        # /proc/TID is there for every thread, though only processes are listed.
        seen["slack"] = Path(f"/proc/{threading.get_native_id()}/timerslack_ns").read_text().strip()

    thread = threading.Thread(target=on_a_thread)
    thread.start()
    thread.join()
    assert seen == {"set": True, "slack": str(MIN_TIMER_SLACK_NS)}
    assert Path("/proc/self/timerslack_ns").read_text() == before  # the main thread keeps its own
