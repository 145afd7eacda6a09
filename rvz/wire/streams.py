"""The three ZeroMQ streams and how each process plugs into them.

    requests  frontend XPUB (bind)  -> SUB (connect): workers by use case, rendezvous all
    scores    worker PUSH (connect) -> PULL (bind): rendezvous
    results   rendezvous ROUTER (bind) -> DEALER (connect): the frontend whose routing id
              is the request's return address
    work      rendezvous ROUTER (bind) -> DEALER (connect): replicas of a model (replicas > 1),
              each given its share of the model's requests (see rvz.rendezvous.replicas)

With several frontends (``Config.requests_hub``), the requests hub (`rvz hub`, ZeroMQ's own proxy) binds
the requests stream instead: every frontend's XPUB connects to the hub's XSUB (requests_in), and the
hub republishes what they send, unchanged, to the same subscribers as before; their subscriptions travel
the other way, so each frontend still sends only what someone takes.

Messages are multipart: a first frame that says what follows (the use case topic
on the requests stream, a one-byte kind on the others) and protobuf payloads, one
or several (requests, scores and results travel several to a message under load).
Requests messages carry a second frame, the sequence frame: which frontend sent
them and the per-(frontend, topic) number of their first request, so a subscriber
knows how many it missed (``Gaps``).

Each subscriber of the requests stream has its own queue (its high-water mark):
one that stops reading, hangs or dies only loses its own messages (PUB drops for
that queue alone, and the subscriber counts what it missed from the sequence
numbers) while every other subscriber goes on. The other senders use NOBLOCK, so
a full queue is an error they count, never a silent drop.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable, Container, Iterator, Mapping
from typing import Protocol, TypeVar

import zmq
from google.protobuf.message import Message

from rvz.errors import StreamError
from rvz.telemetry.throttle import ThrottledLog

logger = logging.getLogger(__name__)
# Whoever can reach a stream can send it garbage: one warning per kind of message every few seconds.
_malformed = ThrottledLog(logger)
M = TypeVar("M", bound=Message)
T = TypeVar("T")


class Security(Protocol):
    """A socket's security options (CURVE, see ``rvz.security.curve``), set before it binds or connects."""

    def apply(self, sock: zmq.Socket[bytes]) -> None: ...

# Topic of control messages on the requests stream. Use case names cannot
# start with NUL, so a worker's subscription to its use case never matches it.
CONTROL_TOPIC = b"\x00"

# First frame on the scores stream (worker -> rendezvous).
SCORE = b"s"
ANNOUNCE = b"a"
# Second frame on the results stream (rendezvous -> frontend), after the routing id.
RESULT = b"r"
CONTROL = b"c"
# Admin calls, frontend -> rendezvous on the results stream's DEALER/ROUTER pair, and their replies.
ADMIN = b"m"
# On the work stream: a replica says which model it is and how many requests it holds at most (replica ->
# rendezvous, [HELLO, Control]), and the rendezvous gives it requests ([WORK, request, request, ...]).
HELLO = b"h"
WORK = b"w"
# Rendezvous -> replica, a few times a heartbeat: the send fails at once when the replica's connection is
# gone (it died), which libzmq 4.3 reports no other way by routing id. A replica ignores it.
PING = b"p"

# Queued scores are flushed for this long when a worker stops: nothing scored is thrown away.
FLUSH_MS = 2000
_SEQUENCE = struct.Struct("<Q")
# A peer that went away is tried again every 10 ms, backing off to this: a restarted rendezvous is found
# within a tenth of a second of binding again (its restart must take under 2 s end to end).
RECONNECT_MAX_MS = 100
# Largest message a receiving socket takes unless told (limits.message_bytes): ZeroMQ drops the connection of
# a peer that sends more, instead of buffering it. A subscription is a topic: a use case name and a byte.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SUBSCRIPTION_MAX_BYTES = 4096
# Room for the frames' own framing in a message that carries several payloads.
_FRAME_ROOM_BYTES = 64
# Senders (frontend, topic) a subscriber follows at most.
_MAX_SENDERS = 4096
# A jump larger than this is not requests lost in a full queue (a billion at 100k/s is hours of loss in one
# gap) but a sender that started over, or a broken one: followed from its new number, not counted.
MAX_GAP = 2**30
# The most a counter can hold: it is sent as a protobuf int64.
MAX_MISSED = 2**63 - 1


def topic_for(use_case: str) -> bytes:
    return use_case.encode()


def batches(items: list[T], max_bytes: int, size: Callable[[T], int]) -> Iterator[list[T]]:
    """``items`` in consecutive batches whose total ``size`` stays under ``max_bytes`` (one larger than that
    alone is its own batch): a sender splits what it sends together so that no receiver refuses the message."""
    if sum(map(size, items)) + _FRAME_ROOM_BYTES * len(items) <= max_bytes:
        yield items  # nearly always: a few small payloads
        return
    batch: list[T] = []
    total = 0
    for item in items:
        cost = size(item) + _FRAME_ROOM_BYTES
        if batch and total + cost > max_bytes:
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += cost
    if batch:
        yield batch


def sequence_frame(sender: bytes, first: int) -> bytes:
    """The second frame of a requests message: the number of its first request on its topic, and who sent it."""
    return _SEQUENCE.pack(first) + sender


class _EveryTopic:
    """The topics of a subscriber that takes them all (the rendezvous)."""

    def __contains__(self, topic: object) -> bool:
        return True


EVERY_TOPIC: Container[bytes] = _EveryTopic()


class Gaps:
    """What a subscriber missed on the requests stream, from each message's sequence frame.

    ``missed`` counts requests that a sender published on a topic and this subscriber never received
    (its queue was full). A sender that starts over (a restarted frontend has a new identity; one that
    restarts its count is detected by a lower number) is followed from its new numbers.
    """

    def __init__(self) -> None:
        self.missed = 0
        self._expected: dict[tuple[bytes, bytes], int] = {}

    def note_probe(self, sender: bytes, next_sequence: Mapping[str, int], topics: Container[bytes]) -> int:
        """Record a probe's ``next_sequence`` for the topics this subscriber takes; returns how many were missed
        since the last message it received from that sender (a gap at the end of a burst)."""
        gap = 0
        for use_case, upcoming in next_sequence.items():
            topic = topic_for(use_case)
            if topic not in topics:
                continue
            key = (sender, topic)
            expected = self._expected.get(key)
            if expected is not None and upcoming > expected:
                gap += _plausible(upcoming - expected)
                self._expected[key] = upcoming
        self.missed = min(self.missed + gap, MAX_MISSED)
        return gap

    def note(self, topic: bytes, frame: bytes, count: int) -> int:
        """Record a message of ``count`` requests; returns how many were missed just before it."""
        if len(frame) < _SEQUENCE.size:
            return 0
        first = _SEQUENCE.unpack_from(frame)[0]
        key = (frame[_SEQUENCE.size:], topic)
        expected = self._expected.get(key)
        if len(self._expected) >= _MAX_SENDERS and expected is None:
            self._expected.clear()  # senders come and go (restarts): forget them rather than grow
        self._expected[key] = first + count
        gap = _plausible(first - expected) if expected is not None and first > expected else 0
        self.missed = min(self.missed + gap, MAX_MISSED)
        return gap


def _plausible(gap: int) -> int:
    return gap if gap <= MAX_GAP else 0


def _bind(sock: zmq.Socket[bytes], endpoint: str, stream: str, security: Security | None) -> None:
    if endpoint.startswith("ipc://") and _ipc_in_use(endpoint.removeprefix("ipc://")):
        sock.close(linger=0)
        raise StreamError(f"cannot bind the {stream} stream at {endpoint}: another process is listening on it "
                          "(is another rvz deployment using it? change [streams] in the config)")
    if security is not None:
        security.apply(sock)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        sock.close(linger=0)
        raise StreamError(f"cannot bind the {stream} stream at {endpoint}: {e.strerror} "
                          "(is another rvz deployment using it? change [streams] in the config)") from e


def _ipc_in_use(path: str) -> bool:
    """Whether a process listens on the unix socket ``path``: ZeroMQ's bind would silently take it over."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        return True
    except OSError:  # nothing there, or a stale file a crash left: binding may replace it
        return False
    finally:
        probe.close()


def _connect(sock: zmq.Socket[bytes], endpoint: str, stream: str, security: Security | None) -> None:
    if security is not None:
        security.apply(sock)
    # Retry a refused connection after 10 ms, not ZeroMQ's default 100 ms: a worker started just before the
    # rendezvous would otherwise hold its first scores back for a tenth of a second. Back off to RECONNECT_MAX_MS.
    sock.setsockopt(zmq.RECONNECT_IVL, 10)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as e:
        sock.close(linger=0)
        raise StreamError(f"cannot connect to the {stream} stream at {endpoint}: {e.strerror}") from e


def publisher(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
              security: Security | None = None) -> zmq.Socket[bytes]:
    """The input stream. XPUB without NODROP on purpose: a subscriber whose queue is full (hung, stopped,
    too slow) misses messages, counted by it from the sequence frames; it never blocks the others."""
    sock = _input_stream(ctx, hwm)
    _bind(sock, endpoint, "requests", security)
    return sock


def hub_publisher(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                  security: Security | None = None) -> zmq.Socket[bytes]:
    """A frontend's input stream when a requests hub relays it: the same XPUB as ``publisher``, connected to the
    hub's input instead of bound, so any number of frontends publish into one stream."""
    sock = _input_stream(ctx, hwm)
    _connect(sock, endpoint, "requests hub", security)
    return sock


def _input_stream(ctx: zmq.Context[zmq.Socket[bytes]], hwm: int) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, SUBSCRIPTION_MAX_BYTES)  # all it receives are subscriptions
    return sock


def hub_inbound(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                max_message_bytes: int = MAX_MESSAGE_BYTES, *,
                security: Security | None = None) -> zmq.Socket[bytes]:
    """The requests hub's input (XSUB, bound): frontends connect to it and publish."""
    return _bound_receiver(ctx, zmq.XSUB, endpoint, hwm, max_message_bytes, "requests hub's input", security)


def subscriber(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int, topics: list[bytes],
               max_message_bytes: int = MAX_MESSAGE_BYTES, *,
               security: Security | None = None) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    _connect(sock, endpoint, "requests", security)
    return sock


def score_pusher(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                 handshake_timeout_s: float | None = None, security: Security | None = None) -> zmq.Socket[bytes]:
    """The scores stream's sending end. A worker's sends queue until a rendezvous is there; with
    ``handshake_timeout_s``, return only once one is (a one-off sender, e.g. `rvz replay`, must not
    queue scores nobody takes), else raise ``StreamError``.
    """
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, FLUSH_MS)
    monitor = None if handshake_timeout_s is None else sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    _connect(sock, endpoint, "scores", security)
    if monitor is not None and handshake_timeout_s is not None:
        _await_handshake(sock, monitor, endpoint, handshake_timeout_s)
    return sock


def _await_handshake(sock: zmq.Socket[bytes], monitor: zmq.Socket[bytes], endpoint: str, timeout_s: float) -> None:
    try:
        answered = monitor.poll(round(timeout_s * 1000)) != 0
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
    if not answered:
        sock.close(linger=0)
        raise StreamError(f"no rendezvous answered on the scores stream at {endpoint} within {timeout_s:g} s")


def score_puller(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, *,
               security: Security | None = None) -> zmq.Socket[bytes]:
    return _bound_receiver(ctx, zmq.PULL, endpoint, hwm, max_message_bytes, "scores", security)


def _bound_receiver(ctx: zmq.Context[zmq.Socket[bytes]], kind: int, endpoint: str, hwm: int, max_message_bytes: int,
                    stream: str, security: Security | None) -> zmq.Socket[bytes]:
    """A bound socket that many peers send to (PULL, XSUB): a peer past ``max_message_bytes`` is dropped."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    _bind(sock, endpoint, stream, security)
    return sock


def result_router(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                  max_message_bytes: int = MAX_MESSAGE_BYTES, *,
                  security: Security | None = None) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    # An unknown return address raises EHOSTUNREACH instead of vanishing, so we can count it.
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, FLUSH_MS)
    _bind(sock, endpoint, "results", security)
    return sock


def result_dealer(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int, identity: bytes,
                  max_message_bytes: int = MAX_MESSAGE_BYTES, *,
                  security: Security | None = None) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.setsockopt(zmq.LINGER, 0)
    _connect(sock, endpoint, "results", security)
    return sock


def work_router(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                max_message_bytes: int = MAX_MESSAGE_BYTES, *,
                security: Security | None = None) -> zmq.Socket[bytes]:
    """The work stream's binding end (the rendezvous). Routing ids are ZeroMQ's own, one per connection, so
    no replica can take another's. A send to a replica whose connection is gone raises EHOSTUNREACH
    (ROUTER_MANDATORY): that is how the rendezvous learns a replica died (see PING)."""
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)  # all it receives are hellos
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)  # requests for a replica nobody reads are missed anyway
    _bind(sock, endpoint, "work", security)
    return sock


def work_dealer(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                max_message_bytes: int = MAX_MESSAGE_BYTES, *,
                security: Security | None = None) -> zmq.Socket[bytes]:
    """A replica's end of the work stream."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
    sock.setsockopt(zmq.LINGER, 0)
    _connect(sock, endpoint, "work", security)
    return sock


def decode(message_type: type[M], payload: bytes, what: str) -> M | None:
    """Parse one payload read from a stream; None, with a warning, if it is not a ``message_type``.

    Whatever arrives, the loop reading the stream must go on: a bad message is skipped, not fatal.
    """
    try:
        return message_type.FromString(payload)
    except Exception:  # DecodeError and friends
        _malformed.warning(what, "ignoring a malformed %s (%d bytes)", what, len(payload))
        return None
