"""The logs that several writers of one data directory each write a copy of, found and read together.

A frontend writes the requests and feedback logs: the unnamed one DATA/requests and DATA/feedback, a frontend
named NAME DATA/requests.NAME and DATA/feedback.NAME. A rendezvous writes the scores, results, policies and
audit logs: rendezvous 0 DATA/scores, ..., rendezvous i >= 1 DATA/scores.i, ... (``rvz.log.naming``). Each
directory is a log of its own: its own segments, its own writer, its own order. A reader of a deployment's
log reads them all (``log_dirs``), merged by the time each record was written (``by_time``, ``TIME_FIELDS``),
so that with one writer it reads exactly what it read before there could be several.

Requests, truths, scores and results are each written by one writer (a request is decided by one rendezvous),
so the merge keeps every record. A policy change or an Admin action is carried out, and recorded, by every
live rendezvous: those logs are merged with each change once (``SAME_CHANGE``).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rvz.log.naming import WRITER_NAME
from rvz.log.reader import iter_records
from rvz.wire.proto import admin_pb2, envelope_pb2

# The logs a data directory may hold one of per frontend, and one of per rendezvous.
FRONTEND_LOGS = ("requests", "feedback")
RENDEZVOUS_LOGS = ("scores", "results", "policies", "audit")
LOGS = ("requests", "scores", "results", "feedback", "policies", "audit")
# The field of each log's records that says when it was written: the copies of a log are merged by it.
TIME_FIELDS = {"requests": "received_unix_ns", "feedback": "received_unix_ns", "scores": "received_unix_ns",
               "results": "decided_unix_ns", "policies": "changed_unix_ns", "audit": "unix_ns"}

T = TypeVar("T")


def _same_policy_change(change: envelope_pb2.PolicyChange) -> Hashable:
    # A promotion keeps the version: the kind of change tells it from the set/reset that made the version.
    return change.use_case, change.version, change.change


def _same_audit_record(record: admin_pb2.AuditRecord) -> Hashable:
    return record.who, record.action, record.use_case, record.policy_version, record.old, record.new


# The logs every live rendezvous records each change in, and what two records of one change have in common
# (everything but the time, give or take the roles a rendezvous saw live when it promoted).
SAME_CHANGE: dict[str, Callable[[Any], Hashable]] = {"policies": _same_policy_change, "audit": _same_audit_record}


def log_dirs(root: Path, log: str) -> list[Path]:
    """The directories of the log ``log`` under the data directory ``root``: ``root/log`` if it is a
    directory, then every directory ``root/log.NAME`` whose NAME is a writer's (a frontend's name, a
    rendezvous's index), sorted by name.

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
                    and WRITER_NAME.fullmatch(path.name[len(prefix):]) and path.is_dir()]


def time_of(log: str) -> Callable[[Any], int]:
    """When a record of ``log`` (one of ``LOGS``) was written, in unix ns; raises KeyError for another log."""
    field = TIME_FIELDS[log]
    return lambda record: int(getattr(record, field))


def by_time(streams: Sequence[Iterable[T]], time_ns: Callable[[T], int],
            same: Callable[[T], Hashable] | None = None) -> Iterator[T]:
    """The items of every stream (one per log directory), merged by ``time_ns``; lazy.

    Each stream's own order is kept, and an item of an earlier stream goes first on a tie, so one stream
    comes out exactly as it went in. The result is in time order when every stream is (a log is in its
    writer's order, which may be slightly off its records' times: the merge still never reorders one log).

    With ``same`` (the logs of a change every writer records, ``SAME_CHANGE``), each change comes out once,
    the earliest: the k-th item with a given key in one stream is the k-th in every other stream too (the
    same change as its writer saw it), so it is left out when k items of that key have come out already.
    Items of one stream are never left out, so a change repeated in one log (a second promotion of the same
    model) is shown again, as it was with one writer.
    """
    if same is None:
        return heapq.merge(*streams, key=time_ns)
    return _once(heapq.merge(*(_tagged(i, s) for i, s in enumerate(streams)), key=lambda t: time_ns(t[1])), same)


def read_by_time(root: Path, log: str, decode: Callable[[bytes], T]) -> Iterator[tuple[bytes, T]]:
    """Every record of every directory of ``log`` (one of ``LOGS``) under ``root`` (``log_dirs``) as
    (payload, ``decode``d payload), merged by the log's time field (``by_time``, ``TIME_FIELDS``), each
    change of the policies and audit logs once (``SAME_CHANGE``); nothing when there is no such directory.

    Damage is skipped with a warning (``iter_records``); raises LogError if a directory cannot be read.
    """
    time_ns, same = time_of(log), SAME_CHANGE.get(log)
    return by_time([_decoded(directory, decode) for directory in log_dirs(root, log)],
                   lambda record: time_ns(record[1]), None if same is None else lambda record: same(record[1]))


def _decoded(directory: Path, decode: Callable[[bytes], T]) -> Iterator[tuple[bytes, T]]:
    for record in iter_records(directory):
        yield record.payload, decode(record.payload)


def _tagged(stream: int, items: Iterable[T]) -> Iterator[tuple[int, T]]:
    for item in items:
        yield stream, item


def _once(tagged: Iterable[tuple[int, T]], same: Callable[[T], Hashable]) -> Iterator[T]:
    seen: Counter[tuple[int, Hashable]] = Counter()  # (stream, key) -> items of that key met in that stream
    shown: Counter[Hashable] = Counter()  # key -> items of that key come out
    for stream, item in tagged:
        key = same(item)
        seen[stream, key] += 1
        if seen[stream, key] > shown[key]:
            shown[key] += 1
            yield item
