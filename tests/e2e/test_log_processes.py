from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import Deployment
from rvz.log.reader import iter_records
from rvz.log.writer import LogWriter
from rvz.wire.proto import envelope_pb2

pytestmark = pytest.mark.timeout(60)

RECORD_TYPE = "rvz.v1.TestRecord"


def payload(i: int) -> bytes:
    # Varying sizes so frames straddle the rotation threshold in different ways.
    return f"record-{i:05d}-".encode() + bytes(i % 37)




def read_payloads(directory: Path, *, strict: bool = True) -> list[bytes]:
    return [r.payload for r in iter_records(directory, strict=strict)]
















































CRASHING_WRITER = """
import os, sys
from rvz.log.writer import LogWriter
writer = LogWriter(sys.argv[1], "rvz.v1.TestRecord", segment_bytes=1000)
writer.start()
for i in range(500):
    writer.append(b"crash-%d" % i)
os._exit(0)  # no stop(): no final sync, no unlock; the kernel drops the flock
"""


def test_appended_records_survive_a_crash_of_the_writer(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path)], env=env, check=True, timeout=20)
    expected = [b"crash-%d" % i for i in range(500)]
    assert read_payloads(tmp_path) == expected
    with LogWriter(tmp_path, RECORD_TYPE, segment_bytes=1000) as writer:
        writer.append(b"next")
    assert read_payloads(tmp_path) == [*expected, b"next"]


def flip_middle_record(directory: Path) -> bytes:
    """Flip one byte inside the payload of the log's middle record; returns that record's payload."""
    records = list(iter_records(directory))
    middle = records[len(records) // 2]
    segment = Path(middle.segment)
    data = bytearray(segment.read_bytes())
    data[middle.offset + 12 + len(middle.payload) // 2] ^= 0x40
    segment.write_bytes(bytes(data))
    return middle.payload


def rvz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rvz", *args], capture_output=True, text=True, timeout=60)


def test_log_check_and_cat_read_around_damage_and_say_where_it_was(tmp_path: Path) -> None:
    log = tmp_path / "requests"
    with LogWriter(log, "rvz.v1.RequestEnvelope") as writer:
        for i in range(100):
            writer.append(envelope_pb2.RequestEnvelope(request_id=f"r{i:03d}", use_case="u").SerializeToString())
    clean = rvz("log", "check", str(tmp_path))
    assert clean.returncode == 0
    assert "100 intact rvz.v1.RequestEnvelope records in 1 segments, no damage" in clean.stdout
    lost = envelope_pb2.RequestEnvelope.FromString(flip_middle_record(log)).request_id
    checked = rvz("log", "check", str(tmp_path))
    assert checked.returncode == 1
    assert "99 intact" in checked.stdout and "damaged bytes at offsets" in checked.stdout
    cat = rvz("log", "cat", str(log))
    assert cat.returncode == 0
    ids = [json.loads(line)["request_id"] for line in cat.stdout.splitlines()]
    assert len(ids) == 99 and lost not in ids
    assert cat.stderr.startswith("rvz: skipped ") and "checksum mismatch" in cat.stderr


def test_a_restarted_frontend_keeps_every_intact_record_after_a_damaged_one(deployment: Callable[..., Deployment]
                                                                            ) -> None:
    # Measured before: one flipped byte in the middle of a request-log segment; on restart the frontend cut the
    # 611 intact records after the bad one (answered requests), gone for good.
    d = deployment().start([("champ", "rvz_test_models:echo", "champion")])
    answered = [d.score({"x": x}).request_id for x in range(60)]
    d.proc("frontend").stop()
    lost = envelope_pb2.RequestEnvelope.FromString(flip_middle_record(d.root / "data" / "requests")).request_id
    d.procs.remove(d.proc("frontend"))
    d.channel.close()
    d._channel = None  # the new frontend listens on another port
    d.start_frontend()
    d.wait_serving()
    answered.append(d.score({"x": 1}).request_id)
    kept = [r.request_id for r in d.records("requests")]
    assert kept == [rid for rid in answered if rid != lost]
    assert not (d.root / "data" / "requests" / "damaged").exists()
