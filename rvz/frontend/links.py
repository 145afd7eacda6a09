"""The frontend's links to the deployment's rendezvous processes (``streams.rendezvous_processes``).

One DEALER per rendezvous, each connected to that one's results stream. The frontend gives each
request to one live rendezvous (``RequestEnvelope.rendezvous``), in turn, so they share the requests
evenly, and takes its answer from that one. A rendezvous is live while its connection is up and it
answered a probe within ``SILENT_HEARTBEATS`` heartbeats:

- a rendezvous that dies (crash, ``kill -9``) drops its connection: ZeroMQ's monitor says so at once, its
  calls in flight fail (UNAVAILABLE: their decider is gone) and new requests go to the others from then on;
- one that hangs keeps its connection but stops answering probes: after a few heartbeats (300 ms by
  default) new requests go to the others; the calls it holds end at their deadlines.

Either way its share has moved well within a second, and it takes its share again from its first answer
after it is back. With no rendezvous live, requests still go round all of them (the readiness check
refuses calls meanwhile, so that is only the moment before it notices).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import zmq

from rvz.config import Config
from rvz.security.process import ProcessKeys
from rvz.wire import streams

# A rendezvous answers every probe (one per heartbeat): this many heartbeats without an answer and it is hung.
SILENT_HEARTBEATS = 3


@dataclass(eq=False)
class Link:
    """One rendezvous as this frontend sees it."""

    index: int
    endpoint: str
    dealer: zmq.Socket[bytes]
    monitor: zmq.Socket[bytes]
    # When anything last came from it (answers, probe replies, admin replies); 0: never.
    heard_ns: int = 0
    # Its connection dropped, and nothing came since.
    lost: bool = False


class RendezvousLinks:
    """The links, in index order, and which of them are live. Loop thread only."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], config: Config, identity: bytes, keys: ProcessKeys) -> None:
        s = config.streams
        self.silent_ns = SILENT_HEARTBEATS * config.frontend.heartbeat_ms * 1_000_000
        self.links: list[Link] = []
        for index, endpoints in enumerate(s.rendezvous):
            dealer = streams.result_dealer(ctx, endpoints.results, s.high_water_mark, identity,
                                           config.limits.message_bytes, security=keys.client("rendezvous"))
            monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            self.links.append(Link(index, endpoints.results, dealer, monitor))
        self.shared = len(self.links) > 1
        # The live links' indices, refreshed when one is heard from for the first time, lost, or found silent.
        self._live: list[int] = []
        self._turn = itertools.count()

    def __iter__(self) -> Iterator[Link]:
        return iter(self.links)

    def __len__(self) -> int:
        return len(self.links)

    def choose(self) -> int:
        """The rendezvous of the next request: the live ones in turn (all of them when none is live)."""
        live = self._live or range(len(self.links))
        return live[next(self._turn) % len(live)]

    def heard(self, link: Link, now: int) -> None:
        link.heard_ns = now
        if link.lost or link.index not in self._live:
            link.lost = False
            self.refresh(now)

    def lost(self, link: Link, now: int) -> None:
        link.lost = True
        self.refresh(now)

    def refresh(self, now: int) -> None:
        """Take silent links out of the turn (call every heartbeat)."""
        self._live = [link.index for link in self.links
                      if not link.lost and link.heard_ns and now - link.heard_ns <= self.silent_ns]

    def live(self) -> list[int]:
        return list(self._live)

    @property
    def all_lost(self) -> bool:
        return all(link.lost for link in self.links)

    def close(self) -> None:
        for link in self.links:
            link.dealer.disable_monitor()
            link.monitor.close(linger=0)
