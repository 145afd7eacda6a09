"""What the Admin API changes, undone by ResetPolicy: the rendezvous's AdminState and AdminHandler, no sockets."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

from rvz.admin.handler import AdminHandler
from rvz.admin.state import STATE_FILE, AdminState
from rvz.config import RendezvousConfig, Window
from rvz.rendezvous.live_stats import StatsBook
from rvz.wire.model_registry import ModelRegistry
from rvz.wire.proto import admin_pb2, envelope_pb2

pytestmark = pytest.mark.timeout(30)

CONFIG_POLICY = RendezvousConfig(deadline_ms=100.0, schedule=(Window(30.0, ("champion",)),
                                                              Window(100.0, ("champion", "challenger"))))
FAST = admin_pb2.Policy(deadline_ms=40, schedule=[admin_pb2.Window(until_ms=40, accept=["challenger"])])


def model(name: str, role: str, use_case: str = "fraud") -> envelope_pb2.ModelInfo:
    return envelope_pb2.ModelInfo(use_case=use_case, name=name, version="1", role=role, worker_id=f"w-{name}")


def changed_state(data_dir: Path) -> AdminState:
    """A use case whose policy was set and whose challenger was promoted; another one promoted only."""
    state = AdminState(CONFIG_POLICY, data_dir)
    state.set_policy(admin_pb2.SetPolicyRequest(use_case="fraud", policy=FAST))
    state.promote("fraud", "new", [model("old", "champion"), model("new", "challenger")])
    state.promote("iris", "b", [model("a", "champion", "iris"), model("b", "challenger", "iris")])
    return state


def test_reset_puts_the_config_policy_and_the_started_roles_back_at_a_new_version(tmp_path: Path) -> None:
    state = changed_state(tmp_path)
    assert state.policy_for("fraud").version == 2 and state.role_of("fraud", "new", "challenger") == "champion"
    policy = state.reset("fraud")
    assert (policy.version, policy.config) == (3, CONFIG_POLICY)
    assert state.policy_for("fraud") is policy
    assert state.role_of("fraud", "new", "challenger") == "challenger"
    assert state.role_of("fraud", "old", "champion") == "champion"
    assert state.deadlines_ms() == {}  # the frontend applies the config's SLA itself
    assert state.role_of("iris", "b", "challenger") == "champion"  # another use case keeps its promotion


def test_reset_is_saved_as_the_config_policy_not_a_copy_of_it(tmp_path: Path) -> None:
    changed_state(tmp_path).reset("fraud")
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["policies"] == {"fraud": {"version": 3, "from_config": True}}
    assert "fraud" not in saved["roles"] and "iris" in saved["roles"]
    # A restart with another config file applies that file's policy, at the version reached.
    other = RendezvousConfig(deadline_ms=250.0)
    restarted = AdminState(other, tmp_path)
    assert (restarted.policy_for("fraud").version, restarted.policy_for("fraud").config) == (3, other)
    assert restarted.deadlines_ms() == {}


def test_reset_of_an_unchanged_use_case_changes_nothing(tmp_path: Path) -> None:
    state = changed_state(tmp_path)
    first = state.reset("fraud")
    saved = (tmp_path / STATE_FILE).read_text()
    assert state.reset("fraud") is first and (tmp_path / STATE_FILE).read_text() == saved
    assert state.reset("never-changed").version == 1


def test_a_policy_set_after_a_reset_is_in_force_and_saved_again(tmp_path: Path) -> None:
    state = changed_state(tmp_path)
    state.reset("fraud")
    policy = state.set_policy(admin_pb2.SetPolicyRequest(use_case="fraud", policy=FAST, expected_version=3))
    assert policy.version == 4 and state.deadlines_ms() == {"fraud": 40.0}
    assert AdminState(CONFIG_POLICY, tmp_path).policy_for("fraud").deadline_ms == 40.0


def handler(tmp_path: Path) -> AdminHandler:
    models = ModelRegistry(timeout_ms=3000)
    models.saw(model("old", "champion"), time.time_ns())
    return AdminHandler(AdminState(CONFIG_POLICY, tmp_path), models, StatsBook(0.3))


def test_the_reset_call_answers_with_the_policy_in_force(tmp_path: Path) -> None:
    admin = handler(tmp_path)
    admin.handle(envelope_pb2.AdminCall(set_policy=admin_pb2.SetPolicyRequest(use_case="fraud", policy=FAST)))
    reply = admin.handle(envelope_pb2.AdminCall(call_id=7, reset_policy=admin_pb2.ResetPolicyRequest(
        use_case="fraud")))
    assert (reply.call_id, reply.status_code, reply.policy.version) == (7, 0, 3)
    assert reply.policy.policy.deadline_ms == 100.0


@pytest.mark.parametrize("call", [
    envelope_pb2.AdminCall(get_policy=admin_pb2.GetPolicyRequest(use_case="diabetes")),
    envelope_pb2.AdminCall(set_policy=admin_pb2.SetPolicyRequest(use_case="diabetes", policy=FAST)),
    envelope_pb2.AdminCall(reset_policy=admin_pb2.ResetPolicyRequest(use_case="diabetes")),
], ids=["get", "set", "reset"])
def test_a_use_case_no_model_announced_is_not_found(tmp_path: Path, call: envelope_pb2.AdminCall) -> None:
    reply = handler(tmp_path).handle(call)
    assert reply.status_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert reply.status_message.startswith("no model has announced use case 'diabetes' to the rendezvous "
                                           "(use cases: 'fraud')")


def test_every_change_is_kept_in_the_policy_history(tmp_path: Path) -> None:
    from rvz.report.history import read_history

    state = changed_state(tmp_path)
    state.reset("fraud")
    history = read_history(tmp_path, CONFIG_POLICY.schedule)
    assert [(c.use_case, c.change, c.version) for c in history.changes] == [
        ("fraud", "set_policy", 2), ("fraud", "promote", 2), ("iris", "promote", 1), ("fraud", "reset_policy", 3)]
    assert history.changes[1].roles == {"old": "challenger", "new": "champion"} and history.changes[3].roles == {}
    assert history.schedule("fraud", 2) == (Window(40.0, ("challenger",)),)
    assert history.schedule("fraud", 3) == CONFIG_POLICY.schedule
    assert history.changes[0].at_ns <= history.changes[-1].at_ns
