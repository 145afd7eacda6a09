"""The request path end to end, through a real frontend, rendezvous and workers in this process."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from in_process import InProcessDeployment
from rvz_test_models import slow_by

pytestmark = pytest.mark.timeout(90)
Make = Callable[..., InProcessDeployment]


def test_champion_answers_in_its_window(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:echo", "champion"),
                            ("chall", "rvz_test_models:echo", "challenger")])
    for x in range(20):
        response = d.score({"x": x})
        assert response.role == "champion" and response.model_name == "champ"
        assert response.output.struct_value.fields["x"].number_value == x
        assert response.rule.startswith("window 1")
        assert response.elapsed_ms < 30
        assert len(response.request_id) == 32


def test_slow_champion_falls_back_to_challenger_at_the_window_boundary(in_process: Make) -> None:
    d = in_process().start([
        ("champ", slow_by(60), "champion"),
        ("chall", "rvz_test_models:echo", "challenger")])
    elapsed = []
    for x in range(5):
        response = d.score({"x": x})
        assert response.role == "challenger" and response.rule.startswith("window 2")
        elapsed.append(response.elapsed_ms)
    # The challenger is held until the champion-only window closes at 30 ms, then answers at once.
    # Never before the boundary; soon after it (the bench measures the precision: p99 within 1 ms).
    assert all(30 <= e < 50 for e in elapsed), elapsed


def test_nothing_acceptable_gives_deadline_exceeded_at_the_deadline(in_process: Make) -> None:
    d = in_process().start([
        ("champ", slow_by(300), "champion")])
    started = time.monotonic()
    error = d.score_error({"x": 1})
    took_ms = (time.monotonic() - started) * 1000
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "within the deadline of 100 ms" in error.details() or "schedule ended at 100 ms" in error.details()
    # Ended by the deadline, not by the 300 ms model: the margin is for a loaded 2-core machine (the deadline's
    # own precision is measured by scripts/chaos, not here).
    assert 100 <= took_ms < 250, took_ms


def test_default_output_answers_when_configured(in_process: Make) -> None:
    policy = """
[rendezvous]
deadline_ms = 50
on_timeout = "default"
default_output = {label = "unknown"}
[[rendezvous.schedule]]
until_ms = 50
accept = ["champion"]
"""
    d = in_process(policy=policy).start([
        ("champ", slow_by(200), "champion")])
    response = d.score({"x": 1})
    assert response.is_default and response.role == "default"
    assert response.output.struct_value.fields["label"].string_value == "unknown"
    assert 50 <= response.elapsed_ms < 70


def test_client_deadline_shorter_than_the_sla_is_respected(in_process: Make) -> None:
    d = in_process().start([
        ("champ", slow_by(300), "champion")])
    started = time.monotonic()
    error = d.score_error({"x": 1}, timeout_s=0.04)
    took_ms = (time.monotonic() - started) * 1000
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert took_ms < 70, took_ms
    # The request carried the client's deadline, not the 100 ms SLA.
    request = d.wait_for_record("requests", lambda r: True)
    budget_ms = (request.deadline_unix_ns - request.received_unix_ns) / 1e6
    assert 30 < budget_ms <= 41, budget_ms  # grpc-timeout travels with millisecond resolution
    result = d.wait_for_record("results", lambda r: r.request_id == request.request_id)
    assert result.status_code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


def test_late_scores_are_logged_and_every_answer_is_in_the_request_log(in_process: Make) -> None:
    d = in_process().start([
        ("champ", slow_by(50), "champion"),
        ("chall", "rvz_test_models:echo", "challenger")])
    answered = {d.score({"x": x}).request_id for x in range(10)}
    late = {r.score.request_id for r in [d.wait_for_record(
        "scores", lambda r, rid=rid: r.score.request_id == rid and r.score.model_name == "champ")
        for rid in answered]}
    assert late == answered
    assert all(r.late for r in d.records("scores") if r.score.model_name == "champ")
    assert not any(r.late for r in d.records("scores") if r.score.model_name == "chall")
    assert answered <= {r.request_id for r in d.records("requests")}
    results = {r.request_id: r for r in d.records("results")}
    assert all(results[rid].model_name == "chall" for rid in answered)


def test_a_model_that_raises_keeps_its_worker_serving(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:fragile", "champion"),
                            ("chall", "rvz_test_models:echo", "challenger")])
    champ = d.loops["model-champ"]
    failed = d.score({"x": -1})
    assert failed.role == "challenger"  # the champion's error score is never chosen
    error = d.wait_for_record("scores", lambda r: r.score.request_id == failed.request_id
                              and r.score.model_name == "champ")
    assert error.score.error_type == "ValueError" and "negative" in error.score.error
    ok = d.score({"x": 2})
    assert ok.role == "champion" and champ.alive


def test_every_model_failing_ends_the_request_at_once(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:fragile", "champion")])
    started = time.monotonic()
    error = d.score_error({"x": -1})
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "champ (champion) failed: ValueError: x must not be negative" in error.details()
    assert time.monotonic() - started < 0.1  # not at the 100 ms deadline


def test_unencodable_output_becomes_an_error_score(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:unencodable", "champion")])
    error = d.score_error({"x": 1})
    assert error.code() == grpc.StatusCode.INTERNAL and "cannot be encoded" in error.details()
    assert d.loops["model-champ"].alive


@pytest.mark.parametrize("entry", ["rvz_test_models:async_echo", "rvz_test_models:Batcher"])
def test_async_and_batch_models(in_process: Make, entry: str) -> None:
    d = in_process().start([("champ", entry, "champion")])
    response = d.score({"x": 3})
    assert response.output.struct_value.fields["x"].number_value == 3


def test_decoy_archives_requests_exactly_as_published(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:echo", "champion"), ("decoy", "", "decoy")])
    ids = {d.score({"x": x}).request_id for x in range(5)}
    from rvz.log.reader import iter_records

    archive = d.root / "data" / "decoy" / "default" / "decoy"
    requests = {r.request_id: r.SerializeToString() for r in d.records("requests")}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        archived = {r.payload for r in iter_records(archive)} if archive.exists() else set()
        if len(archived) >= len(ids):
            break
        time.sleep(0.02)
    assert {requests[rid] for rid in ids} <= archived
