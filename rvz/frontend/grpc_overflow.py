"""What gRPC core does with calls the frontend cannot pick up in time (``frontend.grpc_overflow``).

grpc.aio takes calls from gRPC core one at a time, on the event loop. When the
machine cannot keep up, calls queue inside core; past ``grpc.server.max_pending_requests``
(``frontend.grpc_backlog``) core turns new ones away at random, all of them at
``grpc.server.max_pending_requests_hard_limit`` (3x). That costs core almost nothing, and
it is the only refusal that keeps up at twice the saturating load: a refusal in Python
costs grpc.aio as much CPU as an answer (docs/performance.md).

How core turns them away depends on its HTTP/2 server transport (gRPC 1.85):

- ``"cancel"`` (default): the standard transport cancels them with CANCELLED. The frontend
  counts them (``rvz_frontend_cancelled_in_grpc_total``, see rvz.grpc_backlog) and sheds
  load itself before the backlog gets there, with RESOURCE_EXHAUSTED.
- ``"refuse"``: the promise-based transport (gRPC experiment ``ph2_server``) refuses them
  with RESOURCE_EXHAUSTED "Too many pending requests for this server", which clients know
  to back off from. It costs throughput at saturation (docs/performance.md), and it does not fill
  channelz's call counts, so rvz cannot count these refusals (clients see them). An
  experiment of gRPC's, so opt-in.

gRPC reads its experiments once, when it is loaded, from ``GRPC_EXPERIMENTS``: a frontend
asked for "refuse" without it in its environment re-executes itself with it (same pid).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from rvz.config import FrontendConfig

logger = logging.getLogger(__name__)

EXPERIMENT = "ph2_server"
EXPERIMENTS_ENV = "GRPC_EXPERIMENTS"
# gRPC's own ratio of its hard limit to its soft one (1000 and 3000 by default).
HARD_LIMIT_FACTOR = 3
GRPC_RECEIVE_FLOOR_BYTES = 4 * 1024 * 1024


def server_options(config: FrontendConfig, request_bytes: int, shared_port: bool = False) -> list[tuple[str, int]]:
    """gRPC's own options for the frontend's server. The frontend refuses requests past ``request_bytes``
    itself, naming limits.request_bytes; gRPC refuses what is far past it (its own 4 MiB default, or twice
    the limit) before reading it whole, with its own message. SO_REUSEPORT only with ``shared_port`` (one of
    several frontends, which may serve one port together): otherwise a second deployment on the same port
    must fail to start, not take half of the first one's connections."""
    return [("grpc.so_reuseport", int(shared_port)),
            ("grpc.server.max_pending_requests", config.grpc_backlog),
            ("grpc.server.max_pending_requests_hard_limit", config.grpc_backlog * HARD_LIMIT_FACTOR),
            ("grpc.max_receive_message_length", max(GRPC_RECEIVE_FLOOR_BYTES, 2 * request_bytes))]


def experiments_needed(config: FrontendConfig, environ: Mapping[str, str]) -> str | None:
    """The GRPC_EXPERIMENTS value this process must run with, or None if its environment already fits."""
    if config.grpc_overflow != "refuse":
        return None
    current = [e.strip() for e in environ.get(EXPERIMENTS_ENV, "").split(",") if e.strip()]
    if EXPERIMENT in current:
        return None
    return ",".join([e for e in current if e != f"-{EXPERIMENT}"] + [EXPERIMENT])


def reexec_for(config: FrontendConfig) -> None:
    """Re-execute this process with gRPC's ph2_server experiment on, if the config asks for it.

    Must run before the frontend creates anything of gRPC's; returns only when nothing is to be done.
    """
    experiments = experiments_needed(config, os.environ)
    if experiments is None:
        return
    logger.info("frontend.grpc_overflow = \"refuse\": restarting with %s=%s", EXPERIMENTS_ENV, experiments)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, {**os.environ, EXPERIMENTS_ENV: experiments})
