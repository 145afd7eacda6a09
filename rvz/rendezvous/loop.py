"""The rendezvous process: learns every request from the input stream, PULLs every
score, and answers each request through the frontend named in its return address.

A single synchronous loop: poll the three sockets, drain each in a batch, fire due
timers, then flush the pass (logs first, then answers). The parts it drives:
``Matcher`` (the decisions), ``DecisionSink`` (logs, counters, spans, answers out),
``ControlPlane`` (probes, announces, Admin calls) and ``Router`` (sends).
Sub-millisecond timer waits use a short sleep because ZeroMQ's poll only has
millisecond resolution (and a zero timeout would spin a core).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import zmq
from opentelemetry.metrics import Meter

from rvz.admin.handler import AdminHandler
from rvz.admin.state import AdminState
from rvz.config import Config
from rvz.errors import ConfigError
from rvz.log.naming import rendezvous_name
from rvz.rendezvous import counters as counting
from rvz.rendezvous.control import ControlPlane
from rvz.rendezvous.counters import Counters
from rvz.rendezvous.live_stats import StatsBook
from rvz.rendezvous.matcher import Matcher
from rvz.rendezvous.replicas import ReplicaGroups
from rvz.rendezvous.roles import promote_score
from rvz.rendezvous.router import Router, Send
from rvz.rendezvous.sink import DecisionSink
from rvz.rendezvous.timing import ScoreTiming
from rvz.rendezvous.work import WorkStream
from rvz.security.audit import AuditLog
from rvz.security.deployment import keyring_for
from rvz.security.keys import routing_id_matches
from rvz.security.peers import Peer, Peers
from rvz.security.process import ProcessKeys
from rvz.telemetry import metrics
from rvz.telemetry.setup import Telemetry
from rvz.telemetry.throttle import ThrottledLog
from rvz.wire import streams
from rvz.wire.model_registry import ModelRegistry
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)

MAX_POLL_MS = 100
# Messages taken from a socket per loop pass. Log records and answers are written and sent at the end of
# a pass, so this also bounds how long an answer waits for the rest of its pass.
DRAIN_BATCH = 64
DRAIN_FRAMES = 512
# A peer's frame stamped with the User-Id of its key (the ZAP reply), when the streams are authenticated.
USER_ID = "User-Id"
# How often replicas are pinged (a dead one is found at once) and their held requests checked for expiry.
REPLICA_CHECK_NS = 20_000_000
# How often one of several rendezvous looks for an Admin state saved by another (one stat).
STATE_CHECK_NS = 100_000_000
_refused = ThrottledLog(logger)


class Rendezvous:
    """One rendezvous process's state and loop. ``run`` once, on the thread that owns it; set
    ``should_exit`` from anywhere to stop it.

    ``index``: which of the deployment's ``streams.rendezvous_processes`` this is (from 0). It binds its own
    endpoints (``StreamsConfig.of_rendezvous``), writes its own logs (``rvz.log.naming``), and decides only
    the requests whose frontend gave them to it (``RequestEnvelope.rendezvous``); it hears every request and
    probe, so it answers every frontend's probes and counts what it missed of the stream as one does alone.
    """

    def __init__(self, config: Config, telemetry: Telemetry | None = None, index: int = 0) -> None:
        if not 0 <= index < config.streams.rendezvous_processes:
            raise ConfigError(f"rendezvous {index} of {config.streams.rendezvous_processes}: give --index from 0 to "
                              f"{config.streams.rendezvous_processes - 1} (streams.rendezvous_processes)")
        self.config = config
        self.index = index
        self.streams = config.streams.of_rendezvous(index)
        # Only with several: one rendezvous decides every request, whatever its envelope says.
        self.shared = config.streams.rendezvous_processes > 1
        name = rendezvous_name(index)
        self.telemetry = telemetry or Telemetry("rvz-rendezvous")
        self.tracer = self.telemetry.tracer
        self.should_exit = threading.Event()
        # Called once by ``run`` when its logs are open and its endpoints bound.
        self.on_ready: Callable[[], None] | None = None
        # Raises ConfigError (before anything starts) when the keys cannot be had.
        self.keys = ProcessKeys(keyring_for(config, "rendezvous"))
        self.peers = Peers()
        self.counters = Counters()
        # Requests the rendezvous never received (its queue on the requests stream was full).
        self.gaps = streams.Gaps()
        self.models = ModelRegistry(config.frontend.model_timeout_ms)
        self.replicas = ReplicaGroups(int(config.frontend.model_timeout_ms * 1e6),
                                      {(m.use_case, m.name, m.version): int(m.late_limit_ms * 1e6)
                                       for m in config.models})
        self.admin_state = AdminState(config.rendezvous, config.log.dir, name)
        self.stats = StatsBook(config.drift.threshold)
        meter = self.telemetry.meter
        latency = None if meter is None else metrics.latency_histogram(
            meter, "rvz.rendezvous.score.latency", "From the frontend receiving a request to a score arriving")
        timing = ScoreTiming(self.stats, self.admin_state.policy_for, latency)
        self.sink = DecisionSink(config.log, self.counters, self.stats, timing, self.tracer, name)
        self.sink.max_message_bytes = config.limits.message_bytes
        self.matcher = Matcher(self.sink, self.admin_state.policy_for, config.rendezvous.early_score_ms,
                               self.models.live_count, config.limits.early_scores, config.limits.early_score_bytes)
        self.audit = AuditLog(config.log, name)
        self.control = ControlPlane(self.admin_state, self.models,
                                    AdminHandler(self.admin_state, self.models, self.stats, self.audit,
                                                 self.replicas))
        if meter is not None:
            self._observe(meter)

    def _observe(self, meter: Meter) -> None:
        counting.observe(meter, self.counters)
        metrics.gauge(meter, "rvz.rendezvous.pending", "Requests waiting for a decision",
                      lambda: len(self.matcher.pending))
        metrics.gauge(meter, "rvz.rendezvous.early_scores", "Scores held for requests not seen yet",
                      lambda: self.matcher.early_held)
        metrics.count(meter, "rvz.rendezvous.early_scores_dropped", "Scores held for requests not seen yet that "
                      "were dropped to stay within limits.early_scores and early_score_bytes",
                      lambda: self.matcher.early_evicted)
        metrics.gauge_by(meter, "rvz.rendezvous.divergence", "Distance of each model's recent outputs from the "
                         "canary's (Jensen-Shannon for labels, KS for numbers; -1: no figure)", self.stats.divergence,
                         ("use_case", "model", "version"))
        metrics.count(meter, "rvz.rendezvous.replicas.missed", "Requests given to a replica of a model that it never "
                      "scored (it died or hung), or that waited too long for a replica with room",
                      self.replicas.missed_total)
        metrics.observe_logs(meter, {"scores": self.sink.scores_log, "results": self.sink.results_log})

    def run(self) -> None:
        """Serve until ``should_exit`` is set; logs are flushed and synced on the way out. Call once."""
        s = self.streams
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sink.start()
        self.audit.start()
        keys = self.keys
        keys.start(ctx)
        largest = self.config.limits.message_bytes
        sub = streams.subscriber(ctx, s.requests, s.high_water_mark, [b""], largest, security=keys.client("frontend"))
        pull = streams.score_puller(ctx, s.scores, s.high_water_mark, largest, security=keys.server("scores"))
        router = Router(streams.result_router(ctx, s.results, s.high_water_mark, largest,
                                              security=keys.server("results")), self.counters)
        work = self._bind_work(ctx)
        logger.info("rendezvous%s listening: requests %s, scores %s, results %s%s (%s)",
                    f" {self.index + 1}/{s.rendezvous_processes}" if self.shared else "", s.requests, s.scores,
                    s.results, f", work {s.work_endpoint}" if work is not None else "",
                    "CURVE" if keys.active else "plaintext")
        if self.on_ready is not None:
            self.on_ready()
        try:
            self._loop(sub, pull, router, work)
        finally:
            self.sink.flush(router.send)
            for sock in (sub, pull, router.sock, work.sock if work is not None else None):
                if sock is not None:
                    sock.close()
            keys.stop()
            ctx.term()
            self.sink.stop()
            self.audit.stop()
            logger.info("rendezvous stopped: %s", self.counters.summary())

    def _bind_work(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> WorkStream | None:
        """The work stream, bound only for a deployment that has replicas (or names the stream): a model's
        replicas started by hand take their share from it."""
        s = self.streams
        if not self.config.streams.work and not any(m.shared for m in self.config.models):
            return None
        sock = streams.work_router(ctx, s.work_endpoint, s.high_water_mark, self.config.limits.message_bytes,
                                   security=self.keys.server("work"))
        self.replicas.enabled = True
        return WorkStream(sock, self.replicas, self.counters, self.peers if self.keys.active else None,
                          self._refuse, self.config.limits.message_bytes)

    def _loop(self, sub: zmq.Socket[bytes], pull: zmq.Socket[bytes], router: Router,
              work: WorkStream | None) -> None:
        poller = zmq.Poller()
        for sock in (sub, pull, router.sock, work.sock if work is not None else None):
            if sock is not None:
                poller.register(sock, zmq.POLLIN)
        matcher, sink, send, replicas = self.matcher, self.sink, router.send, self.replicas
        drift_every_ns = int(self.config.drift.check_s * 1e9)
        next_drift_check = time.time_ns() + drift_every_ns
        next_replica_check = 0
        next_state_check = 0
        while not self.should_exit.is_set():
            events = dict(poller.poll(self._poll_timeout_ms()))
            # Requests first, so a score and its request drained together meet without the early buffer.
            self._drain_requests(sub, send)
            self._drain_scores(pull, send)
            now = time.time_ns()
            if work is not None:
                if work.sock in events:
                    work.drain(now)
                if now >= next_replica_check:
                    replicas.on_time(now)
                    work.ping()
                    next_replica_check = now + REPLICA_CHECK_NS
                work.send()
            matcher.on_time(now)
            sink.flush(send)
            if router.sock in events:
                self._drain_admin(router.sock, send)
            if now >= next_drift_check:
                self.stats.check_drift()
                next_drift_check = now + drift_every_ns
            if self.shared and now >= next_state_check:  # another rendezvous may have carried out a change we missed
                self.admin_state.reload_if_changed()
                next_state_check = now + STATE_CHECK_NS

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

    # --- draining --------------------------------------------------------------------------------

    def _messages(self, sock: zmq.Socket[bytes], frames: int) -> Iterator[list[bytes]]:
        """Queued messages of at least ``frames`` frames (others are counted as malformed), up to DRAIN_BATCH
        messages or DRAIN_FRAMES frames in all: a pass stays short however many payloads a peer packs into
        its messages, and the other peers' messages (fair-queued by ZeroMQ) come in the next one."""
        taken = 0
        for _ in range(DRAIN_BATCH):
            try:
                message = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(message) >= frames:
                yield message
            else:
                self.counters.malformed += 1
            taken += len(message)
            if taken >= DRAIN_FRAMES:
                return

    def _peer_messages(self, sock: zmq.Socket[bytes], frames: int,
                       stamped: int) -> Iterator[tuple[Peer | None, list[bytes]]]:
        """As ``_messages``, with the key that sent each (its frame ``stamped``'s User-Id; None when the
        streams are not authenticated). Read once per message, whatever the number of payloads in it."""
        if not self.keys.active:
            for message in self._messages(sock, frames):
                yield None, message
            return
        taken = 0
        for _ in range(DRAIN_BATCH):
            try:
                user_id, message = _recv_stamped(sock, stamped)
            except zmq.Again:
                return
            if len(message) >= frames:
                yield self.peers.of(user_id), message
            else:
                self.counters.malformed += 1
            taken += len(message)
            if taken >= DRAIN_FRAMES:  # as in _messages: a pass stays short however peers pack their messages
                return

    def _refuse(self, peer: Peer, what: str) -> None:
        self.counters.refused += 1
        _refused.warning(f"{peer.user_id}:{what}", "refused %s from %s: its key may not send it (%d refused so "
                         "far)", what, peer.describe(), self.counters.refused)

    def _drain_requests(self, sub: zmq.Socket[bytes], send: Send) -> None:
        """Messages of [topic, request, request, ...]: frontends publish a loop pass's requests together."""
        for topic, *payloads in self._messages(sub, 2):
            if topic == streams.CONTROL_TOPIC:
                probe = self._decode(envelope_pb2.Control, payloads[0], "probe")
                if probe is not None:
                    self.counters.missed_requests += self.gaps.note_probe(probe.frontend_id, probe.next_sequence,
                                                                          streams.EVERY_TOPIC)
                    send(probe.frontend_id, streams.CONTROL, self.control.ready(probe))
                continue
            sequence, *requests = payloads
            self.counters.missed_requests += self.gaps.note(topic, sequence, len(requests))
            for payload in requests:
                self._on_request(payload)

    def _on_request(self, payload: bytes) -> None:
        request = self._decode(envelope_pb2.RequestEnvelope, payload, "request envelope")
        if request is None:
            return
        if self.shared and request.rendezvous != self.index:
            return  # another rendezvous's share
        self.counters.requests += 1
        now = time.time_ns()
        if self.tracer is not None and request.trace_context and not self.matcher.knows(request.request_id):
            self.sink.start_decision(request, now)
        self.matcher.on_request(request, now)
        if self.replicas.active:
            self.replicas.on_request(request, payload, now)

    def _drain_scores(self, pull: zmq.Socket[bytes], send: Send) -> None:
        """Messages of [SCORE, score, score, ...] (workers send several at once) or [ANNOUNCE, control]."""
        for peer, (kind, *payloads) in self._peer_messages(pull, 2, 0):
            if kind == streams.SCORE:
                for payload in payloads:
                    self._on_score(payload, peer)
            elif kind == streams.ANNOUNCE:
                announce = self._decode(envelope_pb2.Control, payloads[0], "announce")
                if announce is None:
                    continue
                if peer is not None and not peer.may_announce(announce.model):
                    self._refuse(peer, f"an announce of model {announce.model.name!r} of use case "
                                 f"{announce.model.use_case!r}")
                    continue
                if self.replicas.enabled and announce.model.capacity <= 0:
                    self.replicas.note_direct(announce.model, time.time_ns())
                forward = self.control.announced(announce, payloads[0])
                if announce.frontend_id:  # a worker's first announce, at start, answers no probe
                    send(announce.frontend_id, streams.CONTROL, forward)
            else:
                self.counters.malformed += 1

    def _on_score(self, payload: bytes, peer: Peer | None) -> None:
        score = self._decode(envelope_pb2.ScoreEnvelope, payload, "score envelope")
        if score is None:
            return
        if peer is not None and not peer.may_score(score):
            self._refuse(peer, f"a score of model {score.model_name!r} of use case {score.use_case!r}")
            return
        self.counters.scores += 1
        now = time.time_ns()
        if self.replicas.active:
            self.replicas.on_score(score, now)
        if score.replayed:  # from `rvz replay`: archived traffic, for the logs only
            self.sink.log_score(score, payload, now, None, late=False, orphan=False)
        elif self.admin_state.roles and promote_score(self.admin_state, score):
            self.matcher.on_score(score, now, b"")  # the bytes no longer say what the score is
        else:
            self.matcher.on_score(score, now, payload)

    def _drain_admin(self, router: zmq.Socket[bytes], send: Send) -> None:
        """Admin calls forwarded by frontends: [frontend id, ADMIN, AdminCall]."""
        for peer, (address, kind, payload, *_) in self._peer_messages(router, 3, 1):
            if peer is not None and not routing_id_matches(peer.user_id, address):
                self._refuse(peer, f"an Admin call through routing id {address!r}")
                continue
            call = self._decode(envelope_pb2.AdminCall, payload, "admin call")
            if call is not None and kind == streams.ADMIN:
                send(address, streams.ADMIN, self.control.admin_reply(call))

    def _decode(self, message_type: type[streams.M], payload: bytes, what: str) -> streams.M | None:
        message = streams.decode(message_type, payload, what)
        if message is None:
            self.counters.malformed += 1
        return message


def _recv_stamped(sock: zmq.Socket[bytes], stamped: int) -> tuple[str, list[bytes]]:
    """One message, and the User-Id of its frame ``stamped``; raises ``zmq.Again`` when none is queued.

    Only the first frame of a scores message is read as a Frame (for its metadata): the others are read
    as bytes, as ``recv_multipart`` would, since a Frame per payload costs more than the copy it saves.
    Admin calls (``stamped`` = 1, after the routing id) are rare: read them as Frames.
    """
    if stamped:
        frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
        return str(frames[stamped].get(USER_ID)), [frame.bytes for frame in frames]
    first = sock.recv(zmq.NOBLOCK, copy=False)
    parts = [first.bytes]
    recv, option = sock.recv, sock.getsockopt
    while option(zmq.RCVMORE):
        parts.append(recv())
    return str(first.get(USER_ID)), parts
