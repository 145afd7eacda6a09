"""The logs every frontend writes one of (requests, feedback), found and read together.

The unnamed frontend writes DATA/requests and DATA/feedback; a frontend named NAME writes DATA/requests.NAME
and DATA/feedback.NAME (``rvz.frontend.names``). Each directory is a log of its own: its own segments, its
own writer, its own order. A reader of a deployment's requests or truths reads them all (``log_dirs``),
merged by the time each record was received (``by_time``), so that with one frontend it reads exactly what
it read before there could be several.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from rvz.log.reader import iter_records

# The logs a data directory may hold one of per frontend.
FRONTEND_LOGS = ("requests", "feedback")
# Every name rvz.frontend.names accepts (a reader need not enforce the writer's length limit).
_NAME = re.compile(r"[A-Za-z0-9_-]+")

T = TypeVar("T")


class Received(Protocol):
    """A record that says when it was received (RequestEnvelope, FeedbackRecord)."""

    @property
    def received_unix_ns(self) -> int: ...


R = TypeVar("R", bound=Received)


def log_dirs(root: Path, log: str) -> list[Path]:
    """The directories of the log ``log`` under the data directory ``root``: ``root/log`` if it is a
    directory, then every directory ``root/log.NAME`` whose NAME is a frontend's name, sorted by name.

    Never raises: an absent or unreadable ``root`` holds none (``[]``). Files are never listed, so a socket
    such as ``requests.sock`` beside the logs is not taken for one; nor is ``requests.a.b``.
    """
    found = [root / log] if (root / log).is_dir() else []
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return found
    prefix = log + "."
    return found + [path for path in entries if path.name.startswith(prefix)
                    and _NAME.fullmatch(path.name[len(prefix):]) and path.is_dir()]


def by_time(streams: Sequence[Iterable[T]], time_ns: Callable[[T], int]) -> Iterator[T]:
    """The items of every stream (one per log directory), merged by ``time_ns``; lazy.

    Each stream's own order is kept, and an item of an earlier stream goes first on a tie, so one stream
    comes out exactly as it went in. The result is in time order when every stream is (a log is in its
    writer's order, which may be slightly off its records' times: the merge still never reorders one log).
    """
    return heapq.merge(*streams, key=time_ns)


def read_by_time(root: Path, log: str, decode: Callable[[bytes], R]) -> Iterator[tuple[bytes, R]]:
    """Every record of every directory of ``log`` under ``root`` (``log_dirs``) as (payload, ``decode``d
    payload), merged by ``received_unix_ns`` (``by_time``); nothing when there is no such directory.

    Damage is skipped with a warning (``iter_records``); raises LogError if a directory cannot be read.
    """
    return by_time([_decoded(directory, decode) for directory in log_dirs(root, log)],
                   lambda record: record[1].received_unix_ns)


def _decoded(directory: Path, decode: Callable[[bytes], R]) -> Iterator[tuple[bytes, R]]:
    for record in iter_records(directory):
        yield record.payload, decode(record.payload)
