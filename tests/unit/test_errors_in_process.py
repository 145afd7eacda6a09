"""Every bad input gets a precise status and message, and nothing falls over: a deployment in this process.

(Killed processes: tests/e2e/test_killed_processes.py; a saturated deployment: tests/e2e/test_under_load.py.)"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from in_process import InProcessDeployment
from rvz_test_models import slow_by

pytestmark = pytest.mark.timeout(90)
Make = Callable[..., InProcessDeployment]


@pytest.fixture
def typed(in_process: Make) -> InProcessDeployment:
    return in_process().start([("typed", "rvz_test_models:Typed", "champion")])


@pytest.mark.parametrize(("features", "message"), [
    (None, "features is required"),
    ({}, "features is required"),
    ({"x": 1}, "missing feature 'name' for use case 'default'"),
    ({"x": "one", "name": "a"}, "feature 'x' must be a number, got string"),
    ({"x": 1, "name": 2}, "feature 'name' must be a string, got number"),
    ({"x": math.nan, "name": "a"}, "feature 'x' must be a finite number"),
    ({"x": 1, "name": "a", "nmae": "b"}, "unknown feature 'nmae'"),
])
def test_invalid_features_are_invalid_argument(typed: InProcessDeployment, features: dict[str, object] | None,
                                               message: str) -> None:
    error = typed.score_error(features)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


def test_bad_and_unknown_use_cases(typed: InProcessDeployment) -> None:
    error = typed.score_error({"x": 1, "name": "a"}, use_case="no such/case")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a valid name" in error.details()
    error = typed.score_error({"x": 1, "name": "a"}, use_case="fraud")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no model serves use case 'fraud'" in error.details() and "'default'" in error.details()
    assert typed.score({"x": 1, "name": "a"}).model_name == "typed"


def test_garbage_bytes_cannot_crash_the_frontend(typed: InProcessDeployment) -> None:
    call = typed.channel.unary_unary("/rvz.v1.Scoring/Score")
    for payload in [b"\xff" * 10, b"\x12\x05\x0a\x03", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256))]:
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=5)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = typed.score_error({"x": 1, "name": "a", "blob": "z" * 1_000_000})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown feature 'blob'" in error.details()
    assert typed.score({"x": 1, "name": "a"}).model_name == "typed"
    assert typed.all_alive


def test_no_rendezvous_is_unavailable_at_once(in_process: Make) -> None:
    d = in_process()
    d.start_frontend()
    d.start_model("champ", "rvz_test_models:echo", "champion", wait=False)
    started = time.monotonic()
    error = d.score_error({"x": 1})
    assert error.code() == grpc.StatusCode.UNAVAILABLE and "rvz rendezvous" in error.details()
    assert time.monotonic() - started < 0.2


def test_more_than_max_in_flight_is_refused_at_once(in_process: Make) -> None:
    d = in_process(frontend="max_in_flight = 2").start([
        ("champ", slow_by(150), "champion")])

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
