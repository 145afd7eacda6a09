"""The rendezvous's end of the work stream: replicas' hellos in, their share of requests out, and the
pings that find a replica that died (see rvz.rendezvous.replicas for who gets what)."""

from __future__ import annotations

from collections.abc import Callable

import zmq

from rvz.rendezvous.counters import Counters
from rvz.rendezvous.replicas import ReplicaGroups
from rvz.security.peers import Peer, Peers
from rvz.wire import streams
from rvz.wire.proto import envelope_pb2

# Messages taken per loop pass: hellos are a few per heartbeat per replica.
DRAIN_BATCH = 64
# A peer's frame stamped with the User-Id of its key (the ZAP reply), when the streams are authenticated.
USER_ID = "User-Id"


class WorkStream:
    """The work stream's ROUTER socket, owned by the rendezvous's loop (call only from its thread); never
    blocks. ``peers`` is None when the streams are not authenticated; ``refuse`` records a refused message."""

    def __init__(self, sock: zmq.Socket[bytes], replicas: ReplicaGroups, counters: Counters, peers: Peers | None,
                 refuse: Callable[[Peer, str], None], max_message_bytes: int) -> None:
        self.sock = sock
        self.replicas = replicas
        self.counters = counters
        self.peers = peers
        self.refuse = refuse
        self.max_message_bytes = max_message_bytes

    def drain(self, now: int) -> None:
        """Replicas' hellos: [routing id, HELLO, Control]; anything else is counted as malformed."""
        for _ in range(DRAIN_BATCH):
            try:
                frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) == 3 and frames[1].bytes == streams.HELLO:
                self._on_hello(frames[0].bytes, frames[2], now)
            else:
                self.counters.malformed += 1

    def _on_hello(self, routing_id: bytes, frame: zmq.Frame, now: int) -> None:
        hello = streams.decode(envelope_pb2.Control, frame.bytes, "replica hello")
        if hello is None:
            self.counters.malformed += 1
            return
        model = hello.model
        if self.peers is not None:
            peer = self.peers.of(str(frame.get(USER_ID)))
            if not peer.may_announce(model):  # requests go only to a key of the model they are for
                self.refuse(peer, f"a hello of model {model.name!r} of use case {model.use_case!r}")
                return
        if model.capacity <= 0 or not model.worker_id:
            self.counters.malformed += 1
            return
        self.replicas.hello(routing_id, model, now)

    def ping(self) -> None:
        """A replica that died is gone from the ROUTER: the ping to it fails, and its share moves now."""
        for routing_id in self.replicas.routing_ids():
            try:
                self.sock.send_multipart([routing_id, streams.PING], zmq.NOBLOCK)
            except zmq.ZMQError as e:  # EAGAIN (a full queue: a hung replica) is left to the expiry
                if e.errno == zmq.EHOSTUNREACH:
                    self.replicas.gone(routing_id, "its connection is gone")

    def send(self) -> None:
        """Send each replica the requests given to it this pass; what it cannot take is missed."""
        for routing_id, given in self.replicas.take_outbox().items():
            payloads = [payload for _, payload in given]
            try:
                for batch in streams.batches(payloads, self.max_message_bytes, len):
                    self.sock.send_multipart([routing_id, streams.WORK, *batch], zmq.NOBLOCK)
            except zmq.ZMQError as e:  # EHOSTUNREACH: it is gone; EAGAIN: its queue is full
                self.replicas.undelivered(routing_id, [rid for rid, _ in given], e.errno == zmq.EHOSTUNREACH)
