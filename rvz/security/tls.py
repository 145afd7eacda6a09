"""TLS for gRPC: the frontend's server credentials (``[tls]``), and the channels rvz's own commands open
to it (``ClientTls``: the CA to verify the frontend with and, for mTLS, a client certificate)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from rvz.config import TlsConfig
from rvz.errors import ConfigError


def read_pem(path: str, what: str) -> bytes:
    """The bytes of a PEM file; raises ``ConfigError`` naming ``what`` (the setting or option) and the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {path}: {e.strerror}") from e
    if b"-----BEGIN" not in data:
        raise ConfigError(f"{what}: {path} is not a PEM file")
    return data


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials | None:
    """The frontend's TLS credentials; None without ``tls.cert`` (plaintext gRPC)."""
    if not tls.cert and not tls.key:
        if tls.client_ca or tls.require_client_auth:
            raise ConfigError("tls.client_ca and tls.require_client_auth need tls.cert and tls.key")
        return None
    if not (tls.cert and tls.key):
        raise ConfigError("tls.cert and tls.key go together: give both")
    if tls.require_client_auth and not tls.client_ca:
        raise ConfigError("tls.require_client_auth needs tls.client_ca (the CA client certificates are checked with)")
    pair = (read_pem(tls.key, "tls.key"), read_pem(tls.cert, "tls.cert"))
    client_ca = read_pem(tls.client_ca, "tls.client_ca") if tls.client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca,
                                       require_client_auth=tls.require_client_auth)


@dataclass(frozen=True)
class ClientTls:
    """How a client verifies the frontend (``ca``; empty: the system's roots) and proves itself (mTLS:
    ``cert`` and ``key``). Plain data, so it travels to `rvz bench`'s load processes."""

    ca: str = ""
    cert: str = ""
    key: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        """Raises ``ConfigError`` for a file that cannot be read."""
        if bool(self.cert) != bool(self.key):
            raise ConfigError("--tls-cert and --tls-key go together: give both")
        return grpc.ssl_channel_credentials(
            root_certificates=read_pem(self.ca, "--tls-ca") if self.ca else None,
            private_key=read_pem(self.key, "--tls-key") if self.key else None,
            certificate_chain=read_pem(self.cert, "--tls-cert") if self.cert else None)


def own_client(config: TlsConfig) -> ClientTls | None:
    """How rvz's own processes (`rvz up`) call their frontend: its CA (``tls.ca``, else the certificate
    itself) and, under ``require_client_auth``, the frontend's own key pair as the client certificate."""
    if not config.cert:
        return None
    mutual = config.require_client_auth
    return ClientTls(config.ca or config.cert, config.cert if mutual else "", config.key if mutual else "")


def channel(target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
    """A blocking channel to ``target``: TLS with ``tls``, plaintext without."""
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=options)


def aio_channel(target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=options)


@dataclass(frozen=True)
class Connection:
    """How a command reaches a frontend: its address, TLS (None: plaintext) and the Admin credential it
    sends (``NAME:SECRET``; empty: none)."""

    target: str
    tls: ClientTls | None = None
    token: str = ""

    def channel(self, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        return channel(self.target, self.tls, options)

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()
