"""The on-disk format of rvz's logs: segments of framed records that a reader can resynchronise on.

A log is a directory. Records live in segment files named ``%020d.seg`` (0, 1, 2, ...); when the
current segment reaches its size limit the next append starts a new one.

Format 2 (the format written today)
-----------------------------------
A segment starts with ``b"RVZLOG2\\n"`` followed by one framed record whose payload is the UTF-8 name of
the record type (e.g. ``rvz.v1.RequestEnvelope``), so a generic reader can decode the log. A frame is:

- ``SYNC``, the four bytes ``a5 5a d7 1c``;
- the payload length, 4 bytes little-endian (at most ``MAX_PAYLOAD``);
- ``zlib.crc32`` of the length's four bytes followed by the payload, 4 bytes little-endian;
- the payload.

The checksum covers the length, so a damaged length is detected rather than followed. After a damaged
frame the reader looks for the next ``SYNC`` whose frame checks out and goes on from there: one damaged
record costs that record, never the intact ones after it (``scan`` yields the damaged byte range as a
``Damage``). A frame that starts but does not end before the end of the file is a torn tail: the only
damage a writer's recovery cuts off (``rvz.log.writer``), after copying it into ``DIR/damaged/``.

Format 1 (rvz 0.1; read, never written)
---------------------------------------
Magic ``b"RVZLOG1\\n"``; frames are the length and ``zlib.crc32(payload)`` (4 bytes each, little-endian),
then the payload, with no sync marker: after damage nothing in a format-1 segment can be trusted to be a
record boundary, so the rest of that segment is reported as one ``Damage`` and the reader goes on with
the next segment. A writer never appends to a format-1 segment: it starts a new format-2 one.

The file ``LOCK`` holds an exclusive ``flock`` for the writer's lifetime and contains its pid. There is
one writer per directory (``rvz.log.writer``); readers (``rvz.log.reader``) never lock.
"""

from __future__ import annotations

import mmap
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rvz.errors import LogError

MAGIC = b"RVZLOG2\n"
MAGIC_V1 = b"RVZLOG1\n"
SYNC = b"\xa5\x5a\xd7\x1c"
MAX_PAYLOAD = 64 * 1024 * 1024
LOCK_NAME = "LOCK"
# Where a writer's recovery keeps the bytes it cuts off a torn tail.
DAMAGED_DIR = "damaged"
SEGMENT_NAME = re.compile(r"\d{20}\.seg")
_TYPE_NAME = re.compile(rb"[A-Za-z_][\w.]{0,255}")
_LENGTH = struct.Struct("<I")
_FRAME = struct.Struct("<4sII")  # sync, length, crc32(length + payload)
_FRAME_V1 = struct.Struct("<II")  # length, crc32(payload)
FRAME_SIZE = _FRAME.size


@dataclass(frozen=True)
class LogRecord:
    """One record as read back: the segment file's path, the frame's offset in it, the payload."""

    segment: str
    offset: int
    payload: bytes

    @property
    def end(self) -> int:
        """The offset right after this record's frame: where the next one starts."""
        return self.offset + FRAME_SIZE + len(self.payload)


@dataclass(frozen=True)
class Damage:
    """Bytes ``[start, end)`` of a segment that hold no intact record.

    ``torn`` when no intact record follows them: the tail of the file, which a crash during a write
    leaves behind (and the only damage a writer's recovery removes).
    """

    segment: str
    start: int
    end: int
    reason: str
    torn: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start

    def describe(self) -> str:
        kind = "damaged tail" if self.torn else "damaged bytes"
        return f"{self.segment}: {kind} at offsets {self.start}-{self.end} ({self.size} bytes: {self.reason})"


def frame(payload: bytes) -> bytes:
    """One format-2 frame around ``payload``; raises ValueError past MAX_PAYLOAD."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"log payload of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    size = len(payload)
    return _FRAME.pack(SYNC, size, zlib.crc32(payload, zlib.crc32(_LENGTH.pack(size)))) + payload


def header(record_type: str) -> bytes:
    """The bytes a format-2 segment of ``record_type`` records starts with."""
    return MAGIC + frame(record_type.encode("utf-8"))


def list_segments(directory: Path) -> list[Path]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise LogError(f"log directory {directory} does not exist; check the path") from None
    except NotADirectoryError:
        raise LogError(f"{directory} is a file, not a log directory; check the path") from None
    return [directory / name for name in sorted(names) if SEGMENT_NAME.fullmatch(name)]


class Segment:
    """A read-only view of one segment file: its format, record type, records and damage.

    Use as a context manager (the file is memory-mapped while open). ``version`` is 1 or 2, or None
    when the header is unreadable; ``record_type`` is None then too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.version: int | None = None
        self.record_type: str | None = None
        self.first_record = 0
        self.header_problem = ""
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        size = os.fstat(self._file.fileno()).st_size
        self._data: bytes | mmap.mmap = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self._read_header()

    @property
    def size(self) -> int:
        return len(self._data)

    def __enter__(self) -> Segment:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        self._file.close()

    def is_prefix_of(self, data: bytes) -> bool:
        """True when the whole file is a prefix of ``data`` (e.g. a header cut short by a crash)."""
        return data.startswith(bytes(self._data))

    def damaged_header(self) -> Damage | None:
        """The header's damage, when the magic is damaged but the record type could still be read."""
        if self.header_problem and self.record_type is not None:
            return Damage(str(self.path), 0, len(MAGIC), self.header_problem)
        return None

    def _read_header(self) -> None:
        magic = bytes(self._data[: len(MAGIC)])
        version = {MAGIC: 2, MAGIC_V1: 1}.get(magic)
        if version is None:
            # A damaged magic with the record-type frame intact still says what the segment holds.
            version, self.header_problem = 2, "damaged segment magic"
        found = _frame_at(self._data, len(MAGIC), version)
        if isinstance(found, str):
            self.header_problem = f"bad segment header: {found}"
            return
        name, end = found
        if not _TYPE_NAME.fullmatch(name):
            self.header_problem = "bad segment header: no record type name"
            return
        self.record_type, self.version, self.first_record = name.decode("ascii"), version, end

    def entries(self, start: int = 0) -> Iterator[LogRecord | Damage]:
        """Every intact record and every damaged range, in file order (the header excluded), from the
        record at offset ``start`` on when it is past the header (a record boundary, e.g. a record's end)."""
        offset = max(start, self.first_record)
        while offset < self.size:
            found = _frame_at(self._data, offset, self.version or 2)
            if isinstance(found, str):
                # Format 2 (or an unreadable header): go on at the next frame that checks out.
                resume = None if self.version == 1 else self._next_frame(offset)
                if resume is None:
                    reason = found if self.version != 1 else (
                        f"{found}; a format-1 segment has no sync marker to find the next record by")
                    yield Damage(str(self.path), offset, self.size, reason, torn=True)
                    return
                yield Damage(str(self.path), offset, resume, found)
                offset = resume
                continue
            payload, end = found
            yield LogRecord(str(self.path), offset, payload)
            offset = end

    def _next_frame(self, after: int) -> int | None:
        """Offset of the first intact format-2 frame past ``after``, if any."""
        candidate = after
        while (candidate := self._data.find(SYNC, candidate + 1)) != -1:
            if not isinstance(_frame_at(self._data, candidate, 2), str):
                return candidate
        return None


def _frame_at(data: bytes | mmap.mmap, offset: int, version: int) -> tuple[bytes, int] | str:
    """The payload of the frame at ``offset`` and the offset after it, or why there is none."""
    size = len(data)
    head = _FRAME if version == 2 else _FRAME_V1
    start = offset + head.size
    if start > size:
        return f"torn frame header ({size - offset} of {head.size} bytes)"
    if version == 2:
        sync, length, crc = _FRAME.unpack_from(data, offset)
        if sync != SYNC:
            return "no sync marker where a record should start"
    else:
        length, crc = _FRAME_V1.unpack_from(data, offset)
    if length > MAX_PAYLOAD:
        return f"absurd payload length {length}"
    if start + length > size:
        return f"torn payload ({size - start} of {length} bytes)"
    payload = data[start:start + length]
    # Format 2's checksum starts with the length's bytes; format 1's covers the payload alone.
    seed = zlib.crc32(data[offset + 4:offset + 8]) if version == 2 else 0
    if zlib.crc32(payload, seed) != crc:
        return "checksum mismatch"
    return payload, start + length
