"""The three ZeroMQ streams and how each process plugs into them.

    requests  frontend XPUB (bind)  -> SUB (connect): workers by use case, rendezvous all
    scores    worker PUSH (connect) -> PULL (bind): rendezvous
    results   rendezvous ROUTER (bind) -> DEALER (connect): the frontend whose routing id
              is the request's return address

Messages are multipart: a first frame that says what follows (the use case topic
on the requests stream, a one-byte kind on the others) and protobuf payloads, one
or several (requests, scores and results travel several to a message under load).
High-water marks are set on purpose, and senders use NOBLOCK or NODROP so a full
queue is an error we count, never a silent drop.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import zmq
from google.protobuf.message import Message

from rvz.errors import StreamError
from rvz.telemetry.throttle import ThrottledLog

logger = logging.getLogger(__name__)
# Whoever can reach a stream can send it garbage: one warning per kind of message every few seconds.
_malformed = ThrottledLog(logger)
M = TypeVar("M", bound=Message)

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

# Queued scores are flushed for this long when a worker stops: nothing scored is thrown away.
FLUSH_MS = 2000


def topic_for(use_case: str) -> bytes:
    return use_case.encode()


def _bind(sock: zmq.Socket[bytes], endpoint: str, stream: str) -> None:
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        sock.close(linger=0)
        raise StreamError(f"cannot bind the {stream} stream at {endpoint}: {e.strerror} "
                          "(is another rvz deployment using it? change [streams] in the config)") from e


def _connect(sock: zmq.Socket[bytes], endpoint: str, stream: str) -> None:
    # Retry a refused connection after 10 ms, not ZeroMQ's default 100 ms: a worker started just before the
    # rendezvous would otherwise hold its first scores back for a tenth of a second. Back off to 1 s.
    sock.setsockopt(zmq.RECONNECT_IVL, 10)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as e:
        sock.close(linger=0)
        raise StreamError(f"cannot connect to the {stream} stream at {endpoint}: {e.strerror}") from e


def publisher(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int) -> zmq.Socket[bytes]:
    """The input stream. XPUB with NODROP: a full subscriber makes send raise Again instead of dropping."""
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.XPUB_NODROP, 1)
    sock.setsockopt(zmq.LINGER, 0)
    _bind(sock, endpoint, "requests")
    return sock


def subscriber(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
               topics: list[bytes]) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    for topic in topics:
        sock.setsockopt(zmq.SUBSCRIBE, topic)
    _connect(sock, endpoint, "requests")
    return sock


def score_pusher(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.setsockopt(zmq.LINGER, FLUSH_MS)
    _connect(sock, endpoint, "scores")
    return sock


def score_puller(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    _bind(sock, endpoint, "scores")
    return sock


def result_router(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.SNDHWM, hwm)
    # An unknown return address raises EHOSTUNREACH instead of vanishing, so we can count it.
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, FLUSH_MS)
    _bind(sock, endpoint, "results")
    return sock


def result_dealer(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, hwm: int,
                  identity: bytes) -> zmq.Socket[bytes]:
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.setsockopt(zmq.LINGER, 0)
    _connect(sock, endpoint, "results")
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
