"""The requests hub: ZeroMQ's own proxy between the frontends and the requests stream's subscribers.

One frontend binds the requests stream itself. Several cannot (one endpoint, one binder), so with
``Config.requests_hub`` the hub binds it: an XSUB at ``streams.requests_in`` that every frontend's XPUB
connects to, and the XPUB at ``streams.requests`` that the rendezvous and the models connect to as
before. ``zmq.proxy_steerable`` moves the messages in libzmq's own loop, without the GIL or a copy into
Python: requests one way, subscriptions the other. Messages pass unchanged (the frontend's sequence
frame still says who sent them), so subscribers count what they miss per frontend as before.

The hub is stateless: killed, it loses what was in its queues (counted by the subscribers as missed, and
answered by the rendezvous's timeout like any lost request) and its restart is a bind; the frontends and
subscribers reconnect on their own (``streams.RECONNECT_MAX_MS``).

With CURVE the hub speaks for the frontends: it holds the frontend's key, is the server of both of its
sockets, admits only frontend keys on its input and only rendezvous and model keys on its output.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import zmq

from rvz.config import Config
from rvz.security.deployment import keyring_for
from rvz.security.process import ProcessKeys
from rvz.wire import streams

logger = logging.getLogger(__name__)

# The proxy's control socket: a PAIR over inproc, so that stopping is a message, not a signal or a timeout.
_CONTROL = "inproc://rvz-hub-control"
_TERMINATE = b"TERMINATE"
_STATISTICS = b"STATISTICS"


class RequestsHub:
    """One hub process's sockets and proxy. ``run`` once; set ``should_exit`` from anywhere to stop it."""

    def __init__(self, config: Config) -> None:
        if not config.requests_hub:
            raise ValueError("the requests hub runs only with streams.requests_in or frontend.processes > 1")
        self.config = config
        self.should_exit = threading.Event()
        # Called once by ``run`` when both endpoints are bound.
        self.on_ready: Callable[[], None] | None = None
        # Raises ConfigError (before anything starts) when the keys cannot be had.
        self.keys = ProcessKeys(keyring_for(config, "frontend"))
        # libzmq's counters at stop: messages in from the frontends, out to the subscribers (see ``_statistics``).
        self.statistics: dict[str, int] = {}

    def run(self) -> None:
        """Relay until ``should_exit`` is set. Raises ``StreamError`` when an endpoint cannot be bound."""
        s = self.config.streams
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.keys.start(ctx)
        inbound = outbound = None
        try:
            inbound = streams.hub_inbound(ctx, self.config.requests_hub, s.high_water_mark,
                                          self.config.limits.message_bytes, security=self.keys.server("requests_in"))
            outbound = streams.publisher(ctx, s.requests, s.high_water_mark, self.keys.server("requests"))
            logger.info("requests hub relaying frontends at %s to subscribers at %s (%s)", self.config.requests_hub,
                        s.requests, "CURVE" if self.keys.active else "plaintext")
            self._relay(ctx, inbound, outbound)
        finally:
            for sock in (inbound, outbound):
                if sock is not None:
                    sock.close(linger=0)
            self.keys.stop()
            ctx.term()

    def _relay(self, ctx: zmq.Context[zmq.Socket[bytes]], inbound: zmq.Socket[bytes],
               outbound: zmq.Socket[bytes]) -> None:
        steer = ctx.socket(zmq.PAIR)
        steer.bind(_CONTROL)
        control = ctx.socket(zmq.PAIR)
        control.connect(_CONTROL)
        # The sockets are handed to the proxy's thread and not touched here again until it returns.
        proxy = threading.Thread(target=_proxy, args=(inbound, outbound, control), name="rvz-hub-proxy", daemon=True)
        proxy.start()
        if self.on_ready is not None:
            self.on_ready()
        try:
            self.should_exit.wait()
            self.statistics = _statistics(steer)
            steer.send(_TERMINATE)
            proxy.join()
        finally:
            steer.close(linger=0)
            control.close(linger=0)
        logger.info("requests hub stopped: %s", ", ".join(f"{k} {v}" for k, v in self.statistics.items()))


def _proxy(inbound: zmq.Socket[bytes], outbound: zmq.Socket[bytes], control: zmq.Socket[bytes]) -> None:
    with contextlib.suppress(zmq.ContextTerminated):
        zmq.proxy_steerable(inbound, outbound, None, control)


# libzmq's proxy statistics: messages and bytes received and sent on each side (the frontends' side first), in
# this order. A message is one loop pass's requests of one use case from one frontend, or a probe.
_STATISTICS_NAMES = ("messages in", "bytes in", "subscriptions to frontends", "subscription bytes to frontends",
                     "subscriptions in", "subscription bytes in", "messages out", "bytes out")


def _statistics(steer: zmq.Socket[bytes]) -> dict[str, int]:
    """libzmq's counters of the running proxy (empty if it does not answer within a second)."""
    steer.send(_STATISTICS)
    if not steer.poll(1000):
        return {}
    frames = steer.recv_multipart()
    return {name: int.from_bytes(frame, "little") for name, frame in zip(_STATISTICS_NAMES, frames, strict=False)}
