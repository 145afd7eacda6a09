"""How the client reaches a frontend: the one place a channel is made (sync and asyncio alike)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from rvz.security.tls import ClientTls, aio_channel, channel
from rvz.wire.proto import admin_pb2_grpc, scoring_pb2_grpc


def open_channel(target: str, tls: ClientTls | None = None) -> grpc.Channel:
    return channel(target, tls)


def open_aio_channel(target: str, tls: ClientTls | None = None) -> grpc.aio.Channel:
    return aio_channel(target, tls)


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """What every call sends: the Admin bearer token (``NAME:SECRET``), if any."""
    return (("authorization", f"Bearer {token}"),) if token else ()


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
