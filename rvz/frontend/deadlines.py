"""Many calls' deadlines on one event-loop timer.

Every call the frontend holds must end by its deadline whatever the rendezvous, the disk or the models
do. A timer handle per call would cost an allocation and a cancel per request; instead the deadlines
live in one heap and one ``loop.call_at`` is armed for the earliest. Requests arrive in deadline order
when they share an SLA, so a new one rarely becomes the earliest: the timer is re-armed about once per
due deadline, not once per request. Entries are never removed early: when one falls due, the callback
decides whether it still matters (the call may long be answered).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class DeadlineTimers(Generic[T]):
    """Calls ``on_due(item)`` for each item once its time (Unix ns) has come, in time order.

    Must be used from the loop's thread. ``close`` (idempotent) cancels the timer; nothing fires after.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_due: Callable[[T], None]) -> None:
        self._loop = loop
        self._on_due = on_due
        self._heap: list[tuple[int, int, T]] = []
        self._tiebreak = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_ns = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, due_ns: int, item: T) -> None:
        heapq.heappush(self._heap, (due_ns, next(self._tiebreak), item))
        if self._handle is None or due_ns < self._armed_ns:
            self._arm()

    def close(self) -> None:
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()

    def _arm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self._heap or self.closed:
            return
        self._armed_ns = self._heap[0][0]
        delay_s = (self._armed_ns - time.time_ns()) / 1e9
        self._handle = self._loop.call_at(self._loop.time() + max(0.0, delay_s), self._fire)

    def _fire(self) -> None:
        self._handle = None
        now = time.time_ns()
        heap = self._heap
        while heap and heap[0][0] <= now and not self.closed:
            _, _, item = heapq.heappop(heap)
            self._on_due(item)
        self._arm()
