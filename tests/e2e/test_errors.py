"""Every bad input gets a precise status and message, and no process falls over."""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from harness import Deployment

pytestmark = pytest.mark.timeout(90)
Make = Callable[..., Deployment]


@pytest.fixture
def typed(deployment: Make) -> Deployment:
    return deployment().start([("typed", "rvz_test_models:Typed", "champion")])


@pytest.mark.parametrize(("features", "message"), [
    (None, "features is required"),
    ({}, "features is required"),
    ({"x": 1}, "missing feature 'name' for use case 'default'"),
    ({"x": "one", "name": "a"}, "feature 'x' must be a number, got string"),
    ({"x": 1, "name": 2}, "feature 'name' must be a string, got number"),
    ({"x": math.nan, "name": "a"}, "feature 'x' must be a finite number"),
    ({"x": 1, "name": "a", "nmae": "b"}, "unknown feature 'nmae'"),
])
def test_invalid_features_are_invalid_argument(typed: Deployment, features: dict[str, object] | None,
                                               message: str) -> None:
    error = typed.score_error(features)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


def test_bad_and_unknown_use_cases(typed: Deployment) -> None:
    error = typed.score_error({"x": 1, "name": "a"}, use_case="no such/case")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid name" in error.details()
    error = typed.score_error({"x": 1, "name": "a"}, use_case="fraud")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no model serves use case 'fraud'" in error.details() and "'default'" in error.details()
    assert typed.score({"x": 1, "name": "a"}).model_name == "typed"


def test_garbage_bytes_cannot_crash_the_frontend(typed: Deployment) -> None:
    call = typed.channel.unary_unary("/rvz.v1.Scoring/Score")
    for payload in [b"\xff" * 10, b"\x12\x05\x0a\x03", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256))]:
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = typed.score_error({"x": 1, "name": "a", "blob": "z" * 1_000_000})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown feature 'blob'" in error.details()
    assert typed.score({"x": 1, "name": "a"}).model_name == "typed"
    assert all(p.poll() is None for p in typed.procs)


def test_no_rendezvous_is_unavailable_at_once(deployment: Make) -> None:
    d = deployment()
    d.start_frontend()
    d.start_model("champ", "rvz_test_models:echo", "champion", wait=False)
    started = time.monotonic()
    error = d.score_error({"x": 1})
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "rvz rendezvous" in error.details()
    assert time.monotonic() - started < 0.2


def test_rendezvous_going_away_is_unavailable_quickly(deployment: Make) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion")])
    assert d.score({"x": 1}).role == "champion"
    d.proc("rendezvous").stop(signal.SIGKILL)
    started = time.monotonic()
    error = d.score_error({"x": 1})
    assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
    # The frontend notices the dropped connection: no waiting for the deadline (100 ms) or the backstop.
    assert time.monotonic() - started < 0.1, error.details()


def test_a_use_case_whose_models_are_gone_is_unavailable(deployment: Make) -> None:
    d = deployment(frontend="model_timeout_ms = 300")
    d.start([("champ", "rvz_test_models:echo", "champion")])
    d.proc("model-champ").stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        error = d.score_error({"x": 1})
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            break
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "no live model for use case 'default'" in error.details()


def test_a_saturated_deployment_refuses_what_it_cannot_answer_in_time(deployment: Make) -> None:
    # One champion that takes 40 ms per request, one at a time: 25 requests/s. Ten callers keeping a call
    # each in flight would queue 400 ms of work against a 200 ms deadline: all of it would time out.
    policy = ('[rendezvous]\ndeadline_ms = 200\non_timeout = "error"\n'
              '[[rendezvous.schedule]]\nuntil_ms = 200\naccept = ["champion"]\n')
    d = deployment(policy=policy).start([("champ", "rvz_test_models:slow", "champion", {"RVZ_TEST_DELAY_MS": "40"})])
    outcomes: list[tuple[float, grpc.StatusCode, str, float]] = []
    started = time.monotonic()

    def caller(i: int) -> None:
        while time.monotonic() - started < 3.0:
            t = time.monotonic()
            try:
                d.score({"x": i})
                outcomes.append((t - started, grpc.StatusCode.OK, "", time.monotonic() - t))
            except grpc.RpcError as e:
                outcomes.append((t - started, e.code(), e.details() or "", time.monotonic() - t))
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    time.sleep(0.02)  # a client backing off, as the message asks

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(caller, range(10)))
    codes = {code for _, code, _, _ in outcomes}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
    refused = [(details, took) for _, code, details, took in outcomes if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert refused, "the admission limit never engaged"
    assert all("adaptive admission limit" in details for details, _ in refused), refused[:3]
    assert all(took < 0.1 for _, took in refused), refused  # at once, not after queueing
    # Once the limit has settled (the last second), what is admitted is answered in time.
    settled = [code for t, code, _, _ in outcomes if t > 2.0 and code != grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert settled.count(grpc.StatusCode.OK) >= 10
    assert settled.count(grpc.StatusCode.DEADLINE_EXCEEDED) <= len(settled) // 10, settled


def test_more_than_max_in_flight_is_refused_at_once(deployment: Make) -> None:
    d = deployment(frontend="max_in_flight = 2").start([
        ("champ", "rvz_test_models:slow", "champion", {"RVZ_TEST_DELAY_MS": "150"})])

    def call(x: int) -> tuple[grpc.StatusCode, float]:
        started = time.monotonic()
        try:
            d.score({"x": x})
            return grpc.StatusCode.OK, time.monotonic() - started
        except grpc.RpcError as e:
            return e.code(), time.monotonic() - started

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(call, range(6)))
    refused = [t for code, t in outcomes if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert len(refused) >= 3, outcomes
    assert all(t < 0.1 for t in refused), outcomes  # at once, not after the 150 ms model
    assert all(code in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED)
               for code, _ in outcomes), outcomes
