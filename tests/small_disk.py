"""A small, really full disk for tests: a tmpfs mounted with mount(2) (needs root; tests skip otherwise)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_MNT_DETACH = 2


@contextmanager
def small_disk(where: Path, size_kib: int = 512) -> Iterator[Path]:
    """Mount a tmpfs of ``size_kib`` at ``where`` for the block; unmount it after (lazily, if still busy)."""
    libc = ctypes.CDLL(None, use_errno=True)
    where.mkdir(parents=True, exist_ok=True)
    if libc.mount(b"tmpfs", str(where).encode(), b"tmpfs", 0, f"size={size_kib}k".encode()) != 0:
        error = ctypes.get_errno()
        pytest.skip(f"cannot mount a tmpfs here ({os.strerror(error)}): a full disk needs root")
    try:
        yield where
    finally:
        libc.umount2(str(where).encode(), _MNT_DETACH)


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; returns the filler file (delete it to give the space back)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 4096, 1):  # big writes first, then the last bytes
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler
