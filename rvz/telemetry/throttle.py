"""When to repeat a warning about a count that keeps growing (drops, undeliverable messages)."""

from __future__ import annotations


def passed_milestone(before: int, after: int) -> bool:
    """Whether a count went past 1, 10, 100 or a multiple of 1000 between two readings."""
    return any(before < mark <= after for mark in (1, 10, 100)) or before // 1000 != after // 1000
