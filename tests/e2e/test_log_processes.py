from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rvz.log.reader import iter_records
from rvz.log.writer import LogWriter

pytestmark = pytest.mark.timeout(30)

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
