"""What callers see when a process of the deployment is killed (SIGKILL, by PID): real processes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import grpc
import pytest

from harness import Deployment

pytestmark = pytest.mark.timeout(90)
Make = Callable[..., Deployment]


def test_killed_champion_still_gets_answers_from_the_fallback(deployment: Make) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion"),
                            ("chall", "rvz_test_models:echo", "challenger")])
    assert "champion" in {d.score({"x": x}).role for x in range(20)}  # the champion was answering
    d.proc("model-champ").stop(signal.SIGKILL)
    for x in range(5):
        response = d.score({"x": x})
        assert response.role == "challenger" and response.model_name == "chall"
        assert 30 <= response.elapsed_ms < 50


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
