"""How the client reaches a frontend: the one place a channel is made (sync and asyncio alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from rvz.wire.proto import admin_pb2_grpc, scoring_pb2_grpc


def open_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target)


def open_aio_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target)


@dataclass(frozen=True)
class Stubs:
    """The stubs of every service a frontend serves, on one channel (sync or asyncio)."""

    scoring: Any
    feedback: Any
    admin: Any
    health: Any

    @classmethod
    def of(cls, channel: grpc.Channel | grpc.aio.Channel) -> Stubs:
        return cls(scoring_pb2_grpc.ScoringStub(channel), scoring_pb2_grpc.FeedbackStub(channel),  # type: ignore[no-untyped-call]
                   admin_pb2_grpc.AdminStub(channel), health_pb2_grpc.HealthStub(channel))  # type: ignore[no-untyped-call]
