"""How many calls wait inside gRPC for the frontend to pick them up.

grpc.aio takes calls from gRPC core one at a time, on the event loop. When the
frontend cannot keep up (the machine is saturated), calls pile up inside core,
and past ``grpc.server.max_pending_requests`` (1000) core cancels them at random
with CANCELLED: refused, but not counted by rvz and not with a status a client
knows to back off from. Core counts every call it starts and ends (channelz), so
the difference with the calls rvz's handlers hold is the backlog the frontend
cannot see otherwise; the frontend sheds load while it is long, so that core's
queue stays short and every refusal is rvz's own RESOURCE_EXHAUSTED.

channelz is read through ``grpc._cython.cygrpc``, the functions the
grpcio-channelz servicer itself calls (one read is ~0.15 ms). If they are
missing in some grpcio version, the backlog reads as unknown and nothing sheds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def _channelz_reader() -> tuple[Callable[[int], Any], Callable[[int], Any]] | None:
    try:
        from grpc._cython import cygrpc
    except ImportError:
        return None
    get_servers = getattr(cygrpc, "channelz_get_servers", None)
    get_server = getattr(cygrpc, "channelz_get_server", None)
    if get_servers is None or get_server is None:
        return None
    return get_servers, get_server


class GrpcBacklog:
    """Reads, for the one gRPC server of this process, how many calls it holds that no handler has."""

    def __init__(self) -> None:
        self._reader = _channelz_reader()
        self._server_id: int | None = None
        self._warned = False

    def calls_open(self) -> int | None:
        """Calls gRPC core has started and not ended (queued, in a handler, or long-lived streams)."""
        if self._reader is None:
            return None
        get_servers, get_server = self._reader
        try:
            if self._server_id is None:
                servers = json.loads(get_servers(0)).get("server", [])
                if len(servers) != 1:
                    return None  # not one server in this process: cannot tell which is ours
                self._server_id = int(servers[0]["ref"]["serverId"])
            data = json.loads(get_server(self._server_id)).get("server", {}).get("data", {})
        except Exception as e:  # a private API: never let a change in it break serving
            if not self._warned:
                self._warned = True
                logger.warning("cannot read gRPC's call counts (channelz): %s; load shedding on gRPC's own "
                               "backlog is off", e)
            self._reader = None
            return None
        started = int(data.get("callsStarted", 0))
        ended = int(data.get("callsSucceeded", 0)) + int(data.get("callsFailed", 0))
        return started - ended

    def waiting(self, in_handlers: int) -> int | None:
        """Calls inside gRPC that no handler holds yet, given how many the handlers hold."""
        open_calls = self.calls_open()
        return None if open_calls is None else max(0, open_calls - in_handlers)
