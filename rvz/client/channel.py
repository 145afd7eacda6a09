"""How the client reaches a frontend: the one place a channel is made (sync and asyncio alike)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from rvz.security.keys import read_tokens
from rvz.security.tls import ClientTls, aio_channel, channel
from rvz.wire.proto import admin_pb2_grpc, scoring_pb2_grpc


def open_channel(target: str, tls: ClientTls | None = None) -> grpc.Channel:
    return channel(target, tls)


def open_aio_channel(target: str, tls: ClientTls | None = None) -> grpc.aio.Channel:
    return aio_channel(target, tls)


def auth_metadata(token: str, token_file: str | Path | None = None) -> tuple[tuple[str, str], ...]:
    """What every call sends: the Admin bearer token (``NAME:SECRET``), if any.

    ``token_file`` is a token file as `rvz keys token` and `rvz up` write it (DATA_DIR/keys/admin.token):
    its first token is sent. Raises ``ValueError`` when both are given, or the file holds no token, and
    ``OSError`` when it cannot be read.
    """
    if token_file is not None:
        if token:
            raise ValueError("give token or token_file, not both")
        tokens = read_tokens(Path(token_file))
        if not tokens:
            raise ValueError(f"{token_file} holds no token (NAME:SECRET lines; make one: `rvz keys token`)")
        name, secret = next(iter(tokens.items()))
        token = f"{name}:{secret}"
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
