"""CURVE options of the streams' sockets (applied by the factories in ``rvz.wire.streams``).

The binding side of a stream is its CURVE server (the frontend for requests, or the requests hub with
the frontend's key for requests and requests_in; the rendezvous for scores, results and work), with a
ZAP domain naming the stream so the authenticator admits the roles it serves; connecting sides know the
server's public key, so they talk to no impostor either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import zmq

from rvz.security.keys import Keyring

Stream = Literal["requests", "requests_in", "scores", "results", "work"]


@dataclass(frozen=True)
class CurveServer:
    keyring: Keyring
    stream: Stream

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Call before bind."""
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keyring.secret)
        sock.setsockopt(zmq.ZAP_DOMAIN, self.stream.encode())
        if self.stream == "results":
            # A routing id is derived from a frontend's key (and checked against it): a frontend that
            # reconnects takes its id back at once, even while its old connection is not cleaned up yet.
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)


@dataclass(frozen=True)
class CurveClient:
    keyring: Keyring
    server: Literal["frontend", "rendezvous"]

    def apply(self, sock: zmq.Socket[bytes]) -> None:
        """Call before connect."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.keyring.servers[self.server])
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.keyring.own.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keyring.secret)
