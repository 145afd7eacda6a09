"""The feedback log (DATA_DIR/feedback, records ``rvz.v1.FeedbackRecord``; DATA_DIR/feedback.NAME of a
frontend named NAME) and the checks on each truth.

A truth names a request by the request id its ScoreResponse carried. The frontend cannot tell whether
some request log holds the id (that needs an index of every request ever archived), so a well-formed
id is kept and the readers (`rvz report`, `rvz log export`) count truths that match no request as
unmatched. A malformed id, a missing or null truth and an oversized one are refused (``check_truth``).
Several truths for one request: the last one recorded wins (of several frontends' logs: the last received).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from google.protobuf import struct_pb2

from rvz.config import LogConfig
from rvz.log.dirs import read_by_time
from rvz.log.naming import log_name
from rvz.log.writer import LogWriter
from rvz.wire.ids import id_time_ms
from rvz.wire.proto import envelope_pb2, scoring_pb2

LOG_NAME = "feedback"
RECORD_TYPE = "rvz.v1.FeedbackRecord"
# A truth is a label or a number, or a small dict holding one: anything bigger is a mistake.
MAX_TRUTH_BYTES = 64 * 1024
# Truths per RecordMany call; `rvz feedback import` sends them in batches of IMPORT_BATCH.
MAX_BATCH = 10_000
IMPORT_BATCH = 1_000
# A request id's time may be this far ahead of this host's clock (another frontend's clock).
CLOCK_SKEW_MS = 60_000
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def open_feedback_log(config: LogConfig, frontend: str = "") -> LogWriter:
    """The feedback log of ``config.dir`` written by the frontend named ``frontend`` ("" for the unnamed one,
    and for `rvz feedback import`), not started."""
    return LogWriter(Path(config.dir) / log_name(LOG_NAME, frontend), RECORD_TYPE,
                     segment_bytes=config.segment_mb * 1024 * 1024, fsync=config.fsync)


def check_truth(truth: scoring_pb2.Truth, now_ms: int | None = None) -> str | None:
    """What is wrong with ``truth`` (a sentence saying what to fix), or None when it can be recorded."""
    request_id = truth.request_id
    if not _REQUEST_ID.fullmatch(request_id):
        return (f"request_id {request_id[:80]!r} is not an rvz request id: give the 32 hex digits of "
                "ScoreResponse.request_id")
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if id_time_ms(request_id) > now_ms + CLOCK_SKEW_MS:
        return f"request_id {request_id} is from the future: it was not made by an rvz frontend"
    kind = truth.truth.WhichOneof("kind") if truth.HasField("truth") else None
    if kind in (None, "null_value"):
        return f"the truth of request {request_id} is missing: give a label, a number or a dict holding one"
    size = truth.truth.ByteSize()
    if size > MAX_TRUTH_BYTES:
        return f"the truth of request {request_id} is {size} bytes: at most {MAX_TRUTH_BYTES} bytes are kept"
    return None


def records(truths: Iterable[scoring_pb2.Truth], received_ns: int) -> list[bytes]:
    """The feedback-log payloads of ``truths`` (already checked)."""
    return [envelope_pb2.FeedbackRecord(request_id=t.request_id, truth=t.truth,
                                        received_unix_ns=received_ns).SerializeToString() for t in truths]


def iter_feedback(data_dir: str | os.PathLike[str]) -> Iterator[envelope_pb2.FeedbackRecord]:
    """Every record of every frontend's feedback log (DATA_DIR/feedback and each DATA_DIR/feedback.NAME),
    merged by the time each was received, each log in its own order (``rvz.log.dirs.read_by_time``); nothing
    when no truth was ever recorded."""
    for _, record in read_by_time(Path(data_dir), LOG_NAME, envelope_pb2.FeedbackRecord.FromString):
        yield record


def read_truths(data_dir: str | os.PathLike[str]) -> dict[str, struct_pb2.Value]:
    """The truth of each request id that has one: the last one recorded wins."""
    return {record.request_id: record.truth for record in iter_feedback(data_dir)}
