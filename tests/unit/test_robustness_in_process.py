"""Hostile bytes against a deployment in this process: nothing falls over; reflection lists the services.

(A burst of concurrent calls: tests/e2e/test_under_load.py.)"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from in_process import InProcessDeployment

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., InProcessDeployment]


@pytest.fixture
def echo(in_process: Make) -> InProcessDeployment:
    return in_process().start([("champ", "rvz_test_models:echo", "champion"),
                               ("chall", "rvz_test_models:echo", "challenger")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300))
def test_random_bytes_never_crash_anything(echo: InProcessDeployment, payload: bytes) -> None:
    call = echo.channel.unary_unary("/rvz.v1.Scoring/Score")
    try:
        call(payload, timeout=5)
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), e.details()
    assert echo.all_alive


def test_reflection_lists_the_services(echo: InProcessDeployment) -> None:
    services = set(ProtoReflectionDescriptorDatabase(echo.channel).get_services())
    assert {"rvz.v1.Scoring", "grpc.health.v1.Health"} <= services
