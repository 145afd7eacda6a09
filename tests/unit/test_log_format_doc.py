"""The byte layout docs/log-format.md quotes is what the real writer writes, and reads as it says."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest

from rvz.log import format as log_format
from rvz.log.format import Damage, Segment
from rvz.log.writer import LogWriter

pytestmark = pytest.mark.timeout(60)

DOC = Path(__file__).resolve().parents[2] / "docs" / "log-format.md"
EXAMPLE_MARK = "<!-- segment example: checked by tests/unit/test_log_format_doc.py -->"
_ROW = re.compile(r"^(\d+) {2,}((?:[0-9a-f]{2} )*[0-9a-f]{2})(?: {2,}.*)?$")


def example_rows() -> list[tuple[int, bytes]]:
    """(offset, bytes) of each row of the document's segment example."""
    block = DOC.read_text().split(EXAMPLE_MARK, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    rows = []
    for line in block.splitlines()[1:]:
        match = _ROW.match(line)
        if match:
            rows.append((int(match.group(1)), bytes.fromhex(match.group(2))))
    return rows


def written_segment(directory: Path) -> bytes:
    with LogWriter(directory, "rvz.v1.FeedbackRecord") as log:
        log.append(b"hello")
    return (directory / "00000000000000000000.seg").read_bytes()


def test_the_example_is_the_bytes_the_writer_writes(tmp_path: Path) -> None:
    rows = example_rows()
    assert len(rows) == 9, "the example lost rows"
    offset = 0
    for at, data in rows:
        assert at == offset, f"row at {at} should start at {offset}"
        offset += len(data)
    assert b"".join(data for _, data in rows) == written_segment(tmp_path / "log")


def test_the_documented_constants(tmp_path: Path) -> None:
    text = DOC.read_text()
    assert log_format.MAGIC == b"RVZLOG2\n" and "`RVZLOG2\\n`" in text
    assert log_format.MAGIC_V1 == b"RVZLOG1\n" and "`RVZLOG1\\n`" in text
    assert log_format.SYNC.hex(" ") in text
    assert log_format.MAX_PAYLOAD == 64 * 1024 * 1024 and str(log_format.MAX_PAYLOAD) in text
    assert log_format.FRAME_SIZE == 12


def test_a_frame_is_sync_length_and_the_crc_of_length_and_payload() -> None:
    payload = b"any payload"
    frame = log_format.frame(payload)
    sync, length, crc = struct.unpack_from("<4sII", frame)
    assert sync == b"\xa5\x5a\xd7\x1c" and length == len(payload)
    assert crc == zlib.crc32(frame[4:8] + payload) and frame[12:] == payload


def test_damage_in_the_middle_costs_one_record_and_a_damaged_tail_is_torn(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with LogWriter(directory, "t.Record") as log:
        for payload in (b"first", b"second", b"third"):
            log.append(payload)
    path = directory / "00000000000000000000.seg"
    data = bytearray(path.read_bytes())
    second = data.index(b"second")
    data[second] ^= 0xFF  # the second record fails its checksum
    path.write_bytes(bytes(data) + log_format.SYNC + b"\x05\x00")  # and a frame header cut short
    with Segment(path) as segment:
        entries = list(segment.entries())
    kinds = [e.payload if not isinstance(e, Damage) else (e.reason, e.torn) for e in entries]
    assert kinds == [b"first", ("checksum mismatch", False), b"third",
                     ("torn frame header (6 of 12 bytes)", True)]
    middle = entries[1]
    assert isinstance(middle, Damage) and middle.start == second - 12 and middle.end == second + len(b"second")


def test_recovery_cuts_only_the_damaged_tail_and_keeps_its_bytes(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    with LogWriter(directory, "t.Record") as log:
        log.append(b"kept")
    path = directory / "00000000000000000000.seg"
    intact = path.read_bytes()
    path.write_bytes(intact + log_format.SYNC + b"\x05\x00")
    with LogWriter(directory, "t.Record") as log:
        log.append(b"after")
    assert path.read_bytes() == intact + log_format.frame(b"after")
    aside = directory / "damaged" / f"{path.name}.{len(intact)}-{len(intact) + 6}.bin"
    assert aside.read_bytes() == log_format.SYNC + b"\x05\x00"
