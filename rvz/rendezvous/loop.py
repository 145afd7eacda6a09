"""The rendezvous process: learns every request from the input stream, PULLs every
score, and answers each request through the frontend named in its return address.

A single synchronous loop: poll both sockets, drain each in a batch, then fire
due timers. Sub-millisecond timer waits use a short sleep because ZeroMQ's poll
only has millisecond resolution (and a zero timeout would spin a core).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import zmq
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.trace import Span

from rvz.admin.handler import AdminHandler
from rvz.admin.state import AdminState
from rvz.config import Config
from rvz.log.writer import LogWriter
from rvz.rendezvous.live_stats import StatsBook
from rvz.rendezvous.matcher import Matcher
from rvz.telemetry import metrics, tracing
from rvz.telemetry.setup import Telemetry
from rvz.telemetry.throttle import passed_milestone
from rvz.wire import codec, streams
from rvz.wire.model_registry import ModelRegistry
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)

MAX_POLL_MS = 100
# Messages taken from a socket per loop pass. Log records and answers are written and sent at the end of
# a pass, so this also bounds how long an answer waits for the rest of its pass.
DRAIN_BATCH = 64
SCORE_FIELD_TAG = envelope_pb2.ScoreRecord.SCORE_FIELD_NUMBER << 3 | 2  # wire type 2: length-delimited


@dataclass
class Counters:
    requests: int = 0
    scores: int = 0
    late: int = 0
    orphans: int = 0
    answered: int = 0
    timeouts: int = 0
    defaults: int = 0
    failed: int = 0
    fallbacks: int = 0
    undeliverable: int = 0
    malformed: int = 0
    # Keyed by (use case, model, role) and (use case, model, rule) for the metrics.
    scores_by: Counter[tuple[str, ...]] = field(default_factory=Counter)
    late_by: Counter[tuple[str, ...]] = field(default_factory=Counter)
    errors_by: Counter[tuple[str, ...]] = field(default_factory=Counter)
    answers_by: Counter[tuple[str, ...]] = field(default_factory=Counter)


class Rendezvous:
    def __init__(self, config: Config, telemetry: Telemetry | None = None) -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry("rvz-rendezvous")
        self.tracer = self.telemetry.tracer
        self._spans: dict[str, Span] = {}
        self.should_exit = threading.Event()
        self.counters = Counters()
        # Requests the rendezvous never received (its queue on the requests stream was full).
        self.gaps = streams.Gaps()
        self.models = ModelRegistry(config.frontend.model_timeout_ms)
        self.admin_state = AdminState(config.rendezvous, config.log.dir)
        self.stats = StatsBook(config.drift.threshold)
        self.admin = AdminHandler(self.admin_state, self.models, self.stats)
        self.matcher = Matcher(self, self.admin_state.policy_for, config.rendezvous.early_score_ms,
                               self.models.live_count)
        # (use case, policy version, role, model) -> end of the first window accepting it, in ns (or None).
        self._on_time_ns: dict[tuple[str, int, str, str], int | None] = {}
        log_dir = Path(config.log.dir)
        segment_bytes = config.log.segment_mb * 1024 * 1024
        sync_delay_s = config.log.sync_every_ms / 1000
        self.scores_log = LogWriter(log_dir / "scores", "rvz.v1.ScoreRecord", segment_bytes=segment_bytes,
                                    fsync=config.log.fsync, sync_delay_s=sync_delay_s)
        self.results_log = LogWriter(log_dir / "results", "rvz.v1.ResultEnvelope", segment_bytes=segment_bytes,
                                     fsync=config.log.fsync, sync_delay_s=sync_delay_s)
        self._router: zmq.Socket[bytes] | None = None
        # What the current loop pass logged and answered: written with one write() per log, then sent.
        self._score_records: list[bytes] = []
        self._result_records: list[bytes] = []
        # Results by the frontend to send them to: one message each per pass.
        self._answers: dict[bytes, list[bytes]] = {}
        # The score being handled and the bytes it arrived as (b"" once they no longer match it).
        self._score_bytes: tuple[envelope_pb2.ScoreEnvelope, bytes] | None = None
        self._latency: Histogram | None = None
        if self.telemetry.meter is not None:
            self._observe(self.telemetry.meter)

    def _observe(self, meter: Meter) -> None:
        c = self.counters
        keys = ("use_case", "model", "role")
        metrics.count_by(meter, "rvz.rendezvous.scores", "Scores received", c.scores_by, keys)
        metrics.count_by(meter, "rvz.rendezvous.late_scores", "Scores received after the answer", c.late_by, keys)
        metrics.count_by(meter, "rvz.rendezvous.model_errors", "Error scores", c.errors_by, keys)
        metrics.count_by(meter, "rvz.rendezvous.answers", "Answers by model and rule", c.answers_by,
                         ("use_case", "model", "rule"))
        for name, description, read in [
            ("rvz.rendezvous.requests", "Requests seen on the input stream", lambda: c.requests),
            ("rvz.rendezvous.fallbacks", "Answers not given by a champion", lambda: c.fallbacks),
            ("rvz.rendezvous.deadline_misses", "Requests with no acceptable score by the deadline",
             lambda: c.timeouts),
            ("rvz.rendezvous.defaults", "Default outputs served", lambda: c.defaults),
            ("rvz.rendezvous.all_failed", "Requests on which every live model failed", lambda: c.failed),
            ("rvz.rendezvous.orphan_scores", "Scores whose request never arrived", lambda: c.orphans),
            ("rvz.rendezvous.undeliverable", "Answers (and Admin replies) a frontend could not take: it was gone "
             "or not reading",
             lambda: c.undeliverable),
            ("rvz.rendezvous.malformed", "Messages that could not be decoded", lambda: c.malformed),
        ]:
            metrics.count(meter, name, description, read)
        metrics.gauge(meter, "rvz.rendezvous.pending", "Requests waiting for a decision",
                      lambda: len(self.matcher.pending))
        metrics.gauge_by(meter, "rvz.rendezvous.divergence", "Distance of each model's recent outputs from the "
                         "canary's (Jensen-Shannon for labels, KS for numbers; -1: no figure)", self.stats.divergence,
                         ("use_case", "model", "version"))
        metrics.observe_logs(meter, {"scores": self.scores_log, "results": self.results_log})
        self._latency = metrics.latency_histogram(meter, "rvz.rendezvous.score.latency",
                                                  "From the frontend receiving a request to a score arriving")

    def run(self) -> None:
        """Serve until ``should_exit`` is set; logs are flushed and synced on the way out."""
        s = self.config.streams
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.scores_log.start()
        self.results_log.start()
        sub = streams.subscriber(ctx, s.requests, s.high_water_mark, [b""])
        pull = streams.score_puller(ctx, s.scores, s.high_water_mark)
        self._router = streams.result_router(ctx, s.results, s.high_water_mark)
        logger.info("rendezvous listening: requests %s, scores %s, results %s", s.requests, s.scores, s.results)
        try:
            self._loop(sub, pull)
        finally:
            self._flush()
            for sock in (sub, pull, self._router):
                sock.close()
            ctx.term()
            self.scores_log.stop()
            self.results_log.stop()
            logger.info("rendezvous stopped: %s", self.counters)

    def _loop(self, sub: zmq.Socket[bytes], pull: zmq.Socket[bytes]) -> None:
        assert self._router is not None
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        poller.register(self._router, zmq.POLLIN)
        matcher = self.matcher
        drift_every_ns = int(self.config.drift.check_s * 1e9)
        next_drift_check = time.time_ns() + drift_every_ns
        while not self.should_exit.is_set():
            events = dict(poller.poll(self._poll_timeout_ms()))
            # Requests first, so a score and its request drained together meet without the early buffer.
            self._drain_requests(sub)
            self._drain_scores(pull)
            now = time.time_ns()
            matcher.on_time(now)
            self._flush()
            if self._router in events:
                self._drain_admin(self._router)
            if now >= next_drift_check:
                self.stats.check_drift()
                next_drift_check = now + drift_every_ns

    def _flush(self) -> None:
        """Log the pass's scores and results, then send its answers: an answer is never sent unlogged."""
        if self._score_records:
            self.scores_log.append_many(self._score_records)
            self._score_records.clear()
        if self._result_records:
            self.results_log.append_many(self._result_records)
            self._result_records.clear()
        for address, results in self._answers.items():
            self._send(address, streams.RESULT, *results)
        self._answers.clear()

    def _poll_timeout_ms(self) -> int:
        next_ns = self.matcher.next_timer_ns()
        if next_ns is None:
            return MAX_POLL_MS
        wait_ns = next_ns - time.time_ns()
        if wait_ns <= 0:
            return 0
        if wait_ns < 1_000_000:
            time.sleep(wait_ns / 1e9)  # sub-ms precision that poll() cannot give
            return 0
        # Round down: the next pass sleeps off the sub-ms rest, so a window fires on time, not up to 1 ms late.
        return min(MAX_POLL_MS, wait_ns // 1_000_000)

    def _messages(self, sock: zmq.Socket[bytes], frames: int) -> Iterator[list[bytes]]:
        """Up to DRAIN_BATCH queued messages of at least ``frames`` frames; others are counted as malformed."""
        for _ in range(DRAIN_BATCH):
            try:
                message = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(message) >= frames:
                yield message
            else:
                self.counters.malformed += 1

    def _drain_requests(self, sub: zmq.Socket[bytes]) -> None:
        """Messages of [topic, request, request, ...]: frontends publish a loop pass's requests together."""
        for topic, *payloads in self._messages(sub, 2):
            if topic == streams.CONTROL_TOPIC:
                self._answer_probe(payloads[0])
                continue
            sequence, *requests = payloads
            self.gaps.note(topic, sequence, len(requests))
            for payload in requests:
                self._on_request(payload)

    def _on_request(self, payload: bytes) -> None:
        request = self._decode(envelope_pb2.RequestEnvelope, payload, "request envelope")
        if request is None:
            return
        self.counters.requests += 1
        now = time.time_ns()
        if self.tracer is not None and request.trace_context:
            self._trace_request(request, now)
        self.matcher.on_request(request, now)

    def _drain_scores(self, pull: zmq.Socket[bytes]) -> None:
        """Messages of [SCORE, score, score, ...] (workers send several at once) or [ANNOUNCE, control]."""
        for kind, *payloads in self._messages(pull, 2):
            if kind == streams.SCORE:
                for payload in payloads:
                    self._on_score(payload)
            elif kind == streams.ANNOUNCE:
                self._on_announce(payloads[0])
            else:
                self.counters.malformed += 1

    def _on_score(self, payload: bytes) -> None:
        score = self._decode(envelope_pb2.ScoreEnvelope, payload, "score envelope")
        if score is None:
            return
        self.counters.scores += 1
        if self.admin_state.roles and not score.replayed:  # promotions override a worker's own role
            role = self.admin_state.role_of(score.use_case, score.model_name, score.role)
            if role != score.role:
                score.role = role
                payload = b""  # the bytes no longer say what the score is
        self._score_bytes = (score, payload)
        try:
            if score.replayed:  # from `rvz replay`: archived traffic, for the logs only
                self.log_score(score, time.time_ns(), late=False, orphan=False)
            else:
                self.matcher.on_score(score, time.time_ns())
        finally:
            self._score_bytes = None

    def _drain_admin(self, router: zmq.Socket[bytes]) -> None:
        """Admin calls forwarded by frontends: [frontend id, ADMIN, AdminCall]."""
        for address, kind, payload, *_ in self._messages(router, 3):
            call = self._decode(envelope_pb2.AdminCall, payload, "admin call")
            if call is not None and kind == streams.ADMIN:
                self._send(address, streams.ADMIN, self.admin.handle(call).SerializeToString())

    def _trace_request(self, request: envelope_pb2.RequestEnvelope, now: int) -> None:
        rid = request.request_id
        if rid in self._spans or rid in self.matcher.answered:
            return  # a duplicate delivery, ignored by the matcher too
        assert self.tracer is not None
        span = tracing.start_decision(self.tracer, request.trace_context, rid, request.use_case, now)
        if span is not None:
            self._spans[rid] = span

    def _on_announce(self, payload: bytes) -> None:
        announce = self._decode(envelope_pb2.Control, payload, "announce")
        if announce is None:
            return
        if self.models.saw(announce.model, time.time_ns()):
            m = announce.model
            logger.info("model %s v%s (%s) of use case %r is live (worker %s)", m.name, m.version, m.role,
                        m.use_case, m.worker_id)
        # Tell the probing frontend: the whole path frontend -> model -> rendezvous -> frontend works.
        self._send(announce.frontend_id, streams.CONTROL, payload)

    def _answer_probe(self, payload: bytes) -> None:
        probe = self._decode(envelope_pb2.Control, payload, "probe")
        if probe is None:
            return
        ready = envelope_pb2.Control(kind=envelope_pb2.Control.RENDEZVOUS_READY, frontend_id=probe.frontend_id,
                                     sent_unix_ns=time.time_ns(), deadlines_ms=self.admin_state.deadlines_ms())
        self._send(probe.frontend_id, streams.CONTROL, ready.SerializeToString())

    def _decode(self, message_type: type[streams.M], payload: bytes, what: str) -> streams.M | None:
        message = streams.decode(message_type, payload, what)
        if message is None:
            self.counters.malformed += 1
        return message

    def _send(self, address: bytes, kind: bytes, *payloads: bytes) -> bool:
        assert self._router is not None
        try:
            self._router.send_multipart([address, kind, *payloads], zmq.NOBLOCK)
            return True
        except zmq.ZMQError as e:  # EHOSTUNREACH: that frontend is gone; EAGAIN: it is not reading
            if kind == streams.CONTROL:
                # Readiness news for a frontend that went away, as every frontend that stops leaves some (its
                # last probe's answers): nothing is lost, and it probes again if it comes back.
                return False
            before = self.counters.undeliverable
            self.counters.undeliverable += len(payloads)
            if passed_milestone(before, self.counters.undeliverable):
                logger.warning("cannot deliver to frontend %r: %s (%d messages so far)", address, e.strerror,
                               self.counters.undeliverable)
            return False

    # --- Sink: called by the matcher --------------------------------------------------------

    def log_score(self, score: envelope_pb2.ScoreEnvelope, received_ns: int, *, late: bool, orphan: bool) -> None:
        record = envelope_pb2.ScoreRecord(received_unix_ns=received_ns, late=late, orphan=orphan)
        if self._score_bytes is not None and self._score_bytes[0] is score and self._score_bytes[1]:
            # The score as the worker encoded it, spliced in as field 1 rather than copied and re-encoded.
            self._score_records.append(codec.embed(SCORE_FIELD_TAG, self._score_bytes[1]) + record.SerializeToString())
        else:
            record.score.CopyFrom(score)
            self._score_records.append(record.SerializeToString())
        c = self.counters
        key = (score.use_case, score.model_name, score.role)
        c.scores_by[key] += 1
        if score.error:
            c.errors_by[key] += 1
        if late:
            c.late += 1
            c.late_by[key] += 1
        c.orphans += orphan
        if not score.replayed:
            self._note_timing(score, received_ns)
        if self.tracer is not None and score.trace_context:
            tracing.record_score(self.tracer, score.trace_context, score.request_id, score.model_name, score.role,
                                 late, score.error_type, received_ns)

    def _note_timing(self, score: envelope_pb2.ScoreEnvelope, received_ns: int) -> None:
        """Arrival latency and on-time-ness of a live score, for `rvz models` and the latency metric."""
        request_received = self.matcher.received_ns(score.request_id)
        latency_ms = math.nan if request_received is None else (received_ns - request_received) / 1e6
        on_time = None
        if request_received is not None:
            window_end = self._window_end_ns(score)
            on_time = None if window_end is None else received_ns - request_received <= window_end
        self.stats.on_score(score, received_ns, latency_ms, on_time)
        if self._latency is not None and request_received is not None:
            self._latency.record(latency_ms, {"use_case": score.use_case, "model": score.model_name,
                                              "role": score.role})

    def _window_end_ns(self, score: envelope_pb2.ScoreEnvelope) -> int | None:
        policy = self.admin_state.policy_for(score.use_case)
        key = (score.use_case, policy.version, score.role, score.model_name)
        if key not in self._on_time_ns:
            self._on_time_ns[key] = policy.acceptance_end_ns(score.role, score.model_name)
        return self._on_time_ns[key]

    def answer(self, request: envelope_pb2.RequestEnvelope, result: envelope_pb2.ResultEnvelope) -> None:
        payload = result.SerializeToString()
        # Logged before it is sent (see _flush), as requests are: the results log never misses an answer.
        self._result_records.append(payload)
        self._answers.setdefault(request.return_address, []).append(payload)
        c = self.counters
        c.answered += 1
        if result.rule == "timeout":
            c.timeouts += 1
        elif result.rule == "default":
            c.defaults += 1
            c.timeouts += 1
        elif result.rule == "all failed":
            c.failed += 1
        elif result.role != "champion":
            c.fallbacks += 1
        c.answers_by[(result.use_case, result.model_name, result.rule)] += 1
        if result.model_name:
            self.stats.on_answer(result.use_case, result.model_name, result.model_version)
        span = self._spans.pop(result.request_id, None)
        if span is not None:
            tracing.end_decision(span, result.rule, result.model_name, result.role, result.elapsed_ms,
                                 result.status_code, result.status_message, result.decided_unix_ns)
