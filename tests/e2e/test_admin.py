"""The Admin API and its CLI against real processes: promotion under load, policies, drift."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import grpc
import pytest

from harness import Deployment
from rvz.wire.proto import admin_pb2, admin_pb2_grpc
from security_tools import operator_admin

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]


def admin(d: Deployment) -> admin_pb2_grpc.AdminStub:
    return operator_admin(d.channel, d.root / "data")


def models_by_name(d: Deployment) -> dict[str, admin_pb2.ModelStatus]:
    return {m.name: m for m in admin(d).ListModels(admin_pb2.ListModelsRequest(), timeout=5).models}


def wait_models(d: Deployment, count: int) -> dict[str, admin_pb2.ModelStatus]:
    """Models are known to a (new) rendezvous from their announces, which follow the frontend's probes."""
    deadline = time.monotonic() + 10
    while len(statuses := models_by_name(d)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return statuses


def test_promotion_under_load_fails_no_request(deployment: Make) -> None:
    d = deployment().start([
        ("old", "rvz_test_models:echo", "champion", {"RVZ_TEST_TAG": "old"}),
        ("new", "rvz_test_models:echo", "challenger", {"RVZ_TEST_TAG": "new"})])
    answers: list[tuple[str, str]] = []
    failures: list[grpc.StatusCode] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                r = d.score({"x": 1}, timeout_s=2)
                answers.append((r.model_name, r.role))
            except grpc.RpcError as e:
                failures.append(e.code())

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        while len(answers) < 200:
            time.sleep(0.01)  # let the load run before promoting
        promoted = admin(d).Promote(admin_pb2.PromoteRequest(use_case="default", model_name="new"), timeout=5)
        before = len(answers)
        while len(answers) < before + 200:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert promoted.champion == "new" and promoted.demoted == "old"
    # The champion's name switches; a slow moment may let the challenger answer after 30 ms either way.
    assert {name for name, role in answers[:100] if role == "champion"} == {"old"}
    assert {name for name, role in answers[-100:] if role == "champion"} == {"new"}
    assert answers[-100:].count(("new", "champion")) > 50
    statuses = models_by_name(d)
    assert (statuses["new"].role, statuses["new"].started_role) == ("champion", "challenger")
    assert (statuses["old"].role, statuses["old"].started_role) == ("challenger", "champion")
    assert statuses["new"].times_chosen >= 100 and statuses["new"].latency_p50_ms > 0


def test_promotion_survives_a_rendezvous_restart(deployment: Make) -> None:
    d = deployment().start([("a", "rvz_test_models:echo", "champion"), ("b", "rvz_test_models:echo", "challenger")])
    wait_models(d, 2)
    admin(d).Promote(admin_pb2.PromoteRequest(use_case="default", model_name="b"), timeout=5)
    d.proc("rendezvous").stop()
    d.procs.remove(d.proc("rendezvous"))
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
    statuses = wait_models(d, 2)
    assert (statuses["b"].role, statuses["a"].role) == ("champion", "challenger")


def test_an_invalid_policy_is_refused_and_the_old_one_stays(deployment: Make) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion")])
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


def test_a_new_policy_applies_while_serving_and_is_versioned_in_the_results(deployment: Make) -> None:
    d = deployment().start([
        ("champ", "rvz_test_models:slow", "champion", {"RVZ_TEST_DELAY_MS": "60"}),
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


def test_a_shorter_sla_set_through_the_api_reaches_the_frontend(deployment: Make) -> None:
    d = deployment().start([
        ("champ", "rvz_test_models:slow", "champion", {"RVZ_TEST_DELAY_MS": "300"})])
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


def test_drift_from_the_canary_is_measured_and_warned_about(deployment: Make) -> None:
    d = deployment(extra="[drift]\nthreshold = 0.3\ncheck_s = 0.2\n").start([
        ("champ", "rvz_test_models:numeric", "champion"),
        ("shifted", "rvz_test_models:numeric", "challenger", {"RVZ_TEST_SHIFT": "0.8"}),
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
    d.proc("rendezvous").wait_stderr(r"model shifted v1 of use case 'default' drifted from the canary")


def test_admin_cli(deployment: Make) -> None:
    d = deployment().start([("champ", "rvz_test_models:echo", "champion"), ("chall", "rvz_test_models:echo",
                                                                          "challenger")])
    d.score({"x": 1})
    wait_models(d, 2)

    def rvz(*args: str) -> subprocess.CompletedProcess[str]:
        # --config: the deployment's data directory, whose Admin token the CLI sends.
        return subprocess.run([sys.executable, "-m", "rvz", *args, "--target", d.address, "--config",
                               str(d.config_path)], capture_output=True, text=True, timeout=30)

    listed = json.loads(rvz("models", "--json").stdout)
    assert {m["name"]: m["role"] for m in listed} == {"champ": "champion", "chall": "challenger"}
    table = rvz("models")
    assert "champ" in table.stdout, (table.stdout, table.stderr)
    shown = rvz("policy", "show")
    assert shown.returncode == 0 and "policy version 1" in shown.stdout
    policy_file = d.root / "policy.toml"
    policy_file.write_text(shown.stdout.replace("until_ms = 30.0", "until_ms = 25.0"))
    assert "policy version 2 in force" in rvz("policy", "set", str(policy_file)).stdout
    assert "until_ms = 25.0" in rvz("policy", "show").stdout
    policy_file.write_text("[rendezvous]\ndeadline = 5\n")
    refused = rvz("policy", "set", str(policy_file))
    assert refused.returncode == 1 and "deadline" in refused.stderr
    promoted = rvz("promote", "chall")
    assert promoted.returncode == 0 and "chall is the champion; champ is now a challenger" in promoted.stdout
    missing = rvz("promote", "nobody")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    d.proc("rendezvous").stop(signal.SIGKILL)
    unreachable = rvz("models")
    assert unreachable.returncode == 1 and "UNAVAILABLE" in unreachable.stderr
