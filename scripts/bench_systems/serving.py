"""What the two baseline servers share: the event loop, the ready line, stopping on a signal."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any

import grpc

# Printed on stdout once the server listens (with the bound HOST:PORT); the harness waits for it.
READY_PREFIX = "bench server listening on "


def run(main: Coroutine[Any, Any, None]) -> None:
    """The same event loop as the rvz frontend (uvloop when installed), so the comparison is like for like."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def new_server() -> grpc.aio.Server:
    # SO_REUSEPORT off: a second server on the same port must fail, not steal connections.
    return grpc.aio.server(options=[("grpc.so_reuseport", 0)])


async def serve_until_signal(server: grpc.aio.Server, listen: str) -> None:
    port = server.add_insecure_port(listen)
    if port == 0:
        raise SystemExit(f"cannot listen on {listen}")
    await server.start()
    print(f"{READY_PREFIX}{listen.rsplit(':', 1)[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)
