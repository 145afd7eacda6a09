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
from dataclasses import dataclass
from pathlib import Path

import zmq

from rvz import streams
from rvz._proto import envelope_pb2
from rvz.config import Config
from rvz.liveness import ModelRegistry
from rvz.log import LogWriter
from rvz.matcher import Matcher
from rvz.policy import Policy

logger = logging.getLogger(__name__)

MAX_POLL_MS = 100
DRAIN_BATCH = 512


@dataclass
class Counters:
    requests: int = 0
    scores: int = 0
    late: int = 0
    orphans: int = 0
    answered: int = 0
    timeouts: int = 0
    defaults: int = 0
    undeliverable: int = 0
    malformed: int = 0


class Rendezvous:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.should_exit = threading.Event()
        self.counters = Counters()
        self.policy = Policy.from_config(config.rendezvous)
        self.models = ModelRegistry(config.frontend.model_timeout_ms)
        self.matcher = Matcher(self, lambda use_case: self.policy, config.rendezvous.early_score_ms,
                               self.models.live_count)
        log_dir = Path(config.log.dir)
        segment_bytes = config.log.segment_mb * 1024 * 1024
        self.scores_log = LogWriter(log_dir / "scores", "rvz.v1.ScoreRecord", segment_bytes=segment_bytes,
                                    fsync=config.log.fsync)
        self.results_log = LogWriter(log_dir / "results", "rvz.v1.ResultEnvelope", segment_bytes=segment_bytes,
                                     fsync=config.log.fsync)
        self._router: zmq.Socket[bytes] | None = None

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
            for sock in (sub, pull, self._router):
                sock.close()
            ctx.term()
            self.scores_log.stop()
            self.results_log.stop()
            logger.info("rendezvous stopped: %s", self.counters)

    def _loop(self, sub: zmq.Socket[bytes], pull: zmq.Socket[bytes]) -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        poller.register(pull, zmq.POLLIN)
        matcher = self.matcher
        while not self.should_exit.is_set():
            poller.poll(self._poll_timeout_ms())
            # Requests first, so a score and its request drained together meet without the early buffer.
            self._drain_requests(sub)
            self._drain_scores(pull)
            matcher.on_time(time.time_ns())

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
        return min(MAX_POLL_MS, math.ceil(wait_ns / 1e6))

    def _drain_requests(self, sub: zmq.Socket[bytes]) -> None:
        for _ in range(DRAIN_BATCH):
            try:
                topic, payload = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                self.counters.malformed += 1
                continue
            if topic == streams.CONTROL_TOPIC:
                self._answer_probe(payload)
                continue
            request = envelope_pb2.RequestEnvelope()
            try:
                request.ParseFromString(payload)
            except Exception:
                self.counters.malformed += 1
                logger.warning("ignoring a malformed request envelope (%d bytes)", len(payload))
                continue
            self.counters.requests += 1
            self.matcher.on_request(request, time.time_ns())

    def _drain_scores(self, pull: zmq.Socket[bytes]) -> None:
        for _ in range(DRAIN_BATCH):
            try:
                kind, payload = pull.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                self.counters.malformed += 1
                continue
            if kind == streams.SCORE:
                self._on_score(payload)
            elif kind == streams.ANNOUNCE:
                self._on_announce(payload)
            else:
                self.counters.malformed += 1

    def _on_score(self, payload: bytes) -> None:
        score = envelope_pb2.ScoreEnvelope()
        try:
            score.ParseFromString(payload)
        except Exception:
            self.counters.malformed += 1
            logger.warning("ignoring a malformed score envelope (%d bytes)", len(payload))
            return
        self.counters.scores += 1
        self.matcher.on_score(score, time.time_ns())

    def _on_announce(self, payload: bytes) -> None:
        try:
            announce = envelope_pb2.Control.FromString(payload)
        except Exception:
            self.counters.malformed += 1
            return
        if self.models.saw(announce.model, time.time_ns()):
            m = announce.model
            logger.info("model %s v%s (%s) of use case %r is live (worker %s)", m.name, m.version, m.role,
                        m.use_case, m.worker_id)
        # Tell the probing frontend: the whole path frontend -> model -> rendezvous -> frontend works.
        self._send(announce.frontend_id, streams.CONTROL, payload)

    def _answer_probe(self, payload: bytes) -> None:
        try:
            probe = envelope_pb2.Control.FromString(payload)
        except Exception:
            self.counters.malformed += 1
            return
        ready = envelope_pb2.Control(kind=envelope_pb2.Control.RENDEZVOUS_READY, frontend_id=probe.frontend_id,
                                     sent_unix_ns=time.time_ns())
        self._send(probe.frontend_id, streams.CONTROL, ready.SerializeToString())

    def _send(self, address: bytes, kind: bytes, payload: bytes) -> bool:
        assert self._router is not None
        try:
            self._router.send_multipart([address, kind, payload], zmq.NOBLOCK)
            return True
        except zmq.ZMQError as e:  # EHOSTUNREACH: that frontend is gone; EAGAIN: it is not reading
            self.counters.undeliverable += 1
            if self.counters.undeliverable in (1, 10, 100) or self.counters.undeliverable % 1000 == 0:
                logger.warning("cannot deliver to frontend %r: %s (%d so far)", address, e.strerror,
                               self.counters.undeliverable)
            return False

    # --- Sink: called by the matcher --------------------------------------------------------

    def log_score(self, score: envelope_pb2.ScoreEnvelope, received_ns: int, *, late: bool, orphan: bool) -> None:
        record = envelope_pb2.ScoreRecord(received_unix_ns=received_ns, late=late, orphan=orphan)
        record.score.CopyFrom(score)
        self.scores_log.append(record.SerializeToString())
        self.counters.late += late
        self.counters.orphans += orphan

    def answer(self, request: envelope_pb2.RequestEnvelope, result: envelope_pb2.ResultEnvelope) -> None:
        payload = result.SerializeToString()
        # Logged before it is sent, as requests are: the results log never misses an answer.
        self.results_log.append(payload)
        self._send(request.return_address, streams.RESULT, payload)
        self.counters.answered += 1
        if result.rule == "timeout":
            self.counters.timeouts += 1
        elif result.rule == "default":
            self.counters.defaults += 1
