"""How many calls wait inside gRPC for the frontend to pick them up.

grpc.aio takes calls from gRPC core one at a time, on the event loop. When the
frontend cannot keep up (the machine is saturated), calls pile up inside core,
and past ``grpc.server.max_pending_requests`` (``frontend.grpc_backlog``) core
cancels them at random with CANCELLED (see rvz.grpc_overflow): not with a status
a client knows to back off from. Core counts what it starts and ends (channelz);
the frontend compares that with the calls its handlers hold, and sheds load while
the difference is long, so that core's queue stays short and refusals are rvz's
own RESOURCE_EXHAUSTED as long as the frontend can keep up with refusing. What core
cancels anyway is counted (``cancelled_in_queue``).

Two counts, because the cheap one lies after overload: the server's call counts
(one read) never close a call core cancelled while it was queued, so
they only give an upper bound. The per-connection stream counts close those too
and are exact, but cost a read per connection; they are read only when the
bound says there may be a backlog.

channelz is read through ``grpc._cython.cygrpc``, the functions the
grpcio-channelz servicer itself calls. If they are missing in some grpcio
version, the backlog reads as unknown and the frontend does not shed on it.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

SOCKETS_PER_PAGE = 100
# Past this fraction of gRPC core's backlog limit (frontend.grpc_backlog) waiting inside gRPC a growing
# share of new calls is shed, all of them at the second (past the limit core starts cancelling at random).
SHED_FROM_FRACTION = 0.2
SHED_ALL_FRACTION = 0.7


class GrpcBacklog:
    """Reads gRPC core's counts for the one gRPC server of this process."""

    def __init__(self) -> None:
        try:
            from grpc._cython import cygrpc
        except ImportError:
            cygrpc = None
        self._cygrpc: Any = cygrpc
        self._server_id: int | None = None

    def calls_open(self) -> int | None:
        """Calls core started and has not ended: queued, in a handler, long-lived, or cancelled in queue."""
        server = self._server()
        data = None if server is None else self._read("channelz_get_server", server)
        if data is None:
            return None
        data = data.get("server", {}).get("data", {})
        return _started_not_ended(data, "calls")

    def streams_open(self) -> int | None:
        """Streams open on the server's connections: queued or in a handler (or long-lived), exactly."""
        server = self._server()
        if server is None:
            return None
        total = 0
        start = 0
        while True:
            page = self._read("channelz_get_server_sockets", server, start, SOCKETS_PER_PAGE)
            if page is None:
                return None
            refs = page.get("socketRef", [])
            for ref in refs:
                socket = self._read("channelz_get_socket", int(ref["socketId"]))
                if socket is None:
                    return None
                total += _started_not_ended(socket.get("socket", {}).get("data", {}), "streams")
            if page.get("end", True) or not refs:
                return total
            start = int(refs[-1]["socketId"]) + 1

    def cancelled_in_queue(self) -> int | None:
        """Calls core cancelled before they were picked up, since the server started; None if unsure.

        The two counts are read one after the other, so a call that starts or ends in between skews one
        reading by one. Two readings in a row that agree are taken as exact (an idle or steady server);
        otherwise None, and the caller keeps what it had.
        """
        readings = []
        for _ in range(2):
            open_calls = self.calls_open()
            open_streams = None if open_calls is None else self.streams_open()
            if open_calls is None or open_streams is None:
                return None
            readings.append(max(0, open_calls - open_streams))
        return readings[0] if readings[0] == readings[1] else None

    def _server(self) -> int | None:
        if self._server_id is None:
            servers = self._read("channelz_get_servers", 0)
            if servers is None or len(servers.get("server", [])) != 1:
                return None  # not one server in this process: cannot tell which is ours
            self._server_id = int(servers["server"][0]["ref"]["serverId"])
        return self._server_id

    def _read(self, function: str, *args: int) -> dict[str, Any] | None:
        if self._cygrpc is None:
            return None
        try:
            result: dict[str, Any] = json.loads(getattr(self._cygrpc, function)(*args))
            return result
        except Exception as e:  # a private API: never let a change in it break serving
            logger.warning("cannot read gRPC's call counts (channelz %s): %s; no load shedding on gRPC's "
                           "backlog", function, e)
            self._cygrpc = None
            return None


def _started_not_ended(data: dict[str, Any], kind: str) -> int:
    # proto3 JSON: int64 as strings, zero values left out.
    started = int(data.get(f"{kind}Started", 0))
    return started - int(data.get(f"{kind}Succeeded", 0)) - int(data.get(f"{kind}Failed", 0))


class Shedder:
    """Decides, call by call, whether to refuse at once because gRPC holds a long queue of calls.

    ``update`` takes a reading (the frontend calls it every few tens of milliseconds): the call counts
    bound the backlog from above cheaply; only when the bound is past SHED_FROM are the exact stream
    counts read. Calls gRPC cancelled in its queue stay open in the call counts forever: their number
    (call counts minus stream counts) is kept as an offset, so that a past overload does not leave the
    bound stuck high.
    """

    def __init__(self, backlog: GrpcBacklog | None = None, core_limit: int = 1000) -> None:
        self.backlog = backlog or GrpcBacklog()
        self.shed_from = int(core_limit * SHED_FROM_FRACTION)
        self.shed_all = max(self.shed_from + 1, int(core_limit * SHED_ALL_FRACTION))
        self.waiting = 0  # calls waiting inside gRPC at the last reading
        self.share = 0.0  # of new calls, refused at once
        self.shed = 0
        self._cancelled_in_queue = 0
        self._cancelled_seen = 0
        self._cancelled_lock = threading.Lock()  # read by the metrics exporter's thread too
        self._quiet_until = 0.0

    def cancelled_by_grpc(self, tries: int = 1) -> int:
        """Calls gRPC core cancelled in its queue so far (read now, up to ``tries`` times; never decreases)."""
        with self._cancelled_lock:
            for _ in range(tries):
                cancelled = self.backlog.cancelled_in_queue()
                if cancelled is not None:  # it never goes down (a counter), nor stays up on a skewed reading
                    self._cancelled_seen = max(self._cancelled_seen, cancelled)
                    break
            return self._cancelled_seen

    def refuses(self) -> bool:
        if self.share and (self.share >= 1.0 or random.random() < self.share):
            self.shed += 1
            return True
        return False

    def update(self, in_handlers: int) -> bool:
        """Read gRPC's counts, given how many calls our handlers hold; False if they cannot be read."""
        open_calls = self.backlog.calls_open()
        if open_calls is None:
            return False
        bound = open_calls - self._cancelled_in_queue - in_handlers
        if bound <= self.shed_from:
            self.waiting, self.share = max(0, bound), 0.0
            return True
        open_streams = self.backlog.streams_open()
        if open_streams is None:
            return False
        self._cancelled_in_queue = max(0, open_calls - open_streams)
        self.waiting = max(0, open_streams - in_handlers)
        self.share = min(1.0, max(0.0, (self.waiting - self.shed_from) / (self.shed_all - self.shed_from)))
        now = time.monotonic()
        if self.share and now >= self._quiet_until:  # under overload this flips every few ms: say it rarely
            logger.warning("overloaded: %d calls waiting inside gRPC, shedding new calls (%d shed so far)",
                           self.waiting, self.shed)
            self._quiet_until = now + 5.0
        return True
