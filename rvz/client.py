"""Client-side commands: `rvz score`, `rvz check`, and `rvz log cat`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import json_format, symbol_database
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rvz._proto import envelope_pb2, scoring_pb2, scoring_pb2_grpc
from rvz.log import iter_records, read_record_type


class ScoreFailed(Exception):
    """The service answered with a non-OK status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code


def score(target: str, use_case: str, features: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    request = scoring_pb2.ScoreRequest(use_case=use_case)
    request.features.update(features)
    with grpc.insecure_channel(target) as channel:
        try:
            response = scoring_pb2_grpc.ScoringStub(channel).Score(request, timeout=timeout_s)  # type: ignore[no-untyped-call]
        except grpc.RpcError as e:
            raise ScoreFailed(e.code(), e.details() or "") from None
    result: dict[str, Any] = json_format.MessageToDict(response, preserving_proto_field_name=True,
                                                       always_print_fields_with_no_presence=True)
    return result


def check(target: str, service: str, timeout_s: float) -> str:
    """The health status name of ``service`` ("" = the whole server)."""
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout_s)
        except grpc.RpcError as e:
            return f"{e.code().name}: {e.details()}"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def cat(directory: str, strict: bool) -> Iterator[str]:
    """Every record of a log as one JSON line, decoded by the record type in the log's header."""
    message_class = _message_class(read_record_type(directory))
    for record in iter_records(directory, strict=strict):
        message = message_class.FromString(record.payload)
        line = json_format.MessageToDict(message, preserving_proto_field_name=True)
        if isinstance(message, envelope_pb2.RequestEnvelope | envelope_pb2.ResultEnvelope):
            _inline_embedded(message, line)
        yield json.dumps(line, sort_keys=False)


def _inline_embedded(message: Message, line: dict[str, Any]) -> None:
    # Embedded serialized messages are shown decoded rather than as base64.
    if isinstance(message, envelope_pb2.RequestEnvelope) and message.request:
        line["request"] = json_format.MessageToDict(scoring_pb2.ScoreRequest.FromString(message.request),
                                                    preserving_proto_field_name=True)
    if isinstance(message, envelope_pb2.ResultEnvelope) and message.response:
        line["response"] = json_format.MessageToDict(scoring_pb2.ScoreResponse.FromString(message.response),
                                                     preserving_proto_field_name=True)


def _message_class(type_name: str) -> type[Message]:
    try:
        return symbol_database.Default().GetSymbol(type_name)
    except KeyError:
        raise ValueError(f"the log holds {type_name} records, which this version of rvz cannot decode") from None
