"""Health through real processes: a use case is SERVING only while a model its first window accepts is live."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from harness import Deployment
from rvz.wire.proto import admin_pb2
from security_tools import operator_admin

pytestmark = pytest.mark.timeout(90)
Make = Callable[..., Deployment]
Status = health_pb2.HealthCheckResponse.ServingStatus
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Long enough for many probes (heartbeat_ms = 50 in the tests' config) and health refreshes.
STEADY_S = 1.0


def health_changes(d: Deployment, service: str, seconds: float) -> list[Status]:
    """Every status the health service pushes for ``service`` within ``seconds`` (its first is the current)."""
    seen: list[Status] = []
    watch = health_pb2_grpc.HealthStub(d.channel).Watch(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=seconds)
    try:
        seen.extend(reply.status for reply in watch)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    return seen


def wait_health(d: Deployment, service: str, wanted: Status, timeout_s: float = 30.0) -> None:
    """Block on the health service's pushes until ``service`` reports ``wanted``."""
    watch = health_pb2_grpc.HealthStub(d.channel).Watch(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=timeout_s)
    seen = []
    try:
        for reply in watch:
            seen.append(reply.status)
            if reply.status == wanted:
                return
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    raise AssertionError(f"health of {service!r} never became {Status.Name(wanted)}: saw {seen}")


def answered_by_a_fallback(d: Deployment) -> str:
    """Score once the frontend takes calls (it learns the rendezvous and models at its probes); the rule."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return d.score({"x": 1}).rule
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # the frontend learns of the rendezvous and the model at its next probe


def assert_stays_not_serving(d: Deployment) -> None:
    for service in ("default", ""):
        assert set(health_changes(d, service, STEADY_S)) == {NOT_SERVING}, service


def test_a_challenger_alone_is_not_serving_until_the_champion_is_live(deployment: Make) -> None:
    d = deployment()
    d.start_rendezvous()
    d.start_frontend()
    d.start_model("chall", "rvz_test_models:echo", "challenger")
    wait_health(d, "default", NOT_SERVING)  # the frontend knows the use case from the challenger's announce
    # Calls are taken and answered, but only by the fallback, after the champion-only window.
    assert answered_by_a_fallback(d) == "window 2 (30-100 ms): challenger"
    assert_stays_not_serving(d)
    d.start_model("champ", "rvz_test_models:echo", "champion")
    wait_health(d, "default", SERVING)
    wait_health(d, "", SERVING)
    d.wait_models({"champ", "chall"})
    assert d.score({"x": 1}).rule == "window 1 (0-30 ms): champion"


def test_what_serving_needs_follows_promotions_and_policies(deployment: Make) -> None:
    d = deployment()
    d.start_rendezvous()
    d.start_frontend()
    d.start_model("chall", "rvz_test_models:echo", "challenger")
    wait_health(d, "default", NOT_SERVING)
    d.wait_models({"chall"})
    admin = operator_admin(d.channel, d.root / "data")
    by_name = admin_pb2.Policy(deadline_ms=100, schedule=[admin_pb2.Window(until_ms=30, accept=["chall"]),
                                                          admin_pb2.Window(until_ms=100, accept=["champion"])])
    admin.SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=by_name), timeout=5)
    wait_health(d, "default", SERVING)  # the first window names the challenger: the rendezvous says so
    champion_first = admin_pb2.Policy(deadline_ms=100, schedule=[admin_pb2.Window(until_ms=30, accept=["champion"]),
                                                                 admin_pb2.Window(until_ms=100, accept=["chall"])])
    admin.SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=champion_first), timeout=5)
    wait_health(d, "default", NOT_SERVING)
    admin.Promote(admin_pb2.PromoteRequest(use_case="default", model_name="chall"), timeout=5)
    wait_health(d, "default", SERVING)  # its announces now reach the frontend with the champion's role
    assert d.score({"x": 1}).rule == "window 1 (0-30 ms): champion"
