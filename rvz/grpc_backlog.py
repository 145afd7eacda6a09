"""How many calls wait inside gRPC for the frontend to pick them up.

grpc.aio takes calls from gRPC core one at a time, on the event loop. When the
frontend cannot keep up (the machine is saturated), calls pile up inside core,
and past ``grpc.server.max_pending_requests`` (1000) core cancels them at random
with CANCELLED: refused, but not counted by rvz and not with a status a client
knows to back off from. Core counts what it starts and ends (channelz); the
frontend compares that with the calls its handlers hold, and sheds load while
the difference is long, so that core's queue stays short and every refusal is
rvz's own RESOURCE_EXHAUSTED.

Two counts, because the cheap one lies after overload: the server's call counts
(one read, ~0.15 ms) never close a call core cancelled while it was queued, so
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
from typing import Any

logger = logging.getLogger(__name__)

SOCKETS_PER_PAGE = 100


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
