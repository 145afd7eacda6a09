"""Bursts of concurrent calls and hostile bytes: everything accepted is answered and logged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import Deployment
from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]


@pytest.fixture
def echo(deployment: Make) -> Deployment:
    return deployment().start([("champ", "rvz_test_models:echo", "champion"),
                               ("chall", "rvz_test_models:echo", "challenger")])


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


def test_a_concurrent_burst_is_answered_and_logged_exactly_once(echo: Deployment) -> None:
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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300))
def test_random_bytes_never_crash_anything(echo: Deployment, payload: bytes) -> None:
    call = echo.channel.unary_unary("/rvz.v1.Scoring/Score")
    try:
        call(payload, timeout=5)
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), e.details()
    assert all(p.poll() is None for p in echo.procs)


def test_reflection_lists_the_services(echo: Deployment) -> None:
    services = set(ProtoReflectionDescriptorDatabase(echo.channel).get_services())
    assert {"rvz.v1.Scoring", "grpc.health.v1.Health"} <= services
