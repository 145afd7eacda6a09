"""The frontend's readiness (rvz.frontend.readiness) fed the control messages the rendezvous sends, and the
rendezvous's control plane (rvz.rendezvous.control) that makes them, wired together without sockets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rvz.admin.handler import AdminHandler
from rvz.admin.state import AdminState, policy_message
from rvz.config import FrontendConfig, RendezvousConfig, StreamsConfig, Window
from rvz.errors import Unavailable
from rvz.frontend.readiness import Readiness
from rvz.rendezvous.control import ControlPlane
from rvz.rendezvous.live_stats import StatsBook
from rvz.wire.model_registry import ModelRegistry
from rvz.wire.proto import admin_pb2, envelope_pb2

pytestmark = pytest.mark.timeout(30)

MS = 1_000_000
FRONTEND = b"fe-1"
Kind = envelope_pb2.Control


class Pipeline:
    """A rendezvous's control plane answering one frontend's readiness, message by message."""

    def __init__(self, root: Path) -> None:
        self.state = AdminState(RendezvousConfig(), root)
        self.models = ModelRegistry(3000)
        self.control = ControlPlane(self.state, self.models, AdminHandler(self.state, self.models, StatsBook(0.5)))
        self.readiness = Readiness(FrontendConfig(model_timeout_ms=3000), StreamsConfig())

    def probe(self, now: int | None = None) -> None:
        now = time.time_ns() if now is None else now
        ready = self.control.ready(envelope_pb2.Control(kind=Kind.PROBE, frontend_id=FRONTEND))
        self.readiness.on_control(envelope_pb2.Control.FromString(ready), now)

    def announce(self, name: str, role: str, now: int | None = None) -> envelope_pb2.Control:
        """The worker's announce through the rendezvous; returns what the frontend got."""
        now = time.time_ns() if now is None else now
        announce = envelope_pb2.Control(kind=Kind.ANNOUNCE, frontend_id=FRONTEND, model=envelope_pb2.ModelInfo(
            use_case="default", name=name, version="1", role=role, worker_id=f"w-{name}"))
        forwarded = envelope_pb2.Control.FromString(self.control.announced(announce, announce.SerializeToString()))
        self.readiness.on_control(forwarded, now)
        return forwarded

    def serving(self) -> bool:
        return self.readiness.serving("default", time.time_ns())


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path)


def test_a_challenger_alone_takes_calls_but_is_not_serving(pipeline: Pipeline) -> None:
    pipeline.probe()
    pipeline.announce("chall", "challenger")
    assert pipeline.readiness.check("default") is not None  # a fallback can still answer calls
    assert not pipeline.serving() and not pipeline.readiness.any_serving(time.time_ns())
    pipeline.announce("champ", "champion")
    assert pipeline.serving() and pipeline.readiness.any_serving(time.time_ns())


def test_serving_ends_when_the_champion_is_gone(pipeline: Pipeline) -> None:
    before = time.time_ns() - 4000 * MS  # longer ago than model_timeout_ms
    pipeline.probe(before)
    pipeline.announce("champ", "champion", before)
    pipeline.probe()
    pipeline.announce("chall", "challenger")
    assert not pipeline.serving()
    assert pipeline.readiness.check("default") is not None


def test_nothing_is_serving_before_the_rendezvous_sent_its_first_windows(pipeline: Pipeline) -> None:
    pipeline.announce("champ", "champion")
    assert not pipeline.serving()
    with pytest.raises(Unavailable):
        pipeline.readiness.check("default")
    pipeline.probe()
    assert pipeline.serving()


def test_a_promoted_challenger_is_announced_as_the_champion(pipeline: Pipeline) -> None:
    pipeline.probe()
    assert pipeline.announce("chall", "challenger").model.role == "challenger"
    pipeline.state.promote("default", "chall", pipeline.models.live("default"))
    assert pipeline.announce("chall", "challenger").model.role == "champion"
    assert pipeline.serving()
    # The rendezvous itself keeps the role the worker started with (ListModels shows both).
    assert [m.role for m in pipeline.models.live("default")] == ["challenger"]


def test_an_announce_without_promotion_is_forwarded_as_it_came(pipeline: Pipeline) -> None:
    announce = envelope_pb2.Control(kind=Kind.ANNOUNCE, frontend_id=FRONTEND, model=envelope_pb2.ModelInfo(
        use_case="default", name="champ", role="champion", worker_id="w"))
    payload = announce.SerializeToString()
    assert pipeline.control.announced(announce, payload) is payload


def test_a_policy_set_through_the_admin_api_moves_what_serving_needs(pipeline: Pipeline) -> None:
    pipeline.probe()
    pipeline.announce("chall", "challenger")
    assert not pipeline.serving()
    by_name = RendezvousConfig(schedule=(Window(20.0, ("chall",)), Window(100.0, ("champion",))))
    pipeline.state.set_policy(admin_pb2.SetPolicyRequest(use_case="default", policy=policy_message(by_name)))
    pipeline.probe()
    assert pipeline.serving()
    assert pipeline.readiness.first_windows == {"default": ("chall",)}
    assert pipeline.readiness.default_first_window == ("champion",)
