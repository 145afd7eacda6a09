"""Several frontends on one data directory: each writes requests.NAME and feedback.NAME of its own (the unnamed
one requests/ and feedback/), and every reader (report, export, replay, `rvz log cat`) reads them all. Real logs
written with LogWriter, read back through the readers and the CLI."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.csv as pcsv
import pytest
from click.testing import CliRunner

from report_logs import GBM, MS, Logs, S
from rvz.cli.logs import log
from rvz.cli.replay import replay_command
from rvz.compare.outputs import OutputSpec
from rvz.config import Config, ModelConfig
from rvz.feedback.log import RECORD_TYPE as FEEDBACK_TYPE
from rvz.feedback.log import iter_feedback
from rvz.log.check import find_logs
from rvz.log.dirs import by_time, log_dirs
from rvz.log.reader import iter_records
from rvz.log.writer import LogWriter
from rvz.report.data import Filter, load
from rvz.report.export import export
from rvz.report.history import PolicyHistory
from rvz.report.replay import ReplayOptions, archived, run_replay
from rvz.wire.codec import to_value, value_to_python
from rvz.wire.proto import envelope_pb2
from rvz.worker.model import load_model

pytestmark = pytest.mark.timeout(30)
N = 5  # requests per frontend


@dataclass(frozen=True)
class TwoFrontends:
    root: Path
    unnamed: list[str]  # request ids received at t0, t0 + 2 s, ...
    named: list[str]  # frontend "1": at t0 + 1 s, t0 + 3 s, ...

    @property
    def by_time(self) -> list[str]:
        return [rid for pair in zip(self.unnamed, self.named, strict=True) for rid in pair]


def write_requests(root: Path, log: str, first: int, t0: int) -> list[str]:
    """N requests into ROOT/LOG, 2 s apart from t0, each scored and answered by gbm (its output: its index)."""
    with (LogWriter(root / log, "rvz.v1.RequestEnvelope", fsync=False) as requests,
          LogWriter(root / "scores", "rvz.v1.ScoreRecord", fsync=False) as scores,
          LogWriter(root / "results", "rvz.v1.ResultEnvelope", fsync=False) as results):
        logs = Logs(requests, scores, results)
        ids = []
        for i in range(first, first + 2 * N, 2):
            at = t0 + i * S
            rid = logs.request("iris", i, at)
            logs.score(rid, "iris", GBM, {"label": f"r{i}"}, at, 10)
            logs.result(rid, "iris", at, GBM, {"label": f"r{i}"})
            ids.append(rid)
    return ids


def write_truths(root: Path, log: str, truths: list[tuple[str, str, int]]) -> None:
    """(request id, truth, received ns) into the feedback log ROOT/LOG."""
    with LogWriter(root / log, FEEDBACK_TYPE, fsync=False) as feedback:
        for rid, truth, received_ns in truths:
            feedback.append(envelope_pb2.FeedbackRecord(request_id=rid, truth=to_value(truth),
                                                        received_unix_ns=received_ns).SerializeToString())


@pytest.fixture
def data(tmp_path: Path) -> TwoFrontends:
    """The unnamed frontend and frontend "1" took requests in turn; frontend "fe-b" took the truths of "1"'s
    requests, and a truth of the unnamed frontend's first request that the unnamed frontend corrected later."""
    root = tmp_path / "data"
    t0 = (time.time_ns() // S - 600) * S
    unnamed = write_requests(root, "requests", 0, t0)
    named = write_requests(root, "requests.1", 1, t0)
    now = time.time_ns()
    write_truths(root, "feedback", [(rid, f"truth {rid}", now + i * MS) for i, rid in enumerate(unnamed)])
    write_truths(root, "feedback.fe-b", [(unnamed[0], "wrong", now - S)]
                 + [(rid, f"truth {rid}", now + i * MS) for i, rid in enumerate(named)])
    return TwoFrontends(root, unnamed, named)


def test_log_dirs_lists_the_unnamed_log_then_each_named_frontends(tmp_path: Path) -> None:
    assert log_dirs(tmp_path / "absent", "requests") == []
    for name in ("requests.fe-b", "requests.1", "requests.2", "requests.a_b", "scores.1", "requests.a.b",
                 "requests.", "requestsX", "requests.sock.in"):
        (tmp_path / name).mkdir()
    (tmp_path / "requests.sock").touch()  # a socket beside the logs (streams.requests = ipc://DATA/requests.sock)
    assert log_dirs(tmp_path, "requests") == [tmp_path / n for n in ("requests.1", "requests.2", "requests.a_b",
                                                                      "requests.fe-b")]
    (tmp_path / "requests").mkdir()
    assert log_dirs(tmp_path, "requests")[:2] == [tmp_path / "requests", tmp_path / "requests.1"]
    assert log_dirs(tmp_path, "feedback") == []


def test_by_time_keeps_each_streams_order_and_gives_ties_to_the_first() -> None:
    unsorted = [(3, "a"), (1, "b"), (2, "c")]
    assert list(by_time([unsorted], lambda item: item[0])) == unsorted  # one log: exactly as written
    merged = by_time([[(1, "x"), (5, "y")], [(1, "p"), (2, "q"), (9, "r")]], lambda item: item[0])
    assert [name for _, name in merged] == ["x", "p", "q", "y", "r"]


def test_report_data_joins_every_frontends_requests_and_truths(data: TwoFrontends) -> None:
    loaded = load(data.root, PolicyHistory(()), Filter())
    assert loaded.requests_of("iris") == 2 * N and loaded.truths == 2 * N + 1 and loaded.unmatched_truths == 0
    (gbm,) = loaded.models
    assert len(gbm.row) == 2 * N and min(gbm.row) >= 0  # every score found its request, whichever frontend's
    truths = {loaded.labels[code] for code in loaded.truth_label}
    assert truths == {f"truth {rid}" for rid in data.by_time}  # "wrong" was received first: the later one wins
    assert [(r.request_id, value_to_python(r.truth)) for r in iter_feedback(data.root)][:2] == [
        (data.unnamed[0], "wrong"), (data.unnamed[0], f"truth {data.unnamed[0]}")]


def test_export_has_one_row_per_request_of_every_frontend_in_time_order(data: TwoFrontends, tmp_path: Path) -> None:
    (written,) = export(data.root, tmp_path / "out", "csv", Filter(), lambda _: OutputSpec())
    assert (written.use_case, written.rows) == ("iris", 2 * N)
    table = pcsv.read_csv(written.path).to_pydict()
    assert table["request_id"] == data.by_time
    assert table["truth_label"] == [f"truth {rid}" for rid in data.by_time]
    assert table["gbm:3/label"] == [f"r{i}" for i in range(2 * N)]


def test_replay_scores_the_requests_of_every_frontend(data: TwoFrontends) -> None:
    model = ModelConfig(name="newbie", entry="rvz_test_models:echo", use_case="iris", role="challenger")
    options = ReplayOptions(data.root, model, None, None, 0.0)
    payloads, use_cases = archived(data.root, options)
    assert [envelope_pb2.RequestEnvelope.FromString(p).request_id for p in payloads] == data.by_time
    assert use_cases == {"iris"}
    done = run_replay(Config(), options, load_model(model.entry), show_progress=False)
    assert (done.scores, done.errors) == (2 * N, 0)
    replayed = [envelope_pb2.ScoreRecord.FromString(r.payload).score for r in iter_records(data.root / "scores")]
    assert sorted(s.request_id for s in replayed if s.replayed) == sorted(data.by_time)


def test_replay_takes_a_data_dir_with_only_named_frontends_logs(tmp_path: Path) -> None:
    write_requests(tmp_path, "requests.2", 0, time.time_ns())
    result = CliRunner().invoke(replay_command, ["--data-dir", str(tmp_path), "--entry", "no_module:f", "--name", "n"])
    assert result.exit_code == 2 and "cannot import module 'no_module'" in result.output  # past the data dir check
    result = CliRunner().invoke(replay_command, ["--data-dir", str(tmp_path / "requests.2"), "--entry", "m:f",
                                                 "--name", "n"])
    assert result.exit_code == 2 and "does not exist (nor any requests.NAME of a named frontend)" in result.output


def cat(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(log, ["cat", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_log_cat_merges_every_frontends_log_by_time(data: TwoFrontends) -> None:
    assert [r["request_id"] for r in cat("requests", "--data-dir", str(data.root))] == data.by_time
    assert [r["request_id"] for r in cat(str(data.root / "requests.1"))] == data.named  # one log: that one
    truths = cat("feedback", "--data-dir", str(data.root))
    assert len(truths) == 2 * N + 1 and truths[0] == {
        "request_id": data.unnamed[0], "truth": "wrong", "received_unix_ns": truths[0]["received_unix_ns"]}
    assert len(cat("scores", "--data-dir", str(data.root))) == 2 * N  # one log of every frontend's scores
    assert {p.name for p in find_logs(data.root)} == {"requests", "requests.1", "feedback", "feedback.fe-b",
                                                      "scores", "results"}


def test_log_cat_of_a_data_dir_with_no_such_log(tmp_path: Path) -> None:
    (tmp_path / "requests.sock").touch()
    result = CliRunner().invoke(log, ["cat", "requests", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and f"{tmp_path / 'requests'} does not exist" in result.output

