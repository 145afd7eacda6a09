"""What the security tests attack with: sockets of a process that is not part of the deployment (this
test process), with no key, an unknown key or a stolen model key; and TLS certificates made here."""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import zmq
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from zmq.auth import load_certificate

from rvz.wire import streams
from rvz.wire.proto import admin_pb2_grpc, envelope_pb2

FORGED = "forged"


@dataclass(frozen=True)
class StolenKey:
    """A key pair the attacker holds (a stolen model's, or one of its own), and the servers' public keys."""

    public: bytes
    secret: bytes
    servers: dict[str, bytes]

    @classmethod
    def of(cls, keys_dir: Path, stem: str) -> StolenKey:
        public, secret = load_certificate(keys_dir / f"{stem}.key_secret")
        assert secret is not None
        return cls(public, secret, _servers(keys_dir))

    @classmethod
    def unknown(cls, keys_dir: Path) -> StolenKey:
        public, secret = zmq.curve_keypair()
        return cls(public, secret, _servers(keys_dir))


def _servers(keys_dir: Path) -> dict[str, bytes]:
    return {name: load_certificate(keys_dir / f"{name}.key")[0] for name in ("frontend", "rendezvous")}


class Attacker:
    """Raw ZeroMQ sockets pointed at a deployment's endpoints; every one is closed by ``close``."""

    def __init__(self) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sockets: list[zmq.Socket[bytes]] = []

    def socket(self, kind: int, endpoint: str, key: StolenKey | None = None, server: str = "",
               identity: bytes = b"") -> zmq.Socket[bytes]:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        if identity:
            sock.setsockopt(zmq.ROUTING_ID, identity)
        if key is not None:
            sock.setsockopt(zmq.CURVE_SERVERKEY, key.servers[server])
            sock.setsockopt(zmq.CURVE_PUBLICKEY, key.public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, key.secret)
        if kind == zmq.SUB:
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(endpoint)
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            sock.close(linger=0)
        self.ctx.term()


def drain(sockets: list[zmq.Socket[bytes]], seconds: float) -> int:
    """Messages received on ``sockets`` within ``seconds``."""
    poller = zmq.Poller()
    for sock in sockets:
        poller.register(sock, zmq.POLLIN)
    received = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for sock, _ in poller.poll(max(1, int(left * 1000))):
            sock.recv_multipart()
            received += 1
    return received


def forged_score(request_id: str, model: str = "champ", use_case: str = "default") -> bytes:
    score = envelope_pb2.ScoreEnvelope(request_id=request_id, use_case=use_case, model_name=model,
                                       model_version="1", role="champion", worker_id=FORGED)
    score.output.string_value = FORGED
    return score.SerializeToString()


def fake_announce(frontend_id: bytes, name: str = "fake", use_case: str = "default",
                  worker_id: str = FORGED) -> list[bytes]:
    """An announce of a model requiring a feature no caller sends (``worker_id``: the one it impersonates)."""
    model = envelope_pb2.ModelInfo(use_case=use_case, name=name, version="1", role="champion", worker_id=worker_id,
                                   features=[envelope_pb2.FeatureSpec(name="zzz", type="number")])
    control = envelope_pb2.Control(kind=envelope_pb2.Control.ANNOUNCE, frontend_id=frontend_id,
                                   sent_unix_ns=time.time_ns(), model=model)
    return [streams.ANNOUNCE, control.SerializeToString()]


def new_request_ids(requests_log: Path, seen: set[str]) -> Iterator[str]:
    """Ids of requests logged since the last call (the attacker of the tests reads them off the log, as one
    on the stream would without CURVE)."""
    from rvz.log.reader import iter_records

    if not requests_log.exists():
        return
    for record in iter_records(requests_log, on_damage=lambda _: None):
        request_id = envelope_pb2.RequestEnvelope.FromString(record.payload).request_id
        if request_id not in seen:
            seen.add(request_id)
            yield request_id


# --- TLS certificates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path, client_name: str = "ops") -> Certificates:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate named ``client_name``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rvz test CA")])
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = _certificate(_name("localhost"), ca_name, server_key.public_key(), ca_key, san=san)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate(_name(client_name), ca_name, client_key.public_key(), ca_key)
    paths = Certificates(*(directory / name for name in ("ca.pem", "server.pem", "server.key", "client.pem",
                                                          "client.key")))
    for path, pem in ((paths.ca, _pem(ca)), (paths.server_cert, _pem(server)), (paths.server_key, _key(server_key)),
                      (paths.client_cert, _pem(client)), (paths.client_key, _key(client_key))):
        path.write_bytes(pem)
    return paths


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
                 signer: ec.EllipticCurvePrivateKey, ca: bool = False,
                 san: x509.SubjectAlternativeName | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# --- the operator's Admin credential ---------------------------------------------------------------


class _Bearer(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        details = details._replace(metadata=(*(details.metadata or ()), *self.metadata))
        return continuation(details, request)


def operator_admin(channel: grpc.Channel, data_dir: Path) -> admin_pb2_grpc.AdminStub:
    """An Admin stub that sends the deployment's token (DATA_DIR/keys/admin.token), as its operator would."""
    token = (data_dir / "keys" / "admin.token").read_text().strip()
    return admin_pb2_grpc.AdminStub(grpc.intercept_channel(channel, _Bearer(token)))
