"""A small, really full disk for tests (scripts/chaos_faults/disk.py; needs root: tests skip otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness import scripts_importable

with scripts_importable():
    from chaos_faults.disk import fill, mount_tmpfs, unmount

__all__ = ["fill", "small_disk"]


@contextmanager
def small_disk(where: Path, size_kib: int = 512) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` at ``where`` for the block; unmount it after (lazily, if still busy)."""
    try:
        mount_tmpfs(where, size_kib)
    except OSError as e:
        pytest.skip(str(e))
    try:
        yield where
    finally:
        unmount(where)
