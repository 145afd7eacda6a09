"""Sending to frontends through the results ROUTER: answers, readiness news and Admin replies."""

from __future__ import annotations

import logging
from typing import Protocol

import zmq

from rvz.rendezvous.counters import Counters
from rvz.telemetry.throttle import passed_milestone
from rvz.wire import streams

logger = logging.getLogger(__name__)


class Send(Protocol):
    def __call__(self, address: bytes, kind: bytes, *payloads: bytes) -> bool:
        """Send one message [kind, *payloads] to the frontend ``address``; False if it could not take it."""


class Router:
    """The ROUTER socket's sending side; never blocks. Call only from the rendezvous's loop thread."""

    def __init__(self, sock: zmq.Socket[bytes], counters: Counters) -> None:
        self.sock = sock
        self.counters = counters

    def send(self, address: bytes, kind: bytes, *payloads: bytes) -> bool:
        """See ``Send``. Undelivered answers and Admin replies are counted (and logged now and then)."""
        try:
            self.sock.send_multipart([address, kind, *payloads], zmq.NOBLOCK)
            return True
        except zmq.ZMQError as e:  # EHOSTUNREACH: that frontend is gone; EAGAIN: it is not reading
            if kind != streams.CONTROL:
                self._undeliverable(address, len(payloads), e)
            # Readiness news for a frontend that went away, as every frontend that stops leaves some (its
            # last probe's answers), is not counted: nothing is lost, and it probes again if it comes back.
            return False

    def _undeliverable(self, address: bytes, messages: int, error: zmq.ZMQError) -> None:
        c = self.counters
        before = c.undeliverable
        c.undeliverable += messages
        if passed_milestone(before, c.undeliverable):
            logger.warning("cannot deliver to frontend %r: %s (%d messages so far)", address, error.strerror,
                           c.undeliverable)
