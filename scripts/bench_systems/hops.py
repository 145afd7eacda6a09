"""Where rvz's time goes at 1 in flight, hop by hop, from its own logs.

Every process stamps the wall clock (one machine, one clock): the frontend when
it received the request, the worker when it started and finished scoring, the
rendezvous when the score arrived and when it decided. Medians over the calls
of one run, for the score that answered (the champion's, in the main runs).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rvz.log.reader import iter_records
from rvz.wire.proto import envelope_pb2


def breakdown(data: Path, since_ns: int) -> dict[str, float]:
    """Median milliseconds of each hop for requests received after ``since_ns``."""
    received = {r.request_id: r.received_unix_ns for r in _read(data / "requests", envelope_pb2.RequestEnvelope)
                if r.received_unix_ns >= since_ns}
    results = {r.request_id: r for r in _read(data / "results", envelope_pb2.ResultEnvelope)
               if r.request_id in received and r.status_code == 0}
    hops: dict[str, list[float]] = {"frontend -> worker": [], "model": [], "worker -> rendezvous": [],
                                    "rendezvous decides": [], "frontend received -> decided": []}
    for record in _read(data / "scores", envelope_pb2.ScoreRecord):
        score = record.score
        result = results.get(score.request_id)
        if result is None or score.model_name != result.model_name:
            continue
        hops["frontend -> worker"].append(score.started_unix_ns - received[score.request_id])
        hops["model"].append(score.finished_unix_ns - score.started_unix_ns)
        hops["worker -> rendezvous"].append(record.received_unix_ns - score.finished_unix_ns)
        hops["rendezvous decides"].append(result.decided_unix_ns - record.received_unix_ns)
        hops["frontend received -> decided"].append(result.decided_unix_ns - received[score.request_id])
    return {hop: round(statistics.median(ns) / 1e6, 3) for hop, ns in hops.items() if ns}


def _read(directory: Path, kind: Any) -> list[Any]:
    return [kind.FromString(r.payload) for r in iter_records(directory)] if directory.exists() else []
