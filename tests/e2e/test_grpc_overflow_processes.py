"""frontend.grpc_overflow: what gRPC core does with calls the frontend cannot pick up in time.

The frontend is stopped (SIGSTOP, by pid) while calls arrive, then continued: its gRPC core reads
them all at once and queues them for an event loop that takes one at a time, as under overload.
With a small frontend.grpc_backlog, core turns most of them away.
"""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import grpc
import pytest

from harness import Deployment
from rvz.frontend.server import CANCELLED_IN_GRPC
from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]
CALLS = 300


def burst_while_stopped(d: Deployment) -> list[grpc.RpcError | scoring_pb2.ScoreResponse]:
    """CALLS calls sent while the frontend is stopped; returns each one's answer or error."""
    frontend = d.proc("frontend")
    stub = scoring_pb2_grpc.ScoringStub(d.channel)
    request = scoring_pb2.ScoreRequest()
    request.features.update({"x": 1.0})
    stub.Score(request, timeout=10)  # the connection is up before the frontend stops
    os.kill(frontend.pid, signal.SIGSTOP)
    try:
        futures: list[Future[scoring_pb2.ScoreResponse]] = [stub.Score.future(request, timeout=30)
                                                            for _ in range(CALLS)]
    finally:
        os.kill(frontend.pid, signal.SIGCONT)
    outcomes: list[grpc.RpcError | scoring_pb2.ScoreResponse] = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except grpc.RpcError as e:
            outcomes.append(e)
    return outcomes


def codes(outcomes: list[grpc.RpcError | scoring_pb2.ScoreResponse]) -> Counter[str]:
    return Counter(o.code().name if isinstance(o, grpc.RpcError) else "OK" for o in outcomes)


def test_refuse_makes_grpc_core_turn_the_excess_away_with_resource_exhausted(deployment: Make) -> None:
    d = deployment(frontend='grpc_backlog = 5\ngrpc_overflow = "refuse"').start(
        [("champ", "rvz_test_models:echo", "champion")])
    frontend = d.proc("frontend")
    environ = Path(f"/proc/{frontend.pid}/environ").read_bytes().split(b"\0")
    assert b"GRPC_EXPERIMENTS=ph2_server" in environ  # re-executed in place: the pid is the one started
    outcomes = burst_while_stopped(d)
    seen = codes(outcomes)
    assert set(seen) <= {"OK", "RESOURCE_EXHAUSTED"}, seen
    assert seen["RESOURCE_EXHAUSTED"] > CALLS // 2, seen
    refusals = {o.details() for o in outcomes if isinstance(o, grpc.RpcError)}
    assert refusals <= {"Too many pending requests for this server"} | {
        r for r in refusals if "retry with backoff" in (r or "")}, refusals
    # What got past gRPC was answered and logged, once each.
    answered = [o.request_id for o in outcomes if isinstance(o, scoring_pb2.ScoreResponse)]
    assert len(set(answered)) == len(answered) == seen["OK"]
    logged = {r.request_id for r in d.records("requests")}
    assert set(answered) <= logged


def test_cancel_counts_every_call_grpc_core_cancelled(deployment: Make) -> None:
    d = deployment(frontend="grpc_backlog = 5", extra='[metrics]\nlisten = "127.0.0.1:0"\n').start(
        [("champ", "rvz_test_models:echo", "champion")])
    frontend = d.proc("frontend")
    port = int(frontend.wait_stderr(r"Prometheus scrape endpoint on http://[\d.]+:(\d+)").group(1))
    environ = Path(f"/proc/{frontend.pid}/environ").read_bytes().split(b"\0")
    assert not any(e.startswith(b"GRPC_EXPERIMENTS=") for e in environ)
    seen = codes(burst_while_stopped(d))
    assert set(seen) <= {"OK", "CANCELLED", "RESOURCE_EXHAUSTED"}, seen
    assert seen["CANCELLED"] > 0, seen
    deadline = time.monotonic() + 10
    while True:  # the count is taken only from two agreeing readings: the calls' ends may still be settling
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        metric = re.search(r"^rvz_frontend_cancelled_in_grpc_total(?:\{[^}]*\})? (\S+)$", scraped, re.MULTILINE)
        assert metric is not None, scraped[-2000:]
        if float(metric.group(1)) == seen["CANCELLED"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert float(metric.group(1)) == seen["CANCELLED"]
    assert frontend.stop() == 0
    counted = re.search(rf"{CANCELLED_IN_GRPC} (\d+) calls", frontend.stderr())
    assert counted is not None, frontend.stderr()
    assert int(counted.group(1)) == seen["CANCELLED"]


