"""The rendezvous's sink (rvz.rendezvous.sink) fed by a real Matcher: counters by outcome, the logs, the answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rvz.config import LogConfig, OnTimeout, RendezvousConfig, Window
from rvz.log.reader import iter_records
from rvz.rendezvous.counters import Counters
from rvz.rendezvous.live_stats import StatsBook
from rvz.rendezvous.matcher import Matcher
from rvz.rendezvous.outcome import Outcome
from rvz.rendezvous.policy import Policy
from rvz.rendezvous.sink import DecisionSink
from rvz.rendezvous.timing import ScoreTiming
from rvz.wire import streams
from rvz.wire.codec import python_to_value
from rvz.wire.proto import envelope_pb2

pytestmark = pytest.mark.timeout(30)

MS = 1_000_000
T0 = 1_700_000_000_000_000_000
SCHEDULE = (Window(30.0, ("champion",)), Window(100.0, ("champion", "challenger")))


class Parts:
    """A sink and the matcher that feeds it, as the rendezvous wires them (no sockets)."""

    def __init__(self, root: Path, on_timeout: OnTimeout = "error") -> None:
        config = RendezvousConfig(deadline_ms=100.0, on_timeout=on_timeout,
                                  default_output={"label": "unknown"} if on_timeout == "default" else None,
                                  schedule=SCHEDULE)
        policy = Policy.from_config(config)
        self.counters = Counters()
        self.stats = StatsBook(0.5)
        timing = ScoreTiming(self.stats, lambda use_case: policy)
        self.sink = DecisionSink(LogConfig(dir=str(root), fsync=False), self.counters, self.stats, timing)
        self.matcher = Matcher(self.sink, lambda use_case: policy, 1000.0, lambda use_case: 2)
        self.sent: list[tuple[bytes, bytes, tuple[bytes, ...]]] = []
        self.root = root

    def send(self, address: bytes, kind: bytes, *payloads: bytes) -> bool:
        self.sent.append((address, kind, payloads))
        return True

    def request(self, rid: str, frontend: bytes = b"fe-1") -> None:
        self.matcher.on_request(envelope_pb2.RequestEnvelope(
            request_id=rid, use_case="fraud", received_unix_ns=T0, deadline_unix_ns=T0 + 100 * MS,
            return_address=frontend), T0)

    def score(self, rid: str, model: str, role: str, at_ms: float, error: str = "") -> bytes:
        envelope = envelope_pb2.ScoreEnvelope(request_id=rid, use_case="fraud", model_name=model, model_version="1",
                                              role=role, error=error)
        if not error:
            python_to_value({"model": model}, envelope.output)
        raw = envelope.SerializeToString()
        self.matcher.on_score(envelope, T0 + int(at_ms * MS), raw)
        return raw

    def log(self, name: str) -> list[bytes]:
        return [record.payload for record in iter_records(self.root / name)]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    parts = Parts(tmp_path)
    parts.sink.start()
    yield parts
    parts.sink.stop()  # idempotent: a test may have stopped it to read the logs


def decide_one_of_each(parts: Parts) -> None:
    """r1 answered by the champion, r2 by the challenger (a fallback), r3 failed by both, r4 timed out."""
    for rid in ("r1", "r2", "r3", "r4"):
        parts.request(rid)
    parts.score("r1", "gbm", "champion", 5)
    parts.score("r2", "logreg", "challenger", 40)
    parts.score("r3", "gbm", "champion", 6, error="boom")
    parts.score("r3", "logreg", "challenger", 7, error="boom")
    parts.matcher.on_time(T0 + 100 * MS)


def test_counts_each_decision_by_its_outcome(parts: Parts) -> None:
    decide_one_of_each(parts)
    c = parts.counters
    assert [c.of(o) for o in Outcome] == [2, 0, 1, 1]
    assert (c.answered, c.deadline_misses, c.fallbacks) == (4, 1, 1)
    assert c.answers_by == {
        ("fraud", "gbm", "window 1 (0-30 ms): champion", "answered"): 1,
        ("fraud", "logreg", "window 2 (30-100 ms): challenger", "answered"): 1,
        ("fraud", "", "all failed", "failed"): 1,
        ("fraud", "", "timeout", "timeout"): 1,
    }
    assert (c.scores_by[("fraud", "gbm", "champion")], c.errors_by[("fraud", "gbm", "champion")]) == (2, 1)
    assert "answered 2, default 0, timeout 1, failed 1 (1 fallbacks)" in c.summary()


def test_a_default_output_counts_as_a_default_and_a_deadline_miss(tmp_path: Path) -> None:
    parts = Parts(tmp_path, on_timeout="default")
    parts.request("r1")
    parts.matcher.on_time(T0 + 100 * MS)
    c = parts.counters
    assert (c.of(Outcome.DEFAULT), c.of(Outcome.TIMED_OUT), c.deadline_misses, c.fallbacks) == (1, 0, 1, 0)


def test_flush_logs_every_result_with_its_outcome_then_sends_one_message_per_frontend(parts: Parts) -> None:
    parts.request("r1", b"fe-1")
    parts.request("r2", b"fe-2")
    parts.request("r3", b"fe-1")
    parts.score("r1", "gbm", "champion", 5)
    parts.score("r2", "gbm", "champion", 5)
    parts.matcher.on_time(T0 + 100 * MS)  # r3 times out
    assert parts.sent == []  # nothing leaves before the pass is flushed
    parts.sink.flush(parts.send)
    parts.sink.flush(parts.send)  # idempotent
    parts.sink.stop()
    results = [envelope_pb2.ResultEnvelope.FromString(p) for p in parts.log("results")]
    assert [(r.request_id, r.outcome) for r in results] == [
        ("r1", Outcome.ANSWERED), ("r2", Outcome.ANSWERED), ("r3", Outcome.TIMED_OUT)]
    assert [(address, kind, len(payloads)) for address, kind, payloads in parts.sent] == [
        (b"fe-1", streams.RESULT, 2), (b"fe-2", streams.RESULT, 1)]
    assert {p for _, _, payloads in parts.sent for p in payloads} == set(parts.log("results"))


def test_a_score_record_splices_the_raw_bytes_as_if_it_were_encoded(parts: Parts) -> None:
    parts.request("r1")
    raw = parts.score("r1", "gbm", "champion", 5)
    promoted = envelope_pb2.ScoreEnvelope.FromString(raw)
    promoted.role = "challenger"  # as a promotion rewrites it: no bytes to splice
    parts.matcher.on_score(promoted, T0 + 6 * MS, b"")
    parts.sink.flush(parts.send)
    parts.sink.stop()
    spliced, encoded = (envelope_pb2.ScoreRecord.FromString(p) for p in parts.log("scores"))
    assert spliced.score == envelope_pb2.ScoreEnvelope.FromString(raw) and not spliced.late
    assert encoded.score == promoted and encoded.late
    assert parts.log("scores")[0] == envelope_pb2.ScoreRecord(
        score=envelope_pb2.ScoreEnvelope.FromString(raw), received_unix_ns=T0 + 5 * MS).SerializeToString()


def test_live_scores_feed_latency_and_on_time_figures(parts: Parts) -> None:
    parts.request("r1")
    parts.score("r1", "gbm", "champion", 12)
    parts.score("r1", "logreg", "challenger", 150)  # late: after the answer, and after its window
    figures = {name: parts.stats.figures(("fraud", name, "1"), T0 + 200 * MS) for name in ("gbm", "logreg")}
    assert (figures["gbm"].latency_p50_ms, figures["gbm"].on_time_pct, figures["gbm"].times_chosen) == (12, 100, 1)
    assert (figures["logreg"].latency_p50_ms, figures["logreg"].on_time_pct) == (150, 0)
