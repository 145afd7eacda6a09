"""Warnings that repeat without flooding the log: about counts that keep growing (drops, undeliverable
messages) and about inputs that keep failing (malformed payloads, failing models)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

# A warning that keeps firing is logged at most once per key in this many seconds.
WARN_EVERY_S = 10.0


def passed_milestone(before: int, after: int) -> bool:
    """Whether a count went past 1, 10, 100 or a multiple of 1000 between two readings."""
    return any(before < mark <= after for mark in (1, 10, 100)) or before // 1000 != after // 1000


class ThrottledLog:
    """Logs the first warning of each key, then at most one per ``every_s``, saying how many were not logged.

    Thread-safe. ``warning(key, msg, *args)`` takes the logging module's %-style arguments; the key
    groups messages that are the same problem (e.g. "malformed score envelope", or a model's name).
    """

    def __init__(self, logger: logging.Logger, every_s: float = WARN_EVERY_S) -> None:
        self.logger = logger
        self.every_s = every_s
        self._lock = threading.Lock()
        # key -> (when the last line was logged, how many were suppressed since)
        self._state: dict[str, tuple[float, int]] = {}

    def warning(self, key: str, msg: str, *args: Any, **kwargs: Any) -> bool:
        """Log now (True) or count as suppressed (False)."""
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._state.get(key, (-self.every_s, 0))
            if now - last < self.every_s:
                self._state[key] = (last, suppressed + 1)
                return False
            self._state[key] = (now, 0)
        if suppressed:
            msg += " (%d more like it in the last %.0f s were not logged)"
            args = (*args, suppressed, now - last)
        self.logger.warning(msg, *args, **kwargs)
        return True
