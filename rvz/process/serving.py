"""Waiting for a deployment to serve, through its frontend: the gRPC health service, then the Admin API.

Shared by `rvz up`, the tests and the benchmark. Every wait is bounded, gives up at once when ``stop``
is set and calls ``check`` every round, like the waits of ``rvz.process.child``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rvz.errors import NotReady
from rvz.process.child import START_TIMEOUT_S, TICK_S, Check, pause, ticks
from rvz.wire.proto import admin_pb2, admin_pb2_grpc

T = TypeVar("T")
SERVING = health_pb2.HealthCheckResponse.SERVING
# Between two reads of what has no change signal (the Admin API's ListModels): models are announced at
# the frontend's probes (frontend.heartbeat_ms), so this adds little to a start.
POLL_S = 0.02
# One Admin call while waiting; a frontend that is up answers in milliseconds.
CALL_TIMEOUT_S = 5.0


def wait_serving(channel: grpc.Channel, service: str = "", timeout_s: float = START_TIMEOUT_S, *,
                 stop: threading.Event | None = None, check: Check | None = None) -> None:
    """Return once the health of ``service`` ("": the whole server) is SERVING.

    Blocks on the health service's Watch stream, which pushes every change, in rounds of TICK_S.
    Raises NotReady after ``timeout_s``, Interrupted once ``stop`` is set, and whatever ``check`` raises.
    """
    stub = health_pb2_grpc.HealthStub(channel)
    status = "no answer"
    for left in ticks(f"the health of {service!r} to be SERVING", timeout_s, stop, check):
        round_s = min(left, TICK_S)
        try:
            for reply in stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=round_s,
                                    wait_for_ready=True):
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                if reply.status == SERVING:
                    return
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                continue  # a whole round without a change
            status = f"{e.code().name} ({e.details()})"
        pause(stop, round_s)  # the stream ended early (the server is going away): wait out the round
    raise NotReady(f"the health of {service!r} is {status} after {timeout_s:g} s")


def wait_until(read: Callable[[], T | None], what: str, timeout_s: float = START_TIMEOUT_S, *,
               stop: threading.Event | None = None, check: Check | None = None) -> T:
    """Call ``read`` every POLL_S until it returns something other than None, and return that.

    A gRPC error from ``read`` counts as nothing yet. Raises NotReady (naming ``what``) after
    ``timeout_s``, Interrupted once ``stop`` is set, and whatever ``check`` raises.
    """
    problem = ""
    for _ in ticks(what, timeout_s, stop, check):
        try:
            value = read()
        except grpc.RpcError as e:
            problem = f" (last error: {e.code().name}: {e.details()})"
        else:
            if value is not None:
                return value
        pause(stop, POLL_S)
    raise NotReady(f"no {what} after {timeout_s:g} s{problem}")


def wait_models(channel: grpc.Channel, expected: Collection[tuple[str, str]], timeout_s: float = START_TIMEOUT_S, *,
                stop: threading.Event | None = None, check: Check | None = None,
                replicas: Mapping[tuple[str, str], int] | None = None) -> admin_pb2.ListModelsResponse:
    """Wait until the rendezvous lists every (use case, name) of ``expected`` as live, with at least
    ``replicas[(use case, name)]`` live workers where given, and return the listing.

    A model is listed once its scores, not only the frontend's probes, reach the rendezvous. Raises
    like ``wait_until``.
    """
    stub = admin_pb2_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]
    wanted = set(expected)
    counts = replicas or {}

    def read() -> admin_pb2.ListModelsResponse | None:
        listed = stub.ListModels(admin_pb2.ListModelsRequest(), timeout=CALL_TIMEOUT_S)
        live = Counter((m.use_case, m.name) for m in listed.models if m.live)
        ready = all(live[key] >= counts.get(key, 1) for key in wanted)
        return listed if ready else None

    missing = ", ".join(f"{u}/{n}" for u, n in sorted(wanted))
    return wait_until(read, f"listing of {missing} as live by the rendezvous", timeout_s, stop=stop, check=check)


def policies_in_force(channel: grpc.Channel, use_cases: Collection[str], timeout_s: float = START_TIMEOUT_S, *,
                      stop: threading.Event | None = None) -> dict[str, admin_pb2.PolicyState]:
    """The policy in force for each use case, as the running rendezvous answers GetPolicy."""
    stub = admin_pb2_grpc.AdminStub(channel)  # type: ignore[no-untyped-call]

    def reader(use_case: str) -> Callable[[], admin_pb2.PolicyState]:
        return lambda: stub.GetPolicy(admin_pb2.GetPolicyRequest(use_case=use_case), timeout=CALL_TIMEOUT_S)

    return {use_case: wait_until(reader(use_case), f"policy of use case {use_case!r} from the rendezvous",
                                 timeout_s, stop=stop) for use_case in use_cases}
