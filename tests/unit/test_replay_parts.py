"""What `rvz replay` relies on to report only what reached the log: a tail of a log being written, and a
scores pusher that waits for a rendezvous. Real files and ZeroMQ sockets, no child processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq

from rvz.errors import StreamError
from rvz.log.reader import Tail
from rvz.log.writer import LogWriter
from rvz.wire import streams

pytestmark = pytest.mark.timeout(30)


def test_a_tail_reads_only_what_was_appended_since_it_was_made(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "log", "test.Record", segment_bytes=64, fsync=False) as log:
        for i in range(5):
            log.append(f"old {i}".encode())
        tail = Tail(tmp_path / "log")
        assert list(tail.new_records()) == []
        for i in range(7):  # 64-byte segments: several new segment files
            log.append(f"new {i}".encode())
        assert list(tail.new_records()) == [f"new {i}".encode() for i in range(7)]
        assert list(tail.new_records()) == []
        log.append(b"last")
        assert list(tail.new_records()) == [b"last"]
    assert len(list((tmp_path / "log").glob("*.seg"))) > 2


def test_a_record_still_being_written_is_read_once_complete(tmp_path: Path) -> None:
    with LogWriter(tmp_path / "log", "test.Record", fsync=False) as log:
        log.append(b"first")
    tail = Tail(tmp_path / "log")
    segment = next((tmp_path / "log").glob("*.seg"))
    with LogWriter(tmp_path / "log", "test.Record", fsync=False) as log:
        log.append(b"x" * 100)
        complete = segment.read_bytes()
    segment.write_bytes(complete[:-40])  # as a reader may find it in the middle of the write
    assert list(tail.new_records()) == []
    segment.write_bytes(complete)
    assert list(tail.new_records()) == [b"x" * 100]


def test_a_scores_pusher_can_wait_for_a_rendezvous(tmp_path: Path) -> None:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    endpoint = f"ipc://{tmp_path}/scores.sock"
    try:
        started = time.monotonic()
        with pytest.raises(StreamError, match=f"no rendezvous answered on the scores stream at {endpoint} within "
                                              "0.3 s"):
            streams.score_pusher(ctx, endpoint, 10, handshake_timeout_s=0.3)
        assert time.monotonic() - started < 2
        puller = streams.score_puller(ctx, endpoint, 10)
        pusher = streams.score_pusher(ctx, endpoint, 10, handshake_timeout_s=5)
        pusher.send_multipart([streams.SCORE, b"s"])
        assert puller.poll(5000) and puller.recv_multipart() == [streams.SCORE, b"s"]
        pusher.close(linger=0)
        puller.close(linger=0)
    finally:
        ctx.term()
