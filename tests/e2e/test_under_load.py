"""The deployment under concurrent load, as real processes: admission, a burst, a promotion.

These stay with processes: under load the deployment's processes run in parallel on the machine's
cores, and a stall of one (a model, say) leaves the others answering. In one process the GIL runs
them one at a time and any stall stalls them all, which is a different system from the one deployed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from harness import Deployment, admin, models_by_name
from rvz.wire.proto import admin_pb2, scoring_pb2, scoring_pb2_grpc

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]


def test_a_saturated_deployment_refuses_what_it_cannot_answer_in_time(deployment: Make) -> None:
    # One champion that takes 40 ms per request, one at a time: 25 requests/s. Ten callers keeping a call
    # each in flight would queue 400 ms of work against a 200 ms deadline: all of it would time out.
    policy = ('[rendezvous]\ndeadline_ms = 200\non_timeout = "error"\n'
              '[[rendezvous.schedule]]\nuntil_ms = 200\naccept = ["champion"]\n')
    d = deployment(policy=policy).start([("champ", "rvz_test_models:slow", "champion", {"RVZ_TEST_DELAY_MS": "40"})])
    outcomes: list[tuple[float, grpc.StatusCode, str, float]] = []
    started = time.monotonic()

    def caller(i: int) -> None:
        while time.monotonic() - started < 3.0:
            t = time.monotonic()
            try:
                d.score({"x": i})
                outcomes.append((t - started, grpc.StatusCode.OK, "", time.monotonic() - t))
            except grpc.RpcError as e:
                outcomes.append((t - started, e.code(), e.details() or "", time.monotonic() - t))
                if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    time.sleep(0.02)  # a client backing off, as the message asks

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(caller, range(10)))
    codes = {code for _, code, _, _ in outcomes}
    assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED}
    refused = [(details, took) for _, code, details, took in outcomes if code == grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert refused, "the admission limit never engaged"
    assert all("adaptive admission limit" in details for details, _ in refused), refused[:3]
    assert all(took < 0.1 for _, took in refused), refused  # at once, not after queueing
    # Once the limit has settled (the last second), what is admitted is answered in time.
    settled = [code for t, code, _, _ in outcomes if t > 2.0 and code != grpc.StatusCode.RESOURCE_EXHAUSTED]
    assert settled.count(grpc.StatusCode.OK) >= 10
    assert settled.count(grpc.StatusCode.DEADLINE_EXCEEDED) <= len(settled) // 10, settled


async def burst(address: str, total: int, concurrency: int) -> list[scoring_pb2.ScoreResponse]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = scoring_pb2_grpc.ScoringStub(channel)
        slots = asyncio.Semaphore(concurrency)

        async def one(x: int) -> scoring_pb2.ScoreResponse:
            request = scoring_pb2.ScoreRequest()
            request.features.update({"x": x})
            async with slots:
                return await stub.Score(request, timeout=5)

        return list(await asyncio.gather(*(one(x) for x in range(total))))


def test_a_concurrent_burst_is_answered_and_logged_exactly_once(deployment: Make) -> None:
    echo = deployment().start([("champ", "rvz_test_models:echo", "champion"),
                               ("chall", "rvz_test_models:echo", "challenger")])
    responses = asyncio.run(burst(echo.address, total=600, concurrency=64))
    assert sorted(r.output.struct_value.fields["x"].number_value for r in responses) == list(range(600))
    ids = [r.request_id for r in responses]
    assert len(set(ids)) == 600
    requests = [r.request_id for r in echo.records("requests")]
    results = echo.records("results")
    assert sorted(requests) == sorted(ids) and sorted(r.request_id for r in results) == sorted(ids)
    assert requests == sorted(requests)  # ids are time-ordered: the log is in id order
    # The score that answered was logged before the answer was sent.
    scored = {(s.score.request_id, s.score.model_name) for s in echo.records("scores")}
    assert {(r.request_id, r.model_name) for r in results} <= scored


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
