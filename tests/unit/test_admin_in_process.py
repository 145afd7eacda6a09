"""The Admin API against a deployment in this process: promotion across a restart, policies, drift.

(A promotion under load: tests/e2e/test_under_load.py.)"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import grpc
import pytest

from harness import admin, listed_models, models_by_name
from in_process import InProcessDeployment
from rvz.wire.proto import admin_pb2
from rvz_test_models import shifted, slow_by

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., InProcessDeployment]


def test_promotion_survives_a_rendezvous_restart(in_process: Make) -> None:
    d = in_process().start([("a", "rvz_test_models:echo", "champion"), ("b", "rvz_test_models:echo", "challenger")])
    listed_models(d, 2)
    admin(d).Promote(admin_pb2.PromoteRequest(use_case="default", model_name="b"), timeout=5)
    d.stop("rendezvous")
    d.start_rendezvous()
    d.wait_serving("default")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            response = d.score({"x": 1})
            break
        except grpc.RpcError:
            time.sleep(0.05)  # the frontend sees the new rendezvous at its next probe
    # Which model answers first depends on timing; the roles do not.
    assert response.role == {"a": "challenger", "b": "champion"}[response.model_name]
    statuses = listed_models(d, 2)
    assert (statuses["b"].role, statuses["a"].role) == ("champion", "challenger")


def test_an_invalid_policy_is_refused_and_the_old_one_stays(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:echo", "champion")])
    stub = admin(d)
    before = stub.GetPolicy(admin_pb2.GetPolicyRequest(use_case="default"), timeout=5)
    assert before.version == 1 and [w.until_ms for w in before.policy.schedule] == [30, 100]
    bad = admin_pb2.Policy(deadline_ms=100, schedule=[admin_pb2.Window(until_ms=50, accept=["champion"]),
                                                      admin_pb2.Window(until_ms=40, accept=["canary"])])
    with pytest.raises(grpc.RpcError) as caught:
        stub.SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=bad), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "policy.schedule[1].until_ms" in caught.value.details() and "version 1 stays" in caught.value.details()
    for policy in [admin_pb2.Policy(on_timeout="default"),
                   admin_pb2.Policy(schedule=[admin_pb2.Window(until_ms=10, accept=["decoy"])])]:
        with pytest.raises(grpc.RpcError):
            stub.SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=policy), timeout=5)
    assert stub.GetPolicy(admin_pb2.GetPolicyRequest(use_case="default"), timeout=5) == before
    assert d.score({"x": 1}).rule.startswith("window 1 (0-30 ms)")


def test_a_new_policy_applies_while_serving_and_is_versioned_in_the_results(in_process: Make) -> None:
    d = in_process().start([
        ("champ", slow_by(60), "champion"),
        ("chall", "rvz_test_models:echo", "challenger")])
    assert 30 <= d.score({"x": 1}).elapsed_ms < 50
    policy = admin_pb2.Policy(deadline_ms=80, schedule=[admin_pb2.Window(until_ms=10, accept=["champion"]),
                                                        admin_pb2.Window(until_ms=80, accept=["challenger"])])
    state = admin(d).SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=policy, expected_version=1),
                               timeout=5)
    assert state.version == 2
    response = d.score({"x": 2})
    assert response.rule == "window 2 (10-80 ms): challenger" and 10 <= response.elapsed_ms < 30
    result = d.wait_for_record("results", lambda r: r.request_id == response.request_id)
    assert result.policy_version == 2
    with pytest.raises(grpc.RpcError) as caught:
        admin(d).SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=policy, expected_version=1),
                           timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_shorter_sla_set_through_the_api_reaches_the_frontend(in_process: Make) -> None:
    d = in_process().start([
        ("champ", slow_by(300), "champion")])
    admin(d).SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=admin_pb2.Policy(
        deadline_ms=40, schedule=[admin_pb2.Window(until_ms=40, accept=["champion"])])), timeout=5)
    deadline = time.monotonic() + 5
    while True:  # the frontend learns the new SLA at its next probe
        error = d.score_error({"x": 1})
        request = d.wait_for_record("requests", lambda r: True)
        budget = [(r.deadline_unix_ns - r.received_unix_ns) / 1e6 for r in d.records("requests")][-1]
        if budget <= 40 or time.monotonic() > deadline:
            break
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and budget <= 40 and request


def test_drift_from_the_canary_is_measured_and_warned_about(in_process: Make) -> None:
    d = in_process(extra="[drift]\nthreshold = 0.3\ncheck_s = 0.2\n").start([
        ("champ", "rvz_test_models:numeric", "champion"),
        ("shifted", shifted(0.8), "challenger"),
        ("canary", "rvz_test_models:numeric", "canary")])
    rng = random.Random(7)
    for _ in range(150):
        d.score({"v": rng.gauss(0, 1)})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        statuses = models_by_name(d)
        if statuses["shifted"].divergence >= 0 and statuses["champ"].divergence >= 0:
            break
        time.sleep(0.1)  # the drift check runs every check_s
    assert statuses["shifted"].divergence > 0.3 > statuses["champ"].divergence >= 0
    assert statuses["canary"].divergence == -1
    d.log.wait_for(r"model shifted v1 of use case 'default' drifted from the canary")
