"""Several rendezvous on one data directory: rendezvous i >= 1 writes scores.i, results.i, policies.i and audit.i
(rendezvous 0 scores/, results/, policies/, audit/). Every reader (report, export, `rvz log cat`) reads them all;
each request's scores and result are in one rendezvous's logs, while every rendezvous records each Admin change,
which the readers show once. Real logs written with LogWriter, read back through the readers and the CLI."""

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
from rvz.compare.outputs import OutputSpec
from rvz.config import Window
from rvz.log.dirs import by_time
from rvz.log.writer import LogWriter
from rvz.report.data import Filter, load
from rvz.report.export import export
from rvz.report.history import read_history
from rvz.wire.proto import admin_pb2, envelope_pb2

pytestmark = pytest.mark.timeout(30)
N = 4  # requests decided by each rendezvous
CONFIG = (Window(30.0, ("champion",)),)


@dataclass(frozen=True)
class TwoRendezvous:
    root: Path
    ids: list[str]  # received 1 s apart; the even ones decided by rendezvous 0, the odd ones by rendezvous 1


@pytest.fixture
def decided(tmp_path: Path) -> TwoRendezvous:
    """One frontend's requests, decided in turn by rendezvous 0 (scores/, results/) and 1 (scores.1/, results.1/)."""
    root = tmp_path / "data"
    t0 = (time.time_ns() // S - 600) * S
    with (LogWriter(root / "requests", "rvz.v1.RequestEnvelope", fsync=False) as requests,
          LogWriter(root / "scores", "rvz.v1.ScoreRecord", fsync=False) as scores,
          LogWriter(root / "results", "rvz.v1.ResultEnvelope", fsync=False) as results,
          LogWriter(root / "scores.1", "rvz.v1.ScoreRecord", fsync=False) as scores_1,
          LogWriter(root / "results.1", "rvz.v1.ResultEnvelope", fsync=False) as results_1):
        rendezvous = (Logs(requests, scores, results), Logs(requests, scores_1, results_1))
        ids = []
        for i in range(2 * N):
            logs, at = rendezvous[i % 2], t0 + i * S
            rid = logs.request("iris", i, at)
            logs.score(rid, "iris", GBM, {"label": f"r{i}"}, at, 10)
            logs.result(rid, "iris", at, GBM, {"label": f"r{i}"})
            ids.append(rid)
    return TwoRendezvous(root, ids)


def write(path: Path, record_type: str, records: list[bytes]) -> None:
    with LogWriter(path, record_type, fsync=False) as writer:
        for record in records:
            writer.append(record)


def cat(*args: str) -> list[dict[str, Any]]:
    result = CliRunner().invoke(log, ["cat", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_report_data_joins_the_scores_and_results_of_every_rendezvous(decided: TwoRendezvous) -> None:
    loaded = load(decided.root, read_history(decided.root, CONFIG), Filter())
    assert loaded.requests_of("iris") == 2 * N
    (gbm,) = loaded.models
    assert sorted(gbm.row) == list(range(2 * N))  # every score found its request, whichever rendezvous logged it
    assert sum(loaded.outcomes["iris"].values()) == 2 * N and (loaded.answered_model >= 0).all()
    assert [loaded.labels[code] for code in loaded.answered_label] == [f"r{i}" for i in range(2 * N)]


def test_export_has_the_answer_and_scores_of_every_rendezvous(decided: TwoRendezvous, tmp_path: Path) -> None:
    (written,) = export(decided.root, tmp_path / "out", "csv", Filter(), lambda _: OutputSpec())
    table = pcsv.read_csv(written.path).to_pydict()
    assert table["request_id"] == decided.ids
    assert table["answered_model"] == ["gbm"] * 2 * N
    assert table["gbm:3/label"] == [f"r{i}" for i in range(2 * N)]


def test_log_cat_merges_every_rendezvous_scores_and_results_by_time(decided: TwoRendezvous) -> None:
    data_dir = str(decided.root)
    assert [r["score"]["request_id"] for r in cat("scores", "--data-dir", data_dir)] == decided.ids
    assert [r["request_id"] for r in cat("results", "--data-dir", data_dir)] == decided.ids
    assert [r["request_id"] for r in cat(str(decided.root / "results.1"))] == decided.ids[1::2]  # one log: that one


def test_a_request_decided_twice_is_read_as_twice_in_one_log(decided: TwoRendezvous) -> None:
    # A bug elsewhere, not here: the readers go on, counting both decisions as they would in one log.
    write(decided.root / "results.1", "rvz.v1.ResultEnvelope", [envelope_pb2.ResultEnvelope(
        request_id=decided.ids[0], use_case="iris", status_code=4, rule="timeout",
        decided_unix_ns=time.time_ns()).SerializeToString()])
    loaded = load(decided.root, read_history(decided.root, CONFIG), Filter())
    assert sum(loaded.outcomes["iris"].values()) == 2 * N + 1
    assert len(cat("results", "--data-dir", str(decided.root))) == 2 * N + 1


def change(at_ns: int, kind: str, version: int, champion: str = "", until_ms: float = 30.0) -> bytes:
    policy = admin_pb2.Policy(deadline_ms=100, schedule=[admin_pb2.Window(until_ms=until_ms, accept=["champion"])])
    return envelope_pb2.PolicyChange(use_case="iris", changed_unix_ns=at_ns, change=kind, version=version,
                                     policy=policy, roles={champion: "champion"} if champion else {}
                                     ).SerializeToString()


def audit(at_ns: int, action: str, version: int, old: str, new: str) -> bytes:
    return admin_pb2.AuditRecord(unix_ns=at_ns, who="ops", action=action, use_case="iris", old=old, new=new,
                                 policy_version=version).SerializeToString()


@pytest.fixture
def changed(tmp_path: Path) -> tuple[Path, int]:
    """Both rendezvous carried out set_policy v2 (rendezvous 1 a ms first) and promoted a, b, then a again; then
    rendezvous 0 was down while rendezvous 1 carried out set_policy v3."""
    t0 = time.time_ns()
    one = {"a": '{"champion": "b"}', "b": '{"champion": "a"}'}  # the champion before promoting a, b
    for writer, late in (("", MS), (".1", 0)):
        changes = [change(t0 + late, "set_policy", 2, until_ms=40.0)]
        records = [audit(t0 + late, "set_policy", 2, '{"version": 1}', '{"version": 2}')]
        for step, name in enumerate("aba", start=1):
            changes.append(change(t0 + step * S + late, "promote", 2, name, until_ms=40.0))
            records.append(audit(t0 + step * S + late, "promote", 2, one[name], f'{{"champion": "{name}"}}'))
        if writer:
            changes.append(change(t0 + 9 * S, "set_policy", 3, "a", until_ms=50.0))
            records.append(audit(t0 + 9 * S, "set_policy", 3, '{"version": 2}', '{"version": 3}'))
        write(tmp_path / f"policies{writer}", "rvz.v1.PolicyChange", changes)
        write(tmp_path / f"audit{writer}", "rvz.v1.AuditRecord", records)
    return tmp_path, t0


EACH_CHANGE = [("set_policy", 2), ("promote", 2), ("promote", 2), ("promote", 2), ("set_policy", 3)]
AT_S = [0, 1, 2, 3, 9]  # seconds after t0, the earliest record of each change (rendezvous 1's)


def test_the_policy_history_shows_each_change_of_every_rendezvous_once(changed: tuple[Path, int]) -> None:
    root, t0 = changed
    history = read_history(root, CONFIG)
    assert [(c.change, c.version) for c in history.changes] == EACH_CHANGE
    assert [c.roles for c in history.changes[1:4]] == [{"a": "champion"}, {"b": "champion"}, {"a": "champion"}]
    assert [c.at_ns for c in history.changes] == [t0 + s * S for s in AT_S]
    assert history.schedule("iris", 3) == (Window(50.0, ("champion",)),)  # only rendezvous 1 recorded it
    assert history.schedule("iris", 2) == (Window(40.0, ("champion",)),) and not history.missing


def test_log_cat_shows_each_policy_change_and_audit_record_once(changed: tuple[Path, int]) -> None:
    root, t0 = changed
    changes = cat("policies", "--data-dir", str(root))
    assert [(c["change"], c["version"]) for c in changes] == EACH_CHANGE
    assert [int(c["changed_unix_ns"]) for c in changes] == [t0 + s * S for s in AT_S]
    records = cat("audit", "--data-dir", str(root))
    assert [(r["action"], r["policy_version"], json.loads(r["new"])) for r in records] == [
        ("set_policy", 2, {"version": 2}), ("promote", 2, {"champion": "a"}), ("promote", 2, {"champion": "b"}),
        ("promote", 2, {"champion": "a"}), ("set_policy", 3, {"version": 3})]
    assert [int(r["unix_ns"]) for r in records] == [t0 + s * S for s in AT_S]
    assert len(cat(str(root / "audit"))) == 4  # one log: as written


def test_by_time_with_same_leaves_out_what_another_stream_said_already() -> None:
    def merged(*streams: list[tuple[int, str]]) -> list[tuple[int, str]]:
        return list(by_time(streams, lambda item: item[0], lambda item: item[1]))

    assert merged([(1, "a"), (2, "a"), (3, "b")]) == [(1, "a"), (2, "a"), (3, "b")]  # one stream: every item
    assert merged([(2, "a"), (5, "b"), (7, "a")], [(1, "a"), (6, "b"), (8, "a")]) == [(1, "a"), (5, "b"), (7, "a")]
    # The first writer missed one of the two "a": its only one is matched with the other's first.
    assert merged([(3, "a")], [(1, "a"), (4, "a")]) == [(1, "a"), (4, "a")]
