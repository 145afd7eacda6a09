"""The in-process deployment of the tests: it serves like processes do, and leaves nothing running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from in_process import InProcessDeployment

pytestmark = pytest.mark.timeout(60)
PARTS = {"frontend", "rendezvous", "model-champ", "model-chall"}


def test_it_serves_then_stops_every_part_and_joins_its_thread(in_process: Callable[..., InProcessDeployment]) -> None:
    d = in_process().start([("champ", "rvz_test_models:echo", "champion"),
                            ("chall", "rvz_test_models:echo", "challenger")])
    assert {t.name for t in threading.enumerate()} >= PARTS
    assert d.score({"x": 1}).model_name == "champ"
    d.close()
    assert not {t.name for t in threading.enumerate()} & PARTS
    # Every socket it bound is closed: a deployment of the same configuration binds them again.
    again = in_process().start([("champ", "rvz_test_models:echo", "champion")])
    assert again.score({"x": 2}).model_name == "champ"
    d.close()  # idempotent


def test_a_part_that_dies_fails_the_wait_at_once(in_process: Callable[..., InProcessDeployment]) -> None:
    d = in_process()
    d.config = replace(d.config, streams=replace(d.config.streams, scores="ipc:///nonexistent/rvz/scores.sock"))
    d.start_rendezvous()  # it cannot bind the scores stream there
    d.start_frontend()
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="rendezvous died: StreamError"):
        d.wait_serving()
    assert time.monotonic() - started < 5
    with pytest.raises(RuntimeError, match="rendezvous died"):
        d.close()  # says so again, once everything else has stopped
    assert not {t.name for t in threading.enumerate()} & PARTS
