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

All of them must decide by the same policies: each says, with every probe answer, a digest of its Admin
state and when it last changed. One whose digest is not the newest one's missed a change (it was stopped
or cut off while the others carried it out): it takes no requests, with a warning, until it has caught
up (rendezvous of one data directory load each other's saved state; see ``AdminState.reload_if_changed``).
It still gets Admin calls, so a change made meanwhile reaches it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import zmq

from rvz.config import Config
from rvz.security.process import ProcessKeys
from rvz.telemetry.throttle import ThrottledLog
from rvz.wire import streams

logger = logging.getLogger(__name__)
_out_of_step = ThrottledLog(logger)

# A rendezvous answers every probe (one per heartbeat): this many heartbeats without an answer and it is hung.
SILENT_HEARTBEATS = 3


@dataclass(eq=False)
class Link:
    """One rendezvous as this frontend sees it."""

    index: int
    endpoint: str
    dealer: zmq.Socket[bytes]
    monitor: zmq.Socket[bytes]
    # When it last answered a probe (what proves it hears the requests); 0: never.
    heard_ns: int = 0
    # Its connection dropped, and nothing came since.
    lost: bool = False
    # Its Admin state, from its last probe answer: a digest, and when it last changed.
    state_digest: str = ""
    state_changed_ns: int = 0


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
        # The live links' indices (reachable: for Admin calls; in turn: live and in step, for requests),
        # refreshed when one is heard from for the first time, lost, found silent, or its state changes.
        self._reachable: list[int] = []
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

    def heard(self, link: Link) -> None:
        """Something came from it: its connection is back, if it was lost (it takes requests again from its
        next probe answer)."""
        link.lost = False

    def answered(self, link: Link, digest: str, changed_ns: int, now: int) -> None:
        """It answered a probe, in the Admin state ``digest`` changed at ``changed_ns``."""
        back = link.index not in self._reachable
        link.heard_ns = now
        self.note_state(link, digest, changed_ns, now, refresh=back)

    def lost(self, link: Link, now: int) -> None:
        link.lost = True
        self.refresh(now)

    def note_state(self, link: Link, digest: str, changed_ns: int, now: int, *, refresh: bool = False) -> None:
        """Its Admin state (from a probe answer, or an Admin reply: known at once after a change)."""
        if refresh or (digest, changed_ns) != (link.state_digest, link.state_changed_ns):
            link.state_digest, link.state_changed_ns = digest, changed_ns
            self.refresh(now)

    def refresh(self, now: int) -> None:
        """Take silent links, and links out of step with the newest Admin state, out of the turn (call every
        heartbeat)."""
        reachable = [link for link in self.links
                     if not link.lost and link.heard_ns and now - link.heard_ns <= self.silent_ns]
        in_step = reachable
        if self.shared:
            # Only a probe answer proves a rendezvous hears the requests (what it forwards, announces and answers,
            # comes from elsewhere): one takes requests from its first, which also says its Admin state.
            in_step = [link for link in reachable if link.state_digest]
        if len({link.state_digest for link in in_step}) > 1:
            known = in_step
            newest = max(known, key=lambda link: (link.state_changed_ns, -link.index))
            in_step = [link for link in known if link.state_digest == newest.state_digest]
            for link in known:
                if link.state_digest != newest.state_digest:
                    _out_of_step.warning(
                        f"step:{link.index}", "rendezvous %d takes no requests: its Admin state (policies and roles) "
                        "is not the one rendezvous %d has in force since a later change: it missed that change "
                        "(it was stopped or cut off); rendezvous of one data directory catch up on their own, one "
                        "on another host needs the change made again, or admin-state.json copied and a restart",
                        link.index, newest.index)
        if self.shared:
            self._say_changes(reachable, now)
        self._reachable = [link.index for link in reachable]
        self._live = [link.index for link in in_step]

    def _say_changes(self, reachable: list[Link], now: int) -> None:
        """Log each rendezvous that fell silent (a lost one is logged where its connection drops) or came back."""
        was, now_reachable = set(self._reachable), {link.index for link in reachable}
        for link in self.links:
            if link.index in was and link.index not in now_reachable and not link.lost:
                logger.warning("rendezvous %d has answered no probe for %.0f ms (hung, or cut off): its share of "
                               "the requests goes to the others", link.index, (now - link.heard_ns) / 1e6)
            elif link.index in now_reachable and link.index not in was:
                logger.info("rendezvous %d answers: it takes its share of the requests", link.index)

    def live(self) -> list[int]:
        """The rendezvous that take requests now."""
        return list(self._live)

    def reachable(self) -> list[int]:
        """The rendezvous that answer, in step or not: the ones an Admin call goes to."""
        return list(self._reachable)

    @property
    def all_lost(self) -> bool:
        return all(link.lost for link in self.links)

    def close(self) -> None:
        for link in self.links:
            link.dealer.disable_monitor()
            link.monitor.close(linger=0)
