"""The in-process deployment of the tests: it serves like processes do, and leaves nothing running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from in_process import InProcessDeployment
from rvz.worker.model import Model, Outcome

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


class BrokenWorker(Model):
    """rvz's own side of a worker failing (not the model's code, whose failures become error scores)."""

    def __init__(self) -> None:
        super().__init__(lambda features: features, "<broken worker>")

    def score(self, batch: list[dict[str, Any]]) -> list[Outcome]:
        raise RuntimeError("the worker's own code failed")


def test_a_part_that_dies_fails_the_wait_at_once(in_process: Callable[..., InProcessDeployment]) -> None:
    d = in_process().start([("quitter", BrokenWorker(), "champion")])
    assert d.score_error({"x": 1}).code() == grpc.StatusCode.DEADLINE_EXCEEDED  # its worker died on it
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="model-quitter died: RuntimeError"):
        d.wait_serving()
    assert time.monotonic() - started < 1
    with pytest.raises(RuntimeError, match="model-quitter died"):
        d.close()  # says so again, once everything has stopped
    assert not {t.name for t in threading.enumerate()} & {"frontend", "rendezvous", "model-quitter"}
