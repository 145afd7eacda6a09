"""A model worker: SUB to the input stream, score, PUSH each score to the rendezvous.

One process per model, or several (replicas > 1): a replica subscribes only to the probes, and takes
its share of the model's requests from the rendezvous's work stream instead (rvz.rendezvous.replicas).
With several rendezvous (streams.rendezvous_processes), a worker pushes each score to the rendezvous
that decides its request (``RequestEnvelope.rendezvous``), announces itself to all of them, and a
replica takes work from every one's work stream.
The loop is synchronous on purpose: a model call blocks
anyway, and a plain poll-and-drain loop costs far less per message than asyncio.
Whatever a model does (raise, return garbage, hang on bad input) turns into an
error score; the worker keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from google.protobuf import struct_pb2
from opentelemetry.metrics import Histogram, Meter

from rvz.config import ModelConfig, StreamsConfig
from rvz.errors import EncodeError, InvalidRequest, OutputTooLarge
from rvz.log.writer import LogWriter
from rvz.process.heartbeat import Heartbeat
from rvz.security.process import ProcessKeys
from rvz.telemetry import metrics, tracing
from rvz.telemetry.setup import Telemetry
from rvz.telemetry.throttle import ThrottledLog, passed_milestone
from rvz.wire import streams
from rvz.wire.codec import python_to_value, struct_to_dict
from rvz.wire.proto import envelope_pb2, scoring_pb2
from rvz.worker.contract import Contract
from rvz.worker.model import Model, Outcome

logger = logging.getLogger(__name__)

POLL_MS = 100
# Requests taken off the input stream before scoring starts on them.
DRAIN_MAX = 1024
# How long a score may wait for the scores after it to share its message.
SCORE_FLUSH_NS = 500_000
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
# A replica that hears nothing from the rendezvous's work stream this long says so.
UNHEARD_NS = 2_000_000_000
DEFAULT_MAX_MESSAGE_BYTES = streams.MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class WorkerConfig:
    model: ModelConfig
    streams: StreamsConfig
    # Where a decoy archives what it receives.
    log_dir: str
    fsync: bool = True
    # An output whose encoding is larger than this becomes an error score (limits.output_bytes).
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    # The largest stream message, taken or sent (limits.message_bytes).
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


# A serialized score and the index of the rendezvous to send it to.
Scored = tuple[int, bytes]


@dataclass
class Received:
    """A request as it arrived, decoded far enough to score it."""

    envelope: envelope_pb2.RequestEnvelope
    features: dict[str, Any] | None
    error: str = ""


class Worker:
    """Scores every request of one use case with one model."""

    def __init__(self, config: WorkerConfig, model: Model | None,
                 on_ready: Callable[[], None] | None = None, telemetry: Telemetry | None = None,
                 heartbeat: Heartbeat | None = None, restarts: int = 0, keys: ProcessKeys | None = None) -> None:
        self.config = config
        self.keys = keys or ProcessKeys(None)
        self.model = model
        self.telemetry = telemetry or Telemetry(f"rvz-model-{config.model.name}")
        self.tracer = self.telemetry.tracer
        # Called once, when the first probe arrives: from then on no request can be missed.
        self.on_ready = on_ready
        self.should_exit = threading.Event()
        self.scored = 0
        self.errors = 0
        self.dropped = 0
        self.archived = 0
        self.expired = 0
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{config.model.name}"
        self._topic = streams.topic_for(config.model.use_case)
        self._late_limit_ns = int(config.model.late_limit_ms * 1e6)
        # Written at every pass of the loop for a supervisor's watchdog (rvz.process.heartbeat).
        self.heartbeat = heartbeat
        self._info = self._model_info()
        self._info.restarts = restarts
        # A replica's hello on the work stream: who it is and how many requests it holds at most.
        self._shared = config.model.shared and model is not None
        # One per rendezvous, in index order: the work streams (replicas only) and the scores streams.
        self._works: list[zmq.Socket[bytes]] = []
        self._pushers: list[zmq.Socket[bytes]] = []
        # When the rendezvous last sent this replica anything (work or a ping), to say so if it never does.
        self._work_heard_ns = time.monotonic_ns()
        self._unheard = ThrottledLog(logger)
        if self._shared:
            assert model is not None
            self._info.capacity = config.model.queue_bound(model.batches)
        self.contract = Contract(model.features) if model is not None else None
        self._failures = ThrottledLog(logger)
        self._missing = ThrottledLog(logger)
        # Requests this worker never received because its queue was full (see streams.Gaps).
        self.gaps = streams.Gaps()
        self._archive: LogWriter | None = None
        self._latency: Histogram | None = None
        if self.telemetry.meter is not None:
            self._observe(self.telemetry.meter)

    def _observe(self, meter: Meter) -> None:
        m = self.config.model
        attributes = {"use_case": m.use_case, "model": m.name, "version": m.version, "role": m.role}
        metrics.count(meter, "rvz.worker.scores", "Scores sent", lambda: self.scored, attributes)
        metrics.count(meter, "rvz.worker.errors", "Scores that are errors (the model raised or its output "
                      "could not be encoded)", lambda: self.errors, attributes)
        metrics.count(meter, "rvz.worker.dropped", "Scores not sent because the scores stream was full",
                      lambda: self.dropped, attributes)
        metrics.count(meter, "rvz.worker.archived", "Requests archived by a decoy", lambda: self.archived, attributes)
        metrics.count(meter, "rvz.worker.missed", "Requests this model never received: its queue on the "
                      "requests stream was full (it was hung, stopped or too slow)", lambda: self.gaps.missed,
                      attributes)
        metrics.count(meter, "rvz.worker.expired", "Requests not scored because their deadline had passed",
                      lambda: self.expired, attributes)
        self._latency = metrics.latency_histogram(meter, "rvz.worker.model.duration",
                                                  "Time in the model per batch")
        self._latency_attributes = attributes

    def run(self) -> None:
        """Serve until ``should_exit`` is set."""
        cfg = self.config
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        topics = [streams.CONTROL_TOPIC] if self._shared else [self._topic, streams.CONTROL_TOPIC]
        sub = streams.subscriber(ctx, cfg.streams.requests, cfg.streams.high_water_mark, topics,
                                 cfg.max_message_bytes, security=self.keys.client("frontend"))
        rendezvous = cfg.streams.rendezvous
        self._pushers = [streams.score_pusher(ctx, r.scores, cfg.streams.high_water_mark,
                                              security=self.keys.client("rendezvous")) for r in rendezvous]
        if self._shared:
            self._works = [streams.work_dealer(ctx, r.work_endpoint, cfg.streams.high_water_mark, cfg.max_message_bytes,
                                               security=self.keys.client("rendezvous")) for r in rendezvous]
        if cfg.model.role == "decoy":
            self._archive = LogWriter(Path(cfg.log_dir, "decoy", cfg.model.use_case, cfg.model.name),
                                      "rvz.v1.RequestEnvelope", fsync=cfg.fsync)
            self._archive.start()
        logger.info("model %s v%s (%s) serving use case %r", cfg.model.name, cfg.model.version,
                    cfg.model.role, cfg.model.use_case)
        if self.model is not None:
            # Listed by the rendezvous at once (restarts and all), even if its model then hangs on the
            # first request before any probe is answered.
            self._announce()
        try:
            self._loop(sub)
        finally:
            sub.close()
            for work in self._works:
                work.close()
            for push in self._pushers:
                push.close()  # lingers up to FLUSH_MS so queued scores still reach the rendezvous
            ctx.term()
            if self._archive is not None:
                self._archive.stop()
            if self.model is not None:
                self.model.close()
            if self._archive is not None:
                logger.info("decoy %s stopped after archiving %d requests", cfg.model.name, self.archived)
            else:
                logger.info("model %s stopped after %d scores (%d errors, %d dropped, %d expired unscored)",
                            cfg.model.name, self.scored, self.errors, self.dropped, self.expired)

    def _loop(self, sub: zmq.Socket[bytes]) -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        for work in self._works:
            poller.register(work, zmq.POLLIN)
        batch_max = self.config.model.batch_max if self.model is None or self.model.batches else 1
        backlog: deque[bytes] = deque()
        beat = self.heartbeat.beat if self.heartbeat is not None else _no_beat
        while not self.should_exit.is_set():
            beat()
            if not poller.poll(POLL_MS):
                continue
            # Take everything queued before scoring: one wake-up, many requests.
            self._drain(sub, backlog)
            scores: list[Scored] = []
            first_ns = 0
            while backlog and not self.should_exit.is_set():
                payloads = [backlog.popleft() for _ in range(min(batch_max, len(backlog)))]
                if not scores:
                    first_ns = time.perf_counter_ns()
                scores += self._handle(payloads)
                beat()
                # Scores travel several to a message; a fast model's first score waits at most
                # SCORE_FLUSH_NS for the others, a slow model's goes out alone.
                if scores and time.perf_counter_ns() - first_ns >= SCORE_FLUSH_NS:
                    self._send(scores)
                    scores = []
                if not backlog:
                    self._drain(sub, backlog)
            if scores:
                self._send(scores)

    def _drain(self, sub: zmq.Socket[bytes], backlog: deque[bytes]) -> None:
        for work in self._works:
            self._drain_work(work, backlog)
        while len(backlog) < DRAIN_MAX:
            try:
                topic, *payloads = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if topic == self._topic and payloads:
                sequence, *requests = payloads
                missed = self.gaps.note(topic, sequence, len(requests))
                if missed:
                    self._missing.warning("missed", "model %s missed %d requests (%d so far): its queue on the "
                                          "requests stream was full (streams.high_water_mark)",
                                          self.config.model.name, missed, self.gaps.missed)
                backlog.extend(requests)
            elif topic == streams.CONTROL_TOPIC and payloads:
                self._answer_probe(payloads[0])

    def _drain_work(self, work: zmq.Socket[bytes], backlog: deque[bytes]) -> None:
        """A replica's share, [WORK, request, ...]: never more than its capacity, which the rendezvous keeps to."""
        while len(backlog) < DRAIN_MAX:
            try:
                kind, *payloads = work.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._work_heard_ns = time.monotonic_ns()
            if kind == streams.WORK:
                backlog.extend(payloads)

    def _handle(self, payloads: list[bytes]) -> list[Scored]:
        """Score (or archive) the payloads; returns the serialized scores to send, each with its rendezvous."""
        if self._archive is not None:
            self._archive.append_many(payloads)
            self.archived += len(payloads)
            return []
        received = [decode_request(payload, self.contract) for payload in payloads]
        # A request long past its deadline was answered without us: scoring it would only make the requests
        # queued behind it late too. Shedding it lets a worker that fell behind catch up.
        oldest_deadline = time.time_ns() - self._late_limit_ns
        live = [r for r in received if r.envelope.deadline_unix_ns > oldest_deadline]
        self.expired += len(received) - len(live)
        if not live:
            return []
        last = len(self._pushers) - 1
        # A rendezvous index past the deployment's (a forged or stale request) goes to the first: it logs it.
        return [(r.envelope.rendezvous if r.envelope.rendezvous <= last else 0, score.SerializeToString())
                for r, score in zip(live, self.score_batch(live), strict=True)]

    def score_batch(self, received: list[Received]) -> list[envelope_pb2.ScoreEnvelope]:
        """One model call for the batch; one score per request, errors included."""
        assert self.model is not None  # only a decoy has no model
        features = [r.features for r in received if r.features is not None]
        started = time.time_ns()
        outcomes = self.model.score(features) if features else []
        finished = time.time_ns()
        if self._latency is not None:
            self._latency.record((finished - started) / 1e6, self._latency_attributes)
        by_request = iter(outcomes)
        return [self._score_envelope(item.envelope, next(by_request) if item.features is not None
                                     else Outcome(error=InvalidRequest(item.error)), started, finished)
                for item in received]

    def _score_envelope(self, request: envelope_pb2.RequestEnvelope, outcome: Outcome,
                        started: int, finished: int) -> envelope_pb2.ScoreEnvelope:
        m = self.config.model
        score = envelope_pb2.ScoreEnvelope(
            request_id=request.request_id, use_case=request.use_case, model_name=m.name,
            model_version=m.version, role=m.role, started_unix_ns=started, finished_unix_ns=finished,
            worker_id=self.worker_id)
        error = outcome.error
        if error is None:
            try:
                python_to_value(outcome.output, score.output)
            except EncodeError as e:
                error = e
            else:
                error = self._oversized(score.output)
        if error is not None:
            score.ClearField("output")
            score.error = str(error) or type(error).__name__
            score.error_type = type(error).__name__
            self.errors += 1
            self._failures.warning(score.error_type, "model %s failed on request %s: %s: %s", m.name,
                                   request.request_id, score.error_type, score.error,
                                   extra={"request_id": request.request_id, "model": m.name, "use_case": m.use_case,
                                          "trace_id": tracing.trace_id_of(request.trace_context)})
        if self.tracer is not None and request.trace_context:
            self._trace(request, score, started, finished)
        self.scored += 1
        return score

    def _oversized(self, output: struct_pb2.Value) -> OutputTooLarge | None:
        size = output.ByteSize()
        if size <= self.config.max_output_bytes:
            return None
        return OutputTooLarge(f"output too large: {size} bytes, limit {self.config.max_output_bytes} "
                              "(limits.output_bytes)")

    def _trace(self, request: envelope_pb2.RequestEnvelope, score: envelope_pb2.ScoreEnvelope,
               started: int, finished: int) -> None:
        assert self.tracer is not None
        m = self.config.model
        span = tracing.start_scoring(self.tracer, request.trace_context, request.request_id, m.name, m.version,
                                     m.role, m.use_case, started)
        if span is not None:
            tracing.inject(span, score.trace_context)
            tracing.end_scoring(span, score.error_type, score.error, finished)

    def _send(self, scores: list[Scored]) -> None:
        """Send each score to its request's rendezvous, several to a message."""
        if len(self._pushers) == 1:
            self._send_to(self._pushers[0], [payload for _, payload in scores])
            return
        by_rendezvous: dict[int, list[bytes]] = {}
        for index, payload in scores:
            by_rendezvous.setdefault(index, []).append(payload)
        for index, payloads in by_rendezvous.items():
            self._send_to(self._pushers[index], payloads)

    def _send_to(self, push: zmq.Socket[bytes], scores: list[bytes]) -> None:
        for batch in streams.batches(scores, self.config.max_message_bytes, len):
            self._send_batch(push, batch)

    def _send_batch(self, push: zmq.Socket[bytes], scores: list[bytes]) -> None:
        try:
            push.send_multipart([streams.SCORE, *scores], zmq.NOBLOCK)
        except zmq.Again:
            before, self.dropped = self.dropped, self.dropped + len(scores)
            if passed_milestone(before, self.dropped):
                logger.error("scores stream full (rendezvous down or slow): %d scores dropped so far", self.dropped)

    def _announce(self, frontend_id: bytes = b"") -> None:
        """Tell every rendezvous this model is live (and, through them, the probing frontend, if any)."""
        self._info.missed = self.gaps.missed
        announce = envelope_pb2.Control(kind=envelope_pb2.Control.ANNOUNCE, frontend_id=frontend_id,
                                        sent_unix_ns=time.time_ns(), model=self._info)
        payload = announce.SerializeToString()
        for push in self._pushers:
            with contextlib.suppress(zmq.Again):  # the next probe asks again
                push.send_multipart([streams.ANNOUNCE, payload], zmq.NOBLOCK)
        for work in self._works:
            # Said again at every probe: a rendezvous that restarted learns of this replica within a heartbeat.
            with contextlib.suppress(zmq.Again):
                work.send_multipart([streams.HELLO, payload], zmq.NOBLOCK)

    def _answer_probe(self, payload: bytes) -> None:
        probe = streams.decode(envelope_pb2.Control, payload, "control message")
        if probe is None:
            return
        if self.on_ready is not None:
            self.on_ready()
            self.on_ready = None
        self.gaps.note_probe(probe.frontend_id, probe.next_sequence, (self._topic,))
        self._announce(probe.frontend_id)
        if self._works and time.monotonic_ns() - self._work_heard_ns > UNHEARD_NS:
            self._unheard.warning("work", "replica of model %s: the rendezvous has sent nothing on the work stream "
                                  "%s for %.0f s (it pings every replica it knows): does its config have this "
                                  "model with replicas > 1, or streams.work?", self.config.model.name,
                                  self.config.streams.work_endpoint,
                                  (time.monotonic_ns() - self._work_heard_ns) / 1e9)

    def _model_info(self) -> envelope_pb2.ModelInfo:
        m = self.config.model
        features = self.model.features if self.model is not None else {}
        return envelope_pb2.ModelInfo(
            use_case=m.use_case, name=m.name, version=m.version, role=m.role, worker_id=self.worker_id,
            pid=os.getpid(), host=socket.gethostname(),
            features=[envelope_pb2.FeatureSpec(name=k, type=v) for k, v in features.items()])


def _no_beat() -> None:
    """No supervisor reads this worker's progress."""


def decode_request(payload: bytes, contract: Contract | None = None) -> Received:
    """Parse an envelope and its ScoreRequest; a bad one, or one the model's contract refuses, becomes an
    error to report, not a crash."""
    envelope = envelope_pb2.RequestEnvelope()
    try:
        envelope.ParseFromString(payload)
        request = scoring_pb2.ScoreRequest.FromString(envelope.request)
    except Exception as e:  # DecodeError and friends: report it as this request's error
        return Received(envelope, None, f"malformed request envelope: {e}")
    features = struct_to_dict(request.features)
    problem = None if contract is None else contract.problem(features)
    if problem is not None:
        return Received(envelope, None, problem)
    return Received(envelope, features)
