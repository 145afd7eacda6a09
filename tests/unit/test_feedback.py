"""Truths: the checks on each one, the import file formats, the feedback log (last truth wins), the
durability waits of the Feedback service, and what the client makes of ListModels."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from rvz.client.types import models_of, truth_message
from rvz.config import LogConfig
from rvz.errors import FeedbackRefused
from rvz.feedback.importer import file_format, import_file, read_truths
from rvz.feedback.log import check_truth, open_feedback_log, records
from rvz.feedback.log import read_truths as logged_truths
from rvz.frontend.feedback import DurableWaits
from rvz.wire.codec import value_to_python
from rvz.wire.proto import admin_pb2, scoring_pb2

pytestmark = pytest.mark.timeout(30)
NOW_MS = 1_700_000_000_000
RID = f"{NOW_MS - 1000:012x}0000abcd{1:012x}"
RID2 = f"{NOW_MS - 999:012x}0000abcd{2:012x}"


def truth(request_id: str, value: object) -> scoring_pb2.Truth:
    return truth_message(request_id, value)


@pytest.mark.parametrize(("message", "problem"), [
    (truth(RID, "setosa"), None),
    (truth(RID, 151.2), None),
    (truth(RID, {"label": "a"}), None),
    (truth("abc", "a"), "is not an rvz request id"),
    (truth(RID.upper(), "a"), "is not an rvz request id"),
    (truth(f"{NOW_MS + 3_600_000:012x}0000abcd{1:012x}", "a"), "from the future"),
    (scoring_pb2.Truth(request_id=RID), "is missing"),
    (truth(RID, None), "is missing"),
    (truth(RID, "x" * 70_000), "at most 65536 bytes"),
])
def test_each_truth_is_checked(message: scoring_pb2.Truth, problem: str | None) -> None:
    found = check_truth(message, NOW_MS)
    assert found is None if problem is None else problem in (found or "")


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def values(path: Path) -> list[tuple[int, str, object]]:
    return [(line, t.request_id, value_to_python(t.truth)) for line, t in read_truths(path, file_format(path, None))]


def test_csv_with_or_without_a_header_and_json_cells(tmp_path: Path) -> None:
    plain = write(tmp_path, "t.csv", f"{RID},setosa\n\n{RID2},151.2\n")
    assert values(plain) == [(1, RID, "setosa"), (3, RID2, 151.2)]
    header = write(tmp_path, "h.csv", f'truth,request_id\n"{{""label"": 2}}",{RID}\ntrue,{RID2}\n')
    assert values(header) == [(2, RID, {"label": 2.0}), (3, RID2, True)]
    sniffed = write(tmp_path, "truths.txt", f'{{"request_id": "{RID}", "truth": "a"}}\n')
    assert file_format(sniffed, None) == "jsonl" and values(sniffed) == [(1, RID, "a")]


@pytest.mark.parametrize(("name", "text", "error"), [
    ("a.csv", f"{RID},a\nnot-an-id,b\n", "a.csv:2: request_id 'not-an-id' is not an rvz request id"),
    ("b.csv", f"{RID}\n", "b.csv:1: expected request_id,truth; got 1 column(s)"),
    ("c.csv", f"{RID},  \n", "c.csv:1: the truth is empty"),
    ("d.csv", f"{RID},NaN\n", "d.csv:1: the truth 'NaN' is not a finite number"),
    ("e.jsonl", "{not json\n", "e.jsonl:1: not JSON"),
    ("f.jsonl", '{"id": "x"}\n', 'f.jsonl:1: expected {"request_id": "...", "truth": ...}'),
])
def test_a_bad_line_is_named_and_nothing_is_sent(tmp_path: Path, name: str, text: str, error: str) -> None:
    sent: list[int] = []
    with pytest.raises(FeedbackRefused) as raised:
        import_file(write(tmp_path, name, text), file_format(tmp_path / name, None), lambda b: sent.append(len(b)) or 0)
    assert error in str(raised.value) and sent == []


def test_import_sends_batches(tmp_path: Path) -> None:
    ids = [f"{NOW_MS - 5000:012x}0000abcd{i:012x}" for i in range(2500)]
    path = write(tmp_path, "many.csv", "".join(f"{rid},{i % 3}\n" for i, rid in enumerate(ids)))
    batches: list[int] = []
    assert import_file(path, "csv", lambda b: batches.append(len(b)) or len(b)) == 2500
    assert batches == [1000, 1000, 500]


def test_the_last_truth_recorded_wins(tmp_path: Path) -> None:
    with open_feedback_log(LogConfig(dir=str(tmp_path), fsync=False)) as log:
        log.append_many(records([truth(RID, "a"), truth(RID2, 1.0)], 1))
        log.append_many(records([truth(RID, "b")], 2))
    assert {rid: value_to_python(v) for rid, v in logged_truths(tmp_path).items()} == {RID: "b", RID2: 1.0}
    assert logged_truths(tmp_path / "none") == {}


def test_durable_waits_resolve_in_order_and_survive_cancelled_calls() -> None:
    async def scenario() -> list[str]:
        waits = DurableWaits()
        done: list[str] = []

        async def wait(name: str, seq: int) -> None:
            await waits.wait(seq)
            done.append(name)

        _first, cancelled, third = (asyncio.create_task(wait(n, s)) for n, s in (("1", 1), ("2", 2), ("3", 3)))
        await asyncio.sleep(0)
        cancelled.cancel()
        release = waits.from_thread(asyncio.get_running_loop())
        release(2)
        await asyncio.sleep(0.01)
        assert done == ["1"] and not third.done()
        release(3)
        await third
        await waits.wait(1)  # already durable: returns at once
        return done

    assert asyncio.run(scenario()) == ["1", "3"]


def status(name: str, role: str, live: bool, **figures: float) -> admin_pb2.ModelStatus:
    return admin_pb2.ModelStatus(use_case="iris", name=name, version="1", role=role, live=live,
                                 worker_id=f"{name}-{live}", **figures)


def test_models_are_sorted_gone_workers_once_and_without_figures() -> None:
    response = admin_pb2.ListModelsResponse(models=[
        status("zeta", "challenger", True, scores_per_s=2.0, divergence=-1, latency_p99_ms=-1, times_chosen=3),
        status("alpha", "champion", False, scores_per_s=-1, times_chosen=-1, last_heartbeat_age_s=9),
        status("alpha", "champion", False, scores_per_s=-1, times_chosen=-1, last_heartbeat_age_s=5),
        status("alpha", "champion", True, scores_per_s=5.0, error_rate=0.0, times_chosen=7),
    ])
    rows = models_of(response)
    assert [(m.name, m.live) for m in rows] == [("alpha", True), ("alpha", False), ("zeta", True)]
    assert rows[1].last_heartbeat_age_s == 5  # the latest gone worker
    assert (rows[0].scores_per_s, rows[0].error_rate, rows[0].times_chosen) == (5.0, 0.0, 7)
    assert (rows[1].scores_per_s, rows[1].times_chosen, rows[1].scores_total) == (None, None, None)
    assert (rows[2].divergence, rows[2].latency_p99_ms, rows[2].times_chosen) == (None, None, 3)


def test_import_rvz_is_cheap_and_gives_the_client() -> None:
    code = ("import sys, rvz; assert 'grpc' not in sys.modules and 'rvz.wire.proto' not in sys.modules; "
            "print(rvz.Client.__module__, rvz.AsyncClient.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["rvz.client.sync", "rvz.client.aio"]
