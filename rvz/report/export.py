"""`rvz log export` (the click command is in ``rvz.cli.logs``): the logs joined into one table per use
case, written as Parquet or CSV with pyarrow, for pandas, DuckDB, Spark and the rest.

One row per request in the request logs (of the use case, in the time asked for): every frontend's
(``rvz.log.dirs``), merged by the time each was received, each log in its own order. The results and
scores are every rendezvous's (DATA/results and each DATA/results.i, scores likewise), merged by time:
a request's are those of the one rendezvous that decided it.

- ``request_id``, ``received``, ``deadline`` (UTC timestamps), ``features`` (JSON);
- the answer: ``outcome`` (answered | default | timeout | failed), ``rule``, ``status_code``,
  ``answered_model``, ``answered_version``, ``answered_role``, ``answer`` (JSON), ``elapsed_ms``,
  ``policy_version`` (null when no result was logged);
- the truth (every frontend's feedback log, the last one received winning): ``truth`` (JSON), ``truth_label``,
  ``truth_number``;
- per model ``M`` (``name:version``, `` (replayed)`` for `rvz replay`'s): ``M/output`` (JSON),
  ``M/label`` and ``M/number`` (read as the use case declares, see ``OutputSpec``), ``M/latency_ms``
  (arrival at the rendezvous; compute time for replayed models), ``M/role``, ``M/error`` (null when
  it succeeded), ``M/after_answer``. A model's last score of a request counts.

The table of a use case is built in memory (a few hundred bytes per request and model) before it is
written; export a time range at a time (--since, --until) when that is too much.
"""

from __future__ import annotations

import json
import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from rvz.compare.outputs import OutputSpec
from rvz.feedback.log import iter_feedback
from rvz.log.dirs import read_by_time
from rvz.rendezvous.outcome import outcome_of
from rvz.report.data import Filter
from rvz.wire.codec import struct_to_dict, value_to_python
from rvz.wire.proto import envelope_pb2, scoring_pb2

ExportFormat = Literal["parquet", "csv"]
ANSWER_COLUMNS = ("outcome", "rule", "status_code", "answered_model", "answered_version", "answered_role", "answer",
                  "elapsed_ms", "policy_version")
MODEL_FIELDS = ("output", "label", "number", "latency_ms", "role", "error", "after_answer")


@dataclass(frozen=True)
class Exported:
    use_case: str
    path: Path
    rows: int
    models: int


@dataclass
class _UseCase:
    """The columns of one use case's table while the logs stream past."""

    spec: OutputSpec
    ids: list[str] = field(default_factory=list)
    received: array[int] = field(default_factory=lambda: array("q"))
    deadline: array[int] = field(default_factory=lambda: array("q"))
    features: list[str] = field(default_factory=list)
    columns: dict[str, list[Any]] = field(default_factory=dict)
    models: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        if name not in self.columns:
            self.columns[name] = [None] * len(self.ids)
        return self.columns[name]

    def model(self, name: str) -> dict[str, list[Any]]:
        if name not in self.models:
            self.models[name] = {f: [None] * len(self.ids) for f in MODEL_FIELDS}
        return self.models[name]


class _Join:
    def __init__(self, keep: Filter, spec_of: Callable[[str], OutputSpec]) -> None:
        self.keep, self.spec_of = keep, spec_of
        self.use_cases: dict[str, _UseCase] = {}
        self.rows: dict[str, tuple[_UseCase, int]] = {}

    def requests(self, data_dir: Path) -> None:
        for _, request in read_by_time(data_dir, "requests", envelope_pb2.RequestEnvelope.FromString):
            if request.request_id in self.rows or not self.keep.keeps(request.use_case, request.received_unix_ns):
                continue
            table = self.use_cases.get(request.use_case)
            if table is None:
                table = self.use_cases[request.use_case] = _UseCase(self.spec_of(request.use_case))
            self.rows[request.request_id] = (table, len(table.ids))
            table.ids.append(request.request_id)
            table.received.append(request.received_unix_ns)
            table.deadline.append(request.deadline_unix_ns)
            table.features.append(_features(request.request))

    def results(self, data_dir: Path) -> None:
        for _, result in read_by_time(data_dir, "results", envelope_pb2.ResultEnvelope.FromString):
            found = self.rows.get(result.request_id)
            if found is None:
                continue
            table, row = found
            answer = scoring_pb2.ScoreResponse.FromString(result.response).output if result.response else None
            values = (outcome_of(result).label, result.rule, result.status_code, result.model_name or None,
                      result.model_version or None, result.role or None,
                      _json(answer) if answer is not None else None, result.elapsed_ms, result.policy_version)
            for name, value in zip(ANSWER_COLUMNS, values, strict=True):
                table.column(name)[row] = value

    def truths(self, data_dir: Path) -> None:
        for record in iter_feedback(data_dir):
            found = self.rows.get(record.request_id)
            if found is None:
                continue
            table, row = found
            label, number = table.spec.read_truth(record.truth)
            table.column("truth")[row] = _json(record.truth)
            table.column("truth_label")[row] = label
            table.column("truth_number")[row] = number

    def scores(self, data_dir: Path) -> None:
        for _, record in read_by_time(data_dir, "scores", envelope_pb2.ScoreRecord.FromString):
            score = record.score
            found = self.rows.get(score.request_id)
            if found is None:
                continue
            table, row = found
            name = f"{score.model_name}:{score.model_version}" + (" (replayed)" if score.replayed else "")
            columns = table.model(name)
            failed = bool(score.error or score.error_type)
            label, number = (None, None) if failed else table.spec.read(score.output)
            latency_ns = (score.finished_unix_ns - score.started_unix_ns if score.replayed
                          else record.received_unix_ns - table.received[row])
            values = (None if failed else _json(score.output), label, number, latency_ns / 1e6, score.role,
                      f"{score.error_type}: {score.error}" if failed else None, record.late)
            for name_, value in zip(MODEL_FIELDS, values, strict=True):
                columns[name_][row] = value


def export(data_dir: str | os.PathLike[str], out: Path, fmt: ExportFormat, keep: Filter,
           spec_of: Callable[[str], OutputSpec]) -> list[Exported]:
    """Write OUT/USE_CASE.FORMAT for each use case with requests in range; returns what was written.

    Raises ``LogError`` if a log cannot be read and ``OSError`` if OUT cannot be written."""
    root = Path(data_dir)
    join = _Join(keep, spec_of)
    join.requests(root)
    join.results(root)
    join.truths(root)
    join.scores(root)
    out.mkdir(parents=True, exist_ok=True)
    return [_write(name, table, out / f"{name}.{fmt}", fmt) for name, table in sorted(join.use_cases.items())]


def _write(use_case: str, table: _UseCase, path: Path, fmt: ExportFormat) -> Exported:
    import pyarrow as pa

    utc = pa.timestamp("ns", tz="UTC")
    columns: dict[str, Any] = {
        "request_id": pa.array(table.ids, pa.string()),
        "received": pa.array(table.received, pa.int64()).cast(utc),
        "deadline": pa.array(table.deadline, pa.int64()).cast(utc),
        "features": pa.array(table.features, pa.string()),
    }
    types = {"status_code": pa.int32(), "elapsed_ms": pa.float64(), "policy_version": pa.int32(),
             "truth_number": pa.float64(), "number": pa.float64(), "latency_ms": pa.float64(),
             "after_answer": pa.bool_()}
    for name in (*ANSWER_COLUMNS, "truth", "truth_label", "truth_number"):
        columns[name] = pa.array(table.column(name), types.get(name, pa.string()))
    for model, fields in table.models.items():
        for name in MODEL_FIELDS:
            columns[f"{model}/{name}"] = pa.array(fields[name], types.get(name, pa.string()))
    arrow = pa.table(columns)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(arrow, path)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(arrow, path)
    return Exported(use_case, path, arrow.num_rows, len(table.models))


def _json(value: struct_pb2.Value) -> str:
    return json.dumps(value_to_python(value), separators=(",", ":"))


def _features(request: bytes) -> str:
    try:
        features = scoring_pb2.ScoreRequest.FromString(request).features
    except DecodeError:  # the frontend checked it before logging it: only a damaged record gets here
        return "null"
    return json.dumps(struct_to_dict(features), separators=(",", ":"))


