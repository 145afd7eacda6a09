"""Client-side calls of `rvz score` and `rvz check`."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rvz.errors import CallFailed
from rvz.security.tls import Connection
from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc


def score(connection: Connection, use_case: str, features: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    request = scoring_pb2.ScoreRequest(use_case=use_case)
    request.features.update(features)
    with connection.channel() as channel:
        try:
            response = scoring_pb2_grpc.ScoringStub(channel).Score(request, timeout=timeout_s)  # type: ignore[no-untyped-call]
        except grpc.RpcError as e:
            raise CallFailed(e.code(), e.details() or "") from None
    result: dict[str, Any] = json_format.MessageToDict(response, preserving_proto_field_name=True,
                                                       always_print_fields_with_no_presence=True)
    return result


def check(connection: Connection, service: str, timeout_s: float) -> str:
    """The health status name of ``service`` ("" = the whole server)."""
    with connection.channel() as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout_s)
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
