"""Where each writer of a deployment's data directory writes: one log directory per writer.

A log has one writer (its LOCK). When a deployment runs several processes of a kind, each writes its own
copy of that kind's logs: the first (or only) one ``LOG``, the one named NAME ``LOG.NAME`` (frontends:
``requests.NAME``, ``feedback.NAME``; rendezvous i >= 1: ``scores.i``, ``results.i``, ``policies.i``,
``audit.i``). Readers find them all with ``rvz.log.dirs.log_dirs``.
"""

from __future__ import annotations

import re

# A writer's name: a frontend's (`rvz frontend --name`), or a rendezvous's index. It names directories.
WRITER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def log_name(log: str, writer: str) -> str:
    """The directory (or file) name of the log ``log`` written by the process named ``writer`` ("" for the
    first or only one)."""
    return f"{log}.{writer}" if writer else log


def rendezvous_name(index: int) -> str:
    """The writer name of rendezvous ``index`` (from 0): "" for the first, so one rendezvous writes as ever."""
    return str(index) if index else ""
