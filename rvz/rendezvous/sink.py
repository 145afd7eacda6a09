"""Where the matcher's scores and decisions go in the rendezvous: the scores and results logs, the
counters, the live figures, the decision spans, and the answers to send.

Records and answers are batched per loop pass: the loop calls ``flush`` once per pass, which writes
each log with one append and only then sends the answers, so an answer is never sent before its record
was written. A log that cannot be written (a full or failing disk) does not stop the answers: the
request's record is in the request log already, and the records lost are counted (``unlogged_*``) and
warned about; the writer tries again with the next pass, so logging resumes as soon as space returns.
"""

from __future__ import annotations

import logging
from pathlib import Path

from opentelemetry.trace import Span, Tracer

from rvz.config import LogConfig
from rvz.errors import LogError
from rvz.log.naming import log_name
from rvz.log.writer import LogWriter
from rvz.rendezvous.counters import Counters
from rvz.rendezvous.live_stats import StatsBook
from rvz.rendezvous.outcome import LABELS
from rvz.rendezvous.router import Send
from rvz.rendezvous.timing import ScoreTiming
from rvz.telemetry import tracing
from rvz.telemetry.throttle import ThrottledLog
from rvz.wire import codec, streams
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)
SCORE_FIELD_TAG = envelope_pb2.ScoreRecord.SCORE_FIELD_NUMBER << 3 | 2  # wire type 2: length-delimited


def open_logs(config: LogConfig, rendezvous: str = "") -> tuple[LogWriter, LogWriter]:
    """The scores and results logs of the rendezvous named ``rendezvous`` (``rvz.log.naming``), not started."""
    def writer(name: str, message_type: str) -> LogWriter:
        return LogWriter(Path(config.dir) / log_name(name, rendezvous), message_type,
                         segment_bytes=config.segment_mb * 1024 * 1024, fsync=config.fsync,
                         sync_delay_s=config.sync_every_ms / 1000)

    return writer("scores", "rvz.v1.ScoreRecord"), writer("results", "rvz.v1.ResultEnvelope")


class DecisionSink:
    """The matcher's ``Sink`` in the rendezvous. Single-threaded: call only from the loop's thread,
    between ``start`` and ``stop`` of the logs for anything that is flushed."""

    def __init__(self, config: LogConfig, counters: Counters, stats: StatsBook, timing: ScoreTiming,
                 tracer: Tracer | None = None, rendezvous: str = "") -> None:
        self.scores_log, self.results_log = open_logs(config, rendezvous)
        self.counters = counters
        self.stats = stats
        self.timing = timing
        self.tracer = tracer
        self._spans: dict[str, Span] = {}
        # What the current loop pass logged and answered: written with one append per log, then sent.
        self._score_records: list[bytes] = []
        self._result_records: list[bytes] = []
        # Results by the frontend to send them to: one message each per pass.
        self._answers: dict[bytes, list[bytes]] = {}
        self._unwritable = ThrottledLog(logger)
        self.max_message_bytes = streams.MAX_MESSAGE_BYTES

    def start(self) -> None:
        self.scores_log.start()
        self.results_log.start()

    def stop(self) -> None:
        """Flush and sync both logs; call after the last ``flush``."""
        self.scores_log.stop()
        self.results_log.stop()

    # --- the matcher's outputs -------------------------------------------------------------------

    def log_score(self, score: envelope_pb2.ScoreEnvelope, raw: bytes, received_ns: int,
                  request_received_ns: int | None, *, late: bool, orphan: bool) -> None:
        """Queue the score's record (``raw``, when given, must be ``score`` as it arrived: it is spliced
        in as is), count it, and note its timing if it is live."""
        record = envelope_pb2.ScoreRecord(received_unix_ns=received_ns, late=late, orphan=orphan)
        if raw:
            # The score as the worker encoded it, spliced in as field 1 rather than copied and re-encoded.
            self._score_records.append(codec.embed(SCORE_FIELD_TAG, raw) + record.SerializeToString())
        else:
            record.score.CopyFrom(score)
            self._score_records.append(record.SerializeToString())
        self._count_score(score, late, orphan)
        if not score.replayed:
            self.timing.note(score, received_ns, request_received_ns)
        if self.tracer is not None and score.trace_context:
            tracing.record_score(self.tracer, score.trace_context, score.request_id, score.model_name, score.role,
                                 late, score.error_type, received_ns)

    def answer(self, request: envelope_pb2.RequestEnvelope, result: envelope_pb2.ResultEnvelope) -> None:
        """Queue the result for the results log and for the frontend holding the call; count it by outcome."""
        payload = result.SerializeToString()
        self._result_records.append(payload)
        self._answers.setdefault(request.return_address, []).append(payload)
        self._count_answer(result)
        if result.model_name:
            self.stats.on_answer(result.use_case, result.model_name, result.model_version)
        span = self._spans.pop(result.request_id, None)
        if span is not None:
            tracing.end_decision(span, result.rule, result.model_name, result.role, result.elapsed_ms,
                                 result.status_code, result.status_message, result.decided_unix_ns)

    # --- the loop's calls ------------------------------------------------------------------------

    def start_decision(self, request: envelope_pb2.RequestEnvelope, now: int) -> None:
        """Open the decision span of a traced request; call once, before the matcher sees the request."""
        assert self.tracer is not None
        span = tracing.start_decision(self.tracer, request.trace_context, request.request_id, request.use_case, now)
        if span is not None:
            self._spans[request.request_id] = span

    def flush(self, send: Send) -> None:
        """Log the pass's scores and results, then send its answers. Idempotent: a second call does nothing."""
        if self._score_records:
            self.counters.unlogged_scores += self._append(self.scores_log, self._score_records)
        if self._result_records:
            self.counters.unlogged_results += self._append(self.results_log, self._result_records)
        for address, results in self._answers.items():
            for batch in streams.batches(results, self.max_message_bytes, len):
                send(address, streams.RESULT, *batch)
        self._answers.clear()

    def _append(self, log: LogWriter, records: list[bytes]) -> int:
        """Append and clear ``records``; returns how many could not be written."""
        try:
            log.append_many(records)
            lost = 0
        except LogError as e:
            lost = len(records)
            self._unwritable.warning(str(log.directory), "%d records not written to %s: %s (counted in "
                                     "rvz_rendezvous_unlogged_*; answers go on)", lost, log.directory, e)
        records.clear()
        return lost

    # --- counting --------------------------------------------------------------------------------

    def _count_score(self, score: envelope_pb2.ScoreEnvelope, late: bool, orphan: bool) -> None:
        c = self.counters
        key = (score.use_case, score.model_name, score.role)
        c.scores_by[key] += 1
        if score.error:
            c.errors_by[key] += 1
        if late:
            c.late += 1
            c.late_by[key] += 1
        c.orphans += orphan

    def _count_answer(self, result: envelope_pb2.ResultEnvelope) -> None:
        c = self.counters
        outcome = result.outcome
        c.decisions[outcome] += 1
        if outcome == envelope_pb2.ResultEnvelope.ANSWERED and result.role != "champion":
            c.fallbacks += 1
        c.answers_by[(result.use_case, result.model_name, result.rule, LABELS[outcome])] += 1
