"""Damaged logs: every intact record is kept, damage is reported, only a damaged tail is ever cut."""

from __future__ import annotations

import logging
import re
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rvz.errors import LogError
from rvz.log.check import check_log, find_logs
from rvz.log.format import DAMAGED_DIR, FRAME_SIZE, MAGIC_V1, Damage, Segment
from rvz.log.reader import iter_records, read_record_type
from rvz.log.writer import LogWriter
from small_disk import fill, small_disk

pytestmark = pytest.mark.timeout(60)

RECORD_TYPE = "rvz.v1.RequestEnvelope"


def write(directory: Path, payloads: list[bytes], segment_bytes: int = 64 * 1024 * 1024) -> None:
    with LogWriter(directory, RECORD_TYPE, segment_bytes=segment_bytes) as writer:
        writer.append_many(payloads)


def read(directory: Path) -> tuple[list[bytes], list[Damage]]:
    damage: list[Damage] = []
    return [r.payload for r in iter_records(directory, on_damage=damage.append)], damage


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x5A
    path.write_bytes(bytes(data))


def test_one_flipped_byte_mid_segment_costs_one_record_across_a_restart(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    # As measured in the issue: a request log with one byte flipped in the middle of its segment. Before,
    # the writer's recovery cut everything after the bad record (611 intact, answered requests).
    payloads = [f"request-{i:05d}".encode() * 5 for i in range(1000)]
    write(tmp_path, payloads)
    records = list(iter_records(tmp_path))
    bad = records[388]
    flip(Path(bad.segment), bad.offset + FRAME_SIZE + 7)
    with caplog.at_level(logging.WARNING, logger="rvz.log"), LogWriter(tmp_path, RECORD_TYPE) as writer:
        writer.append(b"after the restart")
    kept, damage = read(tmp_path)
    assert kept == [*payloads[:388], *payloads[389:], b"after the restart"]
    assert len(payloads[389:]) == 611
    assert [(d.start, d.end, d.torn) for d in damage] == [(bad.offset, records[389].offset, False)]
    assert not (tmp_path / DAMAGED_DIR).exists()  # nothing was cut
    assert any("kept" in r.getMessage() and "readers skip it" in r.getMessage() for r in caplog.records)


def test_a_damaged_tail_is_cut_and_its_bytes_kept_aside(tmp_path: Path) -> None:
    payloads = [b"p%03d" % i for i in range(50)]
    write(tmp_path, payloads)
    segment = next(tmp_path.glob("*.seg"))
    intact_size = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(b"\xa5\x5a\xd7\x1c\x10\x00\x00\x00half a fra")  # a frame the crash cut short
    with LogWriter(tmp_path, RECORD_TYPE) as writer:
        writer.append(b"next")
    assert read(tmp_path) == ([*payloads, b"next"], [])
    (aside,) = (tmp_path / DAMAGED_DIR).iterdir()
    assert aside.name == f"{segment.name}.{intact_size}-{intact_size + 18}.bin"
    assert aside.read_bytes().endswith(b"half a fra")


def test_a_damaged_magic_keeps_the_segment_readable(tmp_path: Path) -> None:
    payloads = [b"x%02d" % i for i in range(30)]
    write(tmp_path, payloads, segment_bytes=200)
    first = sorted(tmp_path.glob("*.seg"))[0]
    flip(first, 2)
    kept, damage = read(tmp_path)
    assert kept == payloads
    assert [(d.segment, d.start, d.end) for d in damage] == [(str(first), 0, 8)]
    assert read_record_type(tmp_path) == RECORD_TYPE


def v1_segment(payloads: list[bytes]) -> bytes:
    def frame(payload: bytes) -> bytes:
        return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload

    return MAGIC_V1 + frame(RECORD_TYPE.encode()) + b"".join(frame(p) for p in payloads)


def test_format_1_segments_stay_readable_and_are_never_appended_to(tmp_path: Path) -> None:
    old = [b"old-%d" % i for i in range(10)]
    v1 = tmp_path / f"{0:020d}.seg"
    v1.write_bytes(v1_segment(old))
    before = v1.read_bytes()
    with LogWriter(tmp_path, RECORD_TYPE) as writer:
        writer.append(b"new")
    assert v1.read_bytes() == before
    assert read(tmp_path) == ([*old, b"new"], [])
    with Segment(v1) as segment, Segment(tmp_path / f"{1:020d}.seg") as new:
        assert (segment.version, new.version) == (1, 2)


def test_format_1_damage_skips_the_rest_of_that_segment_only(tmp_path: Path) -> None:
    old = [b"old-%d" % i for i in range(10)]
    v1 = tmp_path / f"{0:020d}.seg"
    v1.write_bytes(v1_segment(old))
    with LogWriter(tmp_path, RECORD_TYPE) as writer:
        writer.append(b"new")
    flip(v1, len(v1_segment(old[:3])) + 9)  # inside old[3]'s payload
    kept, damage = read(tmp_path)
    assert kept == [*old[:3], b"new"]
    assert len(damage) == 1 and "format-1" in damage[0].reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads=st.lists(st.binary(max_size=60), min_size=1, max_size=40),
       flips=st.lists(st.integers(min_value=0), max_size=6), cut=st.integers(min_value=0, max_value=100),
       segment_bytes=st.sampled_from([120, 400, 64 * 1024]))
def test_any_damage_costs_only_the_records_it_touches(tmp_path_factory: pytest.TempPathFactory,
                                                      payloads: list[bytes], flips: list[int], cut: int,
                                                      segment_bytes: int) -> None:
    directory = tmp_path_factory.mktemp("fuzz")
    write(directory, payloads, segment_bytes)
    records = list(iter_records(directory, strict=True))
    touched: dict[str, set[int]] = {}
    segments = sorted(directory.glob("*.seg"))
    for position in flips:
        segment = segments[position % len(segments)]
        offset = (position // len(segments)) % segment.stat().st_size
        flip(segment, offset)
        touched.setdefault(str(segment), set()).add(offset)
    last = segments[-1]
    end = max(0, last.stat().st_size - cut)
    last.write_bytes(last.read_bytes()[:end])
    touched.setdefault(str(last), set()).update(range(end, end + cut))

    kept, _ = read(directory)  # never raises, whatever the damage
    untouched = [r.payload for r in records
                 if not touched.get(r.segment, set()) & set(range(r.offset, r.offset + FRAME_SIZE + len(r.payload)))]
    assert _is_subsequence(untouched, kept)
    assert _is_subsequence(kept, [r.payload for r in records])


def _is_subsequence(needles: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(needle == item for item in it) for needle in needles)


def test_a_full_disk_refuses_appends_precisely_and_writing_resumes_when_space_returns(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk, LogWriter(disk / "requests", RECORD_TYPE) as writer:
        writer.append(b"before")
        filler = fill(disk)
        with pytest.raises(LogError, match=rf"^no space left on {re.escape(str(disk / 'requests'))}$"):
            writer.append(b"x" * 8192)
        assert writer.failed_appends == 1
        filler.unlink()
        writer.append(b"after")
        writer.stop()
        assert writer.durable_seq == 2
        assert read(disk / "requests") == ([b"before", b"after"], [])


def test_check_finds_every_log_of_a_data_directory_and_reports_damage(tmp_path: Path) -> None:
    write(tmp_path / "requests", [b"r%d" % i for i in range(20)])
    write(tmp_path / "decoy" / "default" / "archive", [b"a"])
    bad = next((tmp_path / "requests").glob("*.seg"))
    flip(bad, bad.stat().st_size - 3)  # inside the last record: a damaged tail
    logs = find_logs(tmp_path)
    assert logs == [tmp_path / "decoy" / "default" / "archive", tmp_path / "requests"]
    archive, requests = (check_log(log) for log in logs)
    assert (archive.records, archive.damage) == (1, [])
    assert requests.records == 19 and [d.torn for d in requests.damage] == [True]
    last_frame = 12 + len(b"r19")  # the damaged tail is the whole last frame
    assert requests.summary().endswith(f"19 intact rvz.v1.RequestEnvelope records in 1 segments, "
                                       f"1 damaged ranges ({last_frame} bytes)")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LogError, match="holds no rvz log"):
        find_logs(tmp_path / "empty")
