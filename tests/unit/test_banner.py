"""What `rvz up` and the rendezvous say is in force: the roles and policies set through the Admin API win."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rvz.admin.state import AdminState
from rvz.config import Config, ModelConfig, RendezvousConfig
from rvz.process.banner import serving_banner
from rvz.process.entry import in_force
from rvz.wire.proto import admin_pb2, envelope_pb2

CONFIG = replace(Config(), models=(ModelConfig("a", "m:a", role="champion"), ModelConfig("b", "m:b", role="challenger"),
                                   ModelConfig("f", "m:f", use_case="fraud")))


def status(name: str, role: str, started_role: str, use_case: str = "default") -> admin_pb2.ModelStatus:
    return admin_pb2.ModelStatus(use_case=use_case, name=name, role=role, started_role=started_role, live=True)


def test_the_banner_lists_the_roles_and_policies_the_rendezvous_reports() -> None:
    listed = admin_pb2.ListModelsResponse(models=[status("a", "challenger", "champion"),
                                                  status("b", "champion", "challenger"),
                                                  status("f", "champion", "champion", "fraud")])
    policies = {"default": admin_pb2.PolicyState(use_case="default", version=2,
                                                 policy=admin_pb2.Policy(deadline_ms=40)),
                "fraud": admin_pb2.PolicyState(use_case="fraud", version=1, policy=admin_pb2.Policy(deadline_ms=100))}
    assert serving_banner("127.0.0.1:5", CONFIG, listed, policies) == (
        "rvz serving on 127.0.0.1:5 (default: policy v2, SLA 40 ms, models a (challenger; configured: champion), "
        "b (champion; configured: challenger); fraud: policy v1, SLA 100 ms, models f (champion); logs in rvz-data). "
        "Try: rvz score --target 127.0.0.1:5 --example")


def test_the_rendezvous_says_what_its_saved_admin_state_puts_in_force(tmp_path: Path) -> None:
    state = AdminState(RendezvousConfig(), tmp_path)
    assert in_force(state) == "every use case policy v1 (SLA 100 ms, as configured)"
    state.set_policy(admin_pb2.SetPolicyRequest(use_case="default", policy=admin_pb2.Policy(
        deadline_ms=40, schedule=[admin_pb2.Window(until_ms=40, accept=["champion"])])))
    live = [envelope_pb2.ModelInfo(use_case="default", name="a", role="champion"),
            envelope_pb2.ModelInfo(use_case="default", name="b", role="challenger")]
    state.promote("default", "b", live)
    restarted = AdminState(RendezvousConfig(), tmp_path)  # read back from DATA_DIR/admin-state.json
    assert in_force(restarted) == ("use case 'default' policy v2 (SLA 40 ms, set through the Admin API); "
                                   "every other use case policy v1 (SLA 100 ms, as configured); "
                                   "roles set through the Admin API: default/a challenger, default/b champion")
