"""A small, really full disk: a tmpfs mounted with mount(2) (needs root), and a file that fills it.

Used by scripts/chaos's disk-full row and by the tests (tests/small_disk.py), so both fill a disk alike.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

_MNT_DETACH = 2


def mount_tmpfs(where: Path, size_kib: int) -> None:
    """Mount a tmpfs of ``size_kib`` at ``where`` (made if missing); raises OSError (needs root)."""
    where.mkdir(parents=True, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", str(where).encode(), b"tmpfs", 0, f"size={size_kib}k".encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"cannot mount a tmpfs at {where} ({os.strerror(error)}): a full disk needs root")


def unmount(where: Path) -> None:
    """Unmount ``where``, lazily if it is still busy."""
    ctypes.CDLL(None, use_errno=True).umount2(str(where).encode(), _MNT_DETACH)


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
