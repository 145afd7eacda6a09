"""A worker's sign of progress that its supervisor can read however stuck the worker is.

The worker writes CLOCK_MONOTONIC (system-wide, so comparable between processes of one host) into an
8-byte memory-mapped file at each pass of its loop: before and after every model call, and at least
every poll timeout while idle. The supervisor reads it: a beat older than the model's watchdog time
means the worker makes no progress (a model that hangs, a stopped process, a loop that never yields),
whatever the worker itself could still say. Writing a beat costs one ``pack_into`` on the map.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from pathlib import Path

_BEAT = struct.Struct("<q")
# The environment variable naming a worker's heartbeat file (set by `rvz up` for the models it runs).
HEARTBEAT_ENV = "RVZ_HEARTBEAT_FILE"
# How many times `rvz up` restarted this worker before (it reports it in its announces).
RESTARTS_ENV = "RVZ_RESTARTS"


class Heartbeat:
    """The writing end. Create in the worker's process; ``beat`` from the loop's thread."""

    def __init__(self, path: Path) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, _BEAT.size)
            self._map = mmap.mmap(fd, _BEAT.size)
        finally:
            os.close(fd)

    def beat(self) -> None:
        _BEAT.pack_into(self._map, 0, time.monotonic_ns())

    def close(self) -> None:
        self._map.close()


def last_beat_ns(path: Path) -> int | None:
    """CLOCK_MONOTONIC of the last beat written to ``path``; None before the first (or without a file)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) < _BEAT.size:
        return None
    beat: int = _BEAT.unpack_from(data)[0]
    return beat or None
