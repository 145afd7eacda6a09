from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rvz.errors import CorruptRecord, LogError, LogLockedError
from rvz.log.format import FRAME_SIZE, MAGIC, MAX_PAYLOAD, SYNC
from rvz.log.reader import iter_records, read_record_type
from rvz.log.writer import LogWriter

pytestmark = pytest.mark.timeout(30)

RECORD_TYPE = "rvz.v1.TestRecord"


def payload(i: int) -> bytes:
    # Varying sizes so frames straddle the rotation threshold in different ways.
    return f"record-{i:05d}-".encode() + bytes(i % 37)


def write_log(directory: Path, count: int, segment_bytes: int = 64 * 1024 * 1024) -> list[bytes]:
    payloads = [payload(i) for i in range(count)]
    with LogWriter(directory, RECORD_TYPE, segment_bytes=segment_bytes) as writer:
        seqs = [writer.append(p) for p in payloads]
    assert seqs == list(range(1, count + 1))
    return payloads


def read_payloads(directory: Path, *, strict: bool = True) -> list[bytes]:
    return [r.payload for r in iter_records(directory, strict=strict)]


def wait_durable(writer: LogWriter, seq: int) -> None:
    reached = threading.Event()
    writer.add_durable_listener(lambda durable: reached.set() if durable >= seq else None)
    # The commit may have happened before the listener was added.
    assert writer.durable_seq >= seq or reached.wait(10)


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_round_trip_across_segments(tmp_path: Path) -> None:
    payloads = write_log(tmp_path / "log", 300, segment_bytes=512)
    assert read_payloads(tmp_path / "log") == payloads
    assert read_record_type(tmp_path / "log") == RECORD_TYPE
    files = segment_files(tmp_path / "log")
    assert len(files) > 5
    assert [f.name for f in files] == [f"{n:020d}.seg" for n in range(len(files))]
    assert all(f.read_bytes().startswith(MAGIC + SYNC + bytes([len(RECORD_TYPE)])) for f in files)


def test_records_carry_segment_and_offset(tmp_path: Path) -> None:
    write_log(tmp_path, 50, segment_bytes=256)
    for record in iter_records(tmp_path):
        with open(record.segment, "rb") as f:
            f.seek(record.offset + FRAME_SIZE)
            assert f.read(len(record.payload)) == record.payload


def test_reopen_appends_after_existing_records(tmp_path: Path) -> None:
    first = write_log(tmp_path, 20, segment_bytes=256)
    with LogWriter(tmp_path, RECORD_TYPE, segment_bytes=256) as writer:
        assert writer.append(b"more") == 1  # sequence numbers are per writer instance
    assert read_payloads(tmp_path) == [*first, b"more"]


def test_durable_seq_reaches_last_and_listeners_are_called(tmp_path: Path) -> None:
    seen: list[int] = []
    with LogWriter(tmp_path, RECORD_TYPE, segment_bytes=1024) as writer:
        writer.add_durable_listener(seen.append)
        last = 0
        for i in range(200):
            last = writer.append(payload(i))
        wait_durable(writer, last)
        assert writer.durable_seq == last
        assert writer.fsync_count >= 1
        assert writer.last_fsync_seconds >= 0.0
        assert writer.bytes_written == sum(f.stat().st_size for f in segment_files(tmp_path))
    assert seen == sorted(seen)
    assert seen[-1] == last


def test_stop_makes_everything_durable(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, RECORD_TYPE, segment_bytes=128)
    writer.start()
    last = [writer.append(payload(i)) for i in range(100)][-1]
    writer.stop()
    assert writer.durable_seq == last


def test_sync_delay_gathers_appends_into_fewer_syncs(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "delayed", RECORD_TYPE, sync_delay_s=0.05) as delayed, \
            LogWriter(tmp_path / "prompt", RECORD_TYPE) as prompt:
        started = time.monotonic()
        for writer in (delayed, prompt):
            last = 0
            for i in range(20):
                last = writer.append(payload(i))
                time.sleep(0.005)  # appends spread over ~100 ms, as a loop's passes would be
            wait_durable(writer, last)
        assert time.monotonic() - started >= 0.05  # the delayed log waited before its first sync
        # The prompt log syncs as soon as it is idle; the delayed one at most every 50 ms.
        assert delayed.fsync_count <= 4 < prompt.fsync_count


def test_stop_cuts_the_sync_delay_short(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, RECORD_TYPE, sync_delay_s=30.0)
    writer.start()
    last = writer.append(payload(1))
    started = time.monotonic()
    writer.stop()
    assert time.monotonic() - started < 5.0
    assert writer.durable_seq == last


def test_fsync_false(tmp_path: Path) -> None:
    with LogWriter(tmp_path, RECORD_TYPE, segment_bytes=256, fsync=False) as writer:
        last = [writer.append(payload(i)) for i in range(100)][-1]
        wait_durable(writer, last)
        assert writer.fsync_count == 0
    assert read_payloads(tmp_path) == [payload(i) for i in range(100)]


def _cut_mid_payload(path: Path, offset: int) -> None:
    os.truncate(path, offset + FRAME_SIZE + 3)


def _cut_mid_frame_header(path: Path, offset: int) -> None:
    os.truncate(path, offset + 5)


def _flip_payload_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset + FRAME_SIZE + 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _append_garbage(path: Path, offset: int) -> None:
    with open(path, "ab") as f:
        f.write(b"\x07garbage")


@pytest.mark.parametrize(
    ("damage", "kept"),
    [
        (_cut_mid_payload, 29),
        (_cut_mid_frame_header, 29),
        (_flip_payload_byte, 29),
        (_append_garbage, 30),
    ],
)
def test_recovery_truncates_torn_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path, int], None], kept: int
) -> None:
    payloads = write_log(tmp_path, 30, segment_bytes=200)
    last = list(iter_records(tmp_path))[-1]
    damage(Path(last.segment), last.offset)
    good_size = last.offset if kept == 29 else last.offset + FRAME_SIZE + len(last.payload)

    with (
        caplog.at_level(logging.WARNING, logger="rvz.log"),
        LogWriter(tmp_path, RECORD_TYPE, segment_bytes=200) as writer,
    ):
        assert os.path.getsize(last.segment) == good_size
        writer.append(b"after recovery")
    assert any("cut" in r.getMessage() and last.segment in r.getMessage() for r in caplog.records)
    assert read_payloads(tmp_path) == [*payloads[:kept], b"after recovery"]


def test_recovery_rewrites_torn_segment_header(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    payloads = write_log(tmp_path, 30, segment_bytes=200)
    torn = tmp_path / f"{len(segment_files(tmp_path)):020d}.seg"
    torn.write_bytes(MAGIC[:5])
    with (
        caplog.at_level(logging.WARNING, logger="rvz.log"),
        LogWriter(tmp_path, RECORD_TYPE, segment_bytes=200) as writer,
    ):
        writer.append(b"after recovery")
    assert any(str(torn) in r.getMessage() for r in caplog.records)
    assert read_payloads(tmp_path) == [*payloads, b"after recovery"]
    assert read_record_type(tmp_path) == RECORD_TYPE


def test_reader_strict_and_lenient_on_corruption(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    payloads = write_log(tmp_path, 60, segment_bytes=300)
    records = list(iter_records(tmp_path))
    first_segment = [r for r in records if r.segment == records[0].segment]
    assert len(first_segment) >= 3
    bad = first_segment[1]
    _flip_payload_byte(Path(bad.segment), bad.offset)

    with pytest.raises(CorruptRecord, match=rf"{re.escape(bad.segment)}.*offset {bad.offset}\b"):
        list(iter_records(tmp_path, strict=True))
    with caplog.at_level(logging.WARNING, logger="rvz.log"):
        lenient = read_payloads(tmp_path, strict=False)
    # Only the damaged record is skipped: the reader finds the next one by its sync marker.
    assert lenient == [payloads[0], *payloads[2:]]
    assert any(bad.segment in r.getMessage() for r in caplog.records)


def test_second_writer_is_locked_out(tmp_path: Path) -> None:
    locked = rf"{re.escape(str(tmp_path))}.*pid {os.getpid()}\)"
    with LogWriter(tmp_path, RECORD_TYPE), pytest.raises(LogLockedError, match=locked):
        LogWriter(tmp_path, RECORD_TYPE).start()
    with LogWriter(tmp_path, RECORD_TYPE) as writer:  # the lock is released by stop
        writer.append(b"x")


def test_record_type_mismatch_is_refused(tmp_path: Path) -> None:
    write_log(tmp_path, 3)
    with pytest.raises(LogError, match=r"rvz\.v1\.TestRecord records, not rvz\.v1\.Other"):
        LogWriter(tmp_path, "rvz.v1.Other").start()
    with LogWriter(tmp_path, RECORD_TYPE) as writer:  # the failed start released the lock
        writer.append(b"x")


def test_lifecycle(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path, RECORD_TYPE)
    with pytest.raises(LogError, match="not started"):
        writer.append(b"early")
    writer.start()
    writer.start()
    writer.append(b"x")
    writer.stop()
    writer.stop()
    with pytest.raises(LogError, match=f"log {re.escape(str(tmp_path))} is closed"):
        writer.append(b"late")
    assert read_payloads(tmp_path) == [b"x"]


def test_concurrent_appends_read_back_once(tmp_path: Path) -> None:
    per_thread = 500
    seqs: list[list[int]] = [[] for _ in range(4)]
    with LogWriter(tmp_path, RECORD_TYPE, segment_bytes=4096) as writer:

        def run(t: int) -> None:
            seqs[t].extend(writer.append(f"{t}:{i}".encode()) for i in range(per_thread))

        threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(s for ss in seqs for s in ss) == list(range(1, 4 * per_thread + 1))
    read = [p.decode() for p in read_payloads(tmp_path)]
    assert sorted(read) == sorted(f"{t}:{i}" for t in range(4) for i in range(per_thread))
    for t in range(4):
        assert [r for r in read if r.startswith(f"{t}:")] == [f"{t}:{i}" for i in range(per_thread)]


def test_payload_too_large(tmp_path: Path) -> None:
    with LogWriter(tmp_path, RECORD_TYPE) as writer:
        with pytest.raises(ValueError, match="exceeds"):
            writer.append(bytes(MAX_PAYLOAD + 1))
        assert writer.append(b"fine") == 1


def test_read_record_type_needs_a_log(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"no NNN\.seg segment files"):
        read_record_type(tmp_path)
    with pytest.raises(LogError, match="does not exist"):
        read_record_type(tmp_path / "missing")




