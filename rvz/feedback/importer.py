"""`rvz feedback import FILE`: truths from a CSV or JSON-lines file of ``request_id,truth``.

CSV: two columns, request id then truth, with an optional header row naming them (``request_id,truth``
in any order when present). A truth cell is read as JSON when it is JSON (``151.2``, ``true``, ``2``,
``{"label": "a"}``, ``"quoted"``) and as a plain string otherwise (``setosa``). JSON lines: one object
``{"request_id": ..., "truth": ...}`` per line. The whole file is checked before anything is recorded,
so a bad line records nothing and names itself (``FILE:LINE: ...``).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rvz.config import LogConfig
from rvz.errors import EncodeError, FeedbackRefused, LogLockedError
from rvz.feedback.log import IMPORT_BATCH, check_truth, open_feedback_log, records
from rvz.log.writer import LogWriter
from rvz.wire.codec import python_to_value
from rvz.wire.proto import scoring_pb2

if TYPE_CHECKING:
    from rvz.client import Client

FileFormat = Literal["csv", "jsonl"]
# Sends one batch of checked truths; returns how many were recorded.
Send = Callable[[list[scoring_pb2.Truth]], int]
_JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def file_format(path: Path, given: FileFormat | None) -> FileFormat:
    """``given``, else the suffix's (.csv; .jsonl, .ndjson, .json), else the first character's."""
    if given is not None:
        return given
    if path.suffix.lower() == ".csv":
        return "csv"
    if path.suffix.lower() in _JSONL_SUFFIXES:
        return "jsonl"
    with open(path, encoding="utf-8") as f:
        return "jsonl" if f.read(4096).lstrip().startswith("{") else "csv"


def read_truths(path: Path, fmt: FileFormat) -> Iterator[tuple[int, scoring_pb2.Truth]]:
    """(line number, truth) of every row, checked; raises ``FeedbackRefused`` naming the first bad line."""
    rows = _csv_rows(path) if fmt == "csv" else _jsonl_rows(path)
    for line, request_id, value in rows:
        truth = scoring_pb2.Truth(request_id=request_id)
        try:
            python_to_value(value, truth.truth, "truth")
        except EncodeError as e:
            raise FeedbackRefused(f"{path}:{line}: {e}") from None
        problem = check_truth(truth)
        if problem:
            raise FeedbackRefused(f"{path}:{line}: {problem}")
        yield line, truth


def import_file(path: Path, fmt: FileFormat, send: Send) -> int:
    """Check every row of ``path``, then send them in batches; returns how many were recorded.

    Raises ``FeedbackRefused`` (nothing sent) for a bad row, ``OSError`` if the file cannot be read, and
    whatever ``send`` raises (the batches before it were recorded)."""
    for _ in read_truths(path, fmt):
        pass
    recorded = 0
    batch: list[scoring_pb2.Truth] = []
    for _, truth in read_truths(path, fmt):
        batch.append(truth)
        if len(batch) == IMPORT_BATCH:
            recorded += send(batch)
            batch = []
    if batch:
        recorded += send(batch)
    return recorded


def _csv_rows(path: Path) -> Iterator[tuple[int, str, Any]]:
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        columns = (0, 1)
        for row in reader:
            line = reader.line_num
            if not row or not "".join(row).strip():
                continue
            if line == 1 and {"request_id", "truth"} <= {cell.strip() for cell in row}:
                names = [cell.strip() for cell in row]
                columns = (names.index("request_id"), names.index("truth"))
                continue
            if len(row) <= max(columns):
                raise FeedbackRefused(f"{path}:{line}: expected request_id,truth; got {len(row)} column(s)")
            yield line, row[columns[0]].strip(), _cell(row[columns[1]], path, line)


def _cell(text: str, path: Path, line: int) -> Any:
    text = text.strip()
    if not text:
        raise FeedbackRefused(f"{path}:{line}: the truth is empty")
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):
        raise FeedbackRefused(f"{path}:{line}: the truth {text!r} is not a finite number")
    return value


def _jsonl_rows(path: Path) -> Iterator[tuple[int, str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as e:
                raise FeedbackRefused(f"{path}:{line}: not JSON: {e}") from None
            if not isinstance(row, dict) or not isinstance(row.get("request_id"), str) or "truth" not in row:
                raise FeedbackRefused(f'{path}:{line}: expected {{"request_id": "...", "truth": ...}}')
            yield line, row["request_id"], row["truth"]


@dataclass(frozen=True)
class Imported:
    recorded: int
    through: str


def run_import(path: Path, fmt: FileFormat | None, log_config: LogConfig, connect: Callable[[], Client]) -> Imported:
    """Record the truths of ``path``: into DATA_DIR/feedback itself when no frontend holds it, else through
    the frontend ``connect`` reaches (which writes that log). Raises ``FeedbackRefused`` (nothing
    recorded), ``CallFailed``, ``LogError`` or ``OSError``."""
    fmt = file_format(path, fmt)
    log = open_feedback_log(log_config)
    try:
        log.start()
    except LogLockedError:
        with connect() as client:
            recorded = import_file(path, fmt, lambda batch: client.feedback_many(
                (truth.request_id, truth.truth) for truth in batch))
            return Imported(recorded, f"the frontend at {client.target}")
    try:
        recorded = import_file(path, fmt, lambda batch: _append(log, batch))
    finally:
        log.stop()
    return Imported(recorded, f"the feedback log {log.directory}")


def _append(log: LogWriter, batch: list[scoring_pb2.Truth]) -> int:
    log.append_many(records(batch, time.time_ns()))
    return len(batch)
