"""The on-disk format of rvz's logs: segments of length- and CRC-framed records.

A log is a directory. Records live in segment files named ``%020d.seg`` (0, 1, 2, ...); when the
current segment reaches its size limit the next append starts a new one.

Every segment starts with ``b"RVZLOG1\\n"`` followed by one framed record whose payload is the UTF-8
name of the record type (e.g. ``rvz.v1.RequestEnvelope``), so a generic reader can decode the log.
A record frame is the payload length (4 bytes, little-endian), ``zlib.crc32(payload)`` (4 bytes,
little-endian), then the payload; payloads are at most 64 MiB.

The file ``LOCK`` holds an exclusive ``flock`` for the writer's lifetime and contains its pid. There is
one writer per directory (``rvz.log.writer``); readers (``rvz.log.reader``) never lock.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rvz.errors import CorruptRecord, LogError

MAGIC = b"RVZLOG1\n"
MAX_PAYLOAD = 64 * 1024 * 1024
LOCK_NAME = "LOCK"
FRAME = struct.Struct("<II")
SEGMENT_NAME = re.compile(r"\d{20}\.seg")


@dataclass(frozen=True)
class LogRecord:
    """One record as read back: the segment file's path, the frame's offset in it, the payload."""

    segment: str
    offset: int
    payload: bytes


def frame(payload: bytes) -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"log payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def list_segments(directory: Path) -> list[Path]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise LogError(f"log directory {directory} does not exist; check the path") from None
    return [directory / name for name in sorted(names) if SEGMENT_NAME.fullmatch(name)]


def scan(f: BinaryIO, path: Path, offset: int) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, payload) for each good record from offset on; raise CorruptRecord at a bad one."""
    while head := f.read(FRAME.size):
        if len(head) < FRAME.size:
            raise CorruptRecord(path, offset, f"torn frame header ({len(head)} bytes)")
        length, crc = FRAME.unpack(head)
        if length > MAX_PAYLOAD:
            raise CorruptRecord(path, offset, f"absurd payload length {length}")
        payload = f.read(length)
        if len(payload) < length:
            raise CorruptRecord(path, offset, f"torn payload ({len(payload)} of {length} bytes)")
        if zlib.crc32(payload) != crc:
            raise CorruptRecord(path, offset, "checksum mismatch")
        yield offset, payload
        offset += FRAME.size + length


def read_header(f: BinaryIO, path: Path) -> tuple[str, int]:
    """Return the segment's record type and the offset of its first record."""
    if f.read(len(MAGIC)) != MAGIC:
        raise CorruptRecord(path, 0, "missing or torn segment header")
    try:
        _, payload = next(scan(f, path, len(MAGIC)))
        return payload.decode("utf-8"), len(MAGIC) + FRAME.size + len(payload)
    except StopIteration:
        raise CorruptRecord(path, 0, "segment header has no record type") from None
    except (CorruptRecord, UnicodeDecodeError) as e:
        raise CorruptRecord(path, 0, f"bad segment header: {e}") from e


def good_end(path: Path) -> tuple[str | None, int, str]:
    """Scan a segment: (record type or None if the header is bad, end of the last good record, problem)."""
    with open(path, "rb") as f:
        try:
            record_type, end = read_header(f, path)
        except CorruptRecord as e:
            return None, 0, e.reason
        try:
            for offset, payload in scan(f, path, end):
                end = offset + FRAME.size + len(payload)
        except CorruptRecord as e:
            return record_type, end, e.reason
    return record_type, end, ""
