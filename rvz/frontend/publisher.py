"""The frontend's side of the streams: publish each request once, route results back.

Hot path per request: one protobuf envelope built around the client's request
bytes (never re-encoded) and one future. Requests are flushed together: one
``os.write`` to the request log for all of them, then one NOBLOCK send per use
case carrying them all as frames. A flush waits while the event loop is busy
(a few passes, see ``_gather``) and not when it is idle, so one request in
flight is not delayed, while under load hundreds of socket sends and wake-ups
per second become a few. Results come back the same way (several per message)
and are read by a reader callback on the file descriptor of each rendezvous's
DEALER socket (``rvz.frontend.links``) that drains everything queued in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from dataclasses import dataclass, field

import grpc
import zmq
from opentelemetry import trace
from opentelemetry.trace import Span
from zmq.utils.monitor import recv_monitor_message

from rvz.admin.merge import merge_replies
from rvz.config import Config
from rvz.errors import LogError, NoAnswer, Overloaded, RvzError, Unavailable
from rvz.frontend.deadlines import DeadlineTimers
from rvz.frontend.links import Link, RendezvousLinks
from rvz.frontend.readiness import Readiness
from rvz.log.writer import LogWriter
from rvz.security.process import ProcessKeys
from rvz.telemetry import tracing
from rvz.wire import streams
from rvz.wire.proto import envelope_pb2

logger = logging.getLogger(__name__)

# How long past its deadline a call waits for the rendezvous's decision before the frontend ends it
# itself: the rendezvous decides at the deadline, and its answer takes a fraction of this to arrive.
BACKSTOP_GRACE_NS = 2_000_000
HOUSEKEEPING_S = 0.02
DRAIN_BATCH = 1024
# Gathering requests into one flush (see Dispatcher._gather): at most this many loop passes or requests;
# a pass shorter than IDLE_PASS_NS is idle, and FLUSH_IDLE_PASSES idle passes in a row end the wait.
FLUSH_PASSES = 30
FLUSH_MAX = 64
IDLE_PASS_NS = 10_000
FLUSH_IDLE_PASSES = 4


@dataclass(eq=False)
class Waiter:
    future: asyncio.Future[envelope_pb2.ResultEnvelope]
    deadline_ns: int
    submitted_ns: int
    # The request's record in the request log; set when the pass's requests are flushed.
    log_seq: int = 0
    # Its answer, held until the record is synced (log.durable_answers) or the deadline comes.
    parked: envelope_pb2.ResultEnvelope | None = None
    # The index of the rendezvous that decides it (streams.rendezvous_processes > 1).
    rendezvous: int = 0


@dataclass(eq=False)
class AdminCall:
    """An Admin call sent to every live rendezvous, and the replies come so far."""

    expected: set[int]
    done: asyncio.Future[None]
    replies: dict[int, envelope_pb2.AdminReply] = field(default_factory=dict)


@dataclass(eq=False)
class Outgoing:
    """A request accepted and waiting for the next flush (see Dispatcher._gather)."""

    topic: bytes
    payload: bytes
    waiter: Waiter
    publish: Span | None


def _payload_size(item: Outgoing) -> int:
    return len(item.payload)


class Dispatcher:
    def __init__(self, config: Config, readiness: Readiness, request_log: LogWriter, identity: bytes,
                 tracer: trace.Tracer | None = None, keys: ProcessKeys | None = None) -> None:
        self.config = config
        self.keys = keys or ProcessKeys(None)
        self.tracer = tracer
        self.readiness = readiness
        self.request_log = request_log
        self.identity = identity
        self.durable_answers = config.log.durable_answers
        self.max_message_bytes = config.limits.message_bytes
        self.waiting: dict[str, Waiter] = {}
        self.refused_full = 0
        # Answers that left before their request's record was synced (at their deadline, or at once
        # without log.durable_answers): a crash of the host, not of a process, could lose those records.
        self.answered_before_sync = 0
        # Calls the frontend ended itself at their deadline because no decision came.
        self.backstopped = 0
        # When anything last came from the rendezvous (answers, probe replies, admin replies).
        self.rendezvous_heard_ns = 0
        self._not_durable: list[Waiter] = []
        # Set (by the loop) while answers are parked in _not_durable; read by the log's sync thread.
        self._awaiting_durable = False
        self._outbox: list[Outgoing] = []
        self._deadlines: DeadlineTimers[str] | None = None
        # Per use case topic: the sequence number of the next request published on it (see streams).
        self._sequence: dict[bytes, int] = {}
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._pub: zmq.Socket[bytes] | None = None
        self.links: RendezvousLinks | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._admin_calls: dict[int, AdminCall] = {}
        self._admin_ids = itertools.count(1)
        # The SLAs the rendezvous last said are in force (policies set through the Admin API), for the log.
        self._deadlines_ms: dict[str, float] = {}

    async def start(self) -> None:
        s = self.config.streams
        self._loop = asyncio.get_running_loop()
        self._deadlines = DeadlineTimers(self._loop, self._on_deadline)
        self.keys.start(self._ctx)
        hub = self.config.requests_hub
        if hub:  # one of several frontends: publish through the requests hub (rvz.hub), which binds the stream
            self._pub = streams.hub_publisher(self._ctx, hub, s.high_water_mark, self.keys.client("frontend"))
        else:
            self._pub = streams.publisher(self._ctx, s.requests, s.high_water_mark, self.keys.server("requests"))
        self.links = RendezvousLinks(self._ctx, self.config, self.identity, self.keys)
        for link in self.links:
            self._loop.add_reader(link.dealer.FD, functools.partial(self._on_results, link))
            self._loop.add_reader(link.monitor.FD, functools.partial(self._on_monitor, link))
            # A ZeroMQ fd signals edges, not levels: drain once now so anything already queued re-arms it.
            self._loop.call_soon(self._on_results, link)
            self._loop.call_soon(self._on_monitor, link)
        self.request_log.add_durable_listener(self._durable_from_thread)
        self._tasks = [asyncio.create_task(self._housekeeping(), name="rvz-housekeeping")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._deadlines is not None:
            self._deadlines.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._loop is not None and self.links is not None:
            for link in self.links:
                self._loop.remove_reader(link.dealer.FD)
                self._loop.remove_reader(link.monitor.FD)
            self.links.close()
        for item in self._outbox:  # never flushed, never logged: their callers get the error below
            if item.publish is not None:
                item.publish.end()
        self._outbox = []
        for waiter in self.waiting.values():
            if not waiter.future.done():
                waiter.future.set_exception(Unavailable("the frontend is shutting down; retry on another"))
        self.keys.stop()
        self._ctx.destroy(linger=0)

    async def submit(self, request_id: str, use_case: str, request: bytes, received_ns: int,
                     deadline_ns: int, span: Span | None = None) -> envelope_pb2.ResultEnvelope:
        """Log, publish and wait for the rendezvous's result; the caller handles cancellation."""
        assert self._loop is not None
        envelope = envelope_pb2.RequestEnvelope(
            request_id=request_id, use_case=use_case, request=request, received_unix_ns=received_ns,
            deadline_unix_ns=deadline_ns, return_address=self.identity)
        publish = None
        if span is not None and self.tracer is not None:
            publish = tracing.start_publish(self.tracer, span, use_case, request_id, envelope.trace_context)
        waiter = Waiter(self._loop.create_future(), deadline_ns, time.time_ns())
        assert self.links is not None
        if self.links.shared:
            envelope.rendezvous = waiter.rendezvous = self.links.choose()
        if not self._outbox:
            self._loop.call_soon(self._gather, FLUSH_PASSES, 0, 0)
        self._outbox.append(Outgoing(streams.topic_for(use_case), envelope.SerializeToString(), waiter, publish))
        self.waiting[request_id] = waiter
        assert self._deadlines is not None
        self._deadlines.add(deadline_ns + BACKSTOP_GRACE_NS, request_id)
        try:
            return await waiter.future
        finally:
            del self.waiting[request_id]

    def _gather(self, passes_left: int, last_pass_ns: int, idle_passes: int) -> None:
        """Let the event loop run a few more passes before flushing, while it is busy.

        A busy frontend's loop passes each take tens of microseconds and often carry a new call;
        every request they add to this flush saves a socket send and a wake-up in each of the four
        processes downstream (three workers and the rendezvous; measured in docs/performance.md). An
        idle loop's passes take a few microseconds: after FLUSH_IDLE_PASSES of those in a row, nothing
        else is coming, so one call in flight waits only those passes.
        """
        now = time.perf_counter_ns()
        idle_passes = idle_passes + 1 if last_pass_ns and now - last_pass_ns <= IDLE_PASS_NS else 0
        if passes_left > 1 and len(self._outbox) < FLUSH_MAX and idle_passes < FLUSH_IDLE_PASSES:
            assert self._loop is not None
            self._loop.call_soon(self._gather, passes_left - 1, now, idle_passes)
        else:
            self._flush()

    def _flush(self) -> None:
        """Log the gathered requests with one write, then publish them, one message per use case."""
        outbox, self._outbox = self._outbox, []
        if not outbox:  # stop() refused them already
            return
        try:
            last_seq = self.request_log.append_many([item.payload for item in outbox])  # logged, then published
        except LogError as e:
            self._refuse(outbox, Unavailable(f"request log: {e}; the request was not accepted (retry later)"))
            return
        by_topic: dict[bytes, list[Outgoing]] = {}
        for seq, item in enumerate(outbox, last_seq - len(outbox) + 1):
            item.waiter.log_seq = seq
            by_topic.setdefault(item.topic, []).append(item)
        for topic, items in by_topic.items():
            for batch in streams.batches(items, self.max_message_bytes, _payload_size):
                self._publish(topic, batch)
        for item in outbox:
            if item.publish is not None:
                item.publish.end()

    def _publish(self, topic: bytes, items: list[Outgoing]) -> None:
        assert self._pub is not None
        first = self._sequence.get(topic, 0)
        self._sequence[topic] = first + len(items)
        try:
            self._pub.send_multipart([topic, streams.sequence_frame(self.identity, first),
                                      *(item.payload for item in items)], zmq.NOBLOCK)
        except zmq.Again:  # only while no subscriber is connected at all (PUB drops for a full one)
            self.refused_full += len(items)
            self._refuse(items, Overloaded("the input stream is full (a model is not keeping up); "
                                           "retry with backoff"))

    @staticmethod
    def _refuse(items: list[Outgoing], error: Exception) -> None:
        for item in items:
            if not item.waiter.future.done():
                item.waiter.future.set_exception(error)

    # --- results ------------------------------------------------------------------------------

    def _on_results(self, link: Link) -> None:
        dealer = link.dealer
        for taken in range(DRAIN_BATCH):
            try:
                kind, *payloads = dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.rendezvous_heard_ns = time.time_ns()
            if not taken and link.lost and self.links is not None:
                self.links.heard(link)
            if kind == streams.RESULT:
                for payload in payloads:
                    self._on_result(payload)
            elif kind == streams.CONTROL and payloads:
                self._on_control(link, payloads[0])
            elif kind == streams.ADMIN and payloads:
                self._on_admin_reply(link, payloads[0])
        # More is queued: continue after other callbacks had a turn (the fd is edge-triggered).
        assert self._loop is not None
        self._loop.call_soon(self._on_results, link)

    def _read_all(self) -> None:
        """Read what every rendezvous sent (safety nets under the readers)."""
        if self.links is not None:
            for link in self.links:
                self._on_results(link)

    def _on_result(self, payload: bytes) -> None:
        result = streams.decode(envelope_pb2.ResultEnvelope, payload, "result envelope")
        if result is None:  # never from our rendezvous
            return
        waiter = self.waiting.get(result.request_id)
        if waiter is None or waiter.future.done():
            return  # the caller gave up (client deadline or cancel) before the answer came
        if waiter.log_seq <= self.request_log.durable_seq:
            waiter.future.set_result(result)
        elif not self.durable_answers:
            self.answered_before_sync += 1
            waiter.future.set_result(result)
        else:
            self._park(waiter, result)

    def _park(self, waiter: Waiter, result: envelope_pb2.ResultEnvelope) -> None:
        """Hold an answer until its record is synced, or until its deadline at the latest."""
        waiter.parked = result
        self._not_durable.append(waiter)
        self._awaiting_durable = True
        assert self._deadlines is not None
        self._deadlines.add(waiter.deadline_ns, result.request_id)
        # The sync thread publishes durable_seq before it reads the flag, so reading durable_seq again
        # after setting the flag means one side sees the other: no answer is left parked unseen.
        if waiter.log_seq <= self.request_log.durable_seq:
            self._release_durable(self.request_log.durable_seq)

    def _durable_from_thread(self, seq: int) -> None:
        # Hop to the loop only if an answer is parked: at low load the sync is done long before the
        # answer arrives, and a call_soon_threadsafe per sync would wake the loop for nothing.
        loop = self._loop
        if self._awaiting_durable and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._release_durable, seq)

    def _release_durable(self, seq: int) -> None:
        if not self._not_durable:
            return
        still: list[Waiter] = []
        for waiter in self._not_durable:
            if waiter.parked is None or waiter.future.done():
                continue  # released at its deadline, or its caller went away
            if waiter.log_seq > seq:
                still.append(waiter)
            else:
                waiter.future.set_result(waiter.parked)
                waiter.parked = None
        self._not_durable = still
        self._awaiting_durable = bool(still)

    def _on_deadline(self, request_id: str) -> None:
        """A held call's deadline came: send its parked answer, or end it if no decision came."""
        waiter = self.waiting.get(request_id)
        if waiter is None or waiter.future.done():
            return
        if waiter.parked is not None:  # the sync is late: answer now, bounded by the deadline
            self.answered_before_sync += 1
            waiter.future.set_result(waiter.parked)
            waiter.parked = None
            return
        if time.time_ns() < waiter.deadline_ns + BACKSTOP_GRACE_NS:
            return  # this was the parked answer's timer; the call's own comes after the grace
        self._read_all()  # a busy loop may not have read a decision that already came
        if not waiter.future.done():
            self.backstopped += 1
            waiter.future.set_exception(self._no_decision(request_id, waiter))

    def _no_decision(self, request_id: str, waiter: Waiter) -> RvzError:
        if self.rendezvous_heard_ns > waiter.submitted_ns:
            return NoAnswer(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"no decision for request {request_id} by its deadline: the rendezvous is running "
                            "but behind")
        silent_ms = (time.time_ns() - self.rendezvous_heard_ns) / 1e6 if self.rendezvous_heard_ns else None
        since = f"for {silent_ms:.0f} ms" if silent_ms is not None else "yet"
        return Unavailable(f"the rendezvous has not answered anything {since}, so request {request_id} got no "
                           "decision by its deadline; check that `rvz rendezvous` is running")

    async def call_admin(self, call: envelope_pb2.AdminCall, timeout_s: float) -> envelope_pb2.AdminReply | None:
        """Send an Admin call to every live rendezvous (to all of them when none is known live) and wait for
        their replies, merged (``rvz.admin.merge``): each carries out every change, and each knows the
        figures of its own share of the requests. None: no reply in time. Replies that have not come
        within ``timeout_s`` are left out, as long as one came."""
        assert self.links is not None and self._loop is not None
        call.call_id = next(self._admin_ids)
        targets = self.links.reachable() or [link.index for link in self.links]
        pending = AdminCall(set(), self._loop.create_future())
        self._admin_calls[call.call_id] = pending
        payload = call.SerializeToString()
        try:
            for index in targets:
                link = self.links.links[index]
                try:
                    link.dealer.send_multipart([streams.ADMIN, payload], zmq.NOBLOCK)
                except zmq.Again:
                    continue
                pending.expected.add(index)
                # A send can take the socket's read edge with it (ZeroMQ's fd signals changes, not levels):
                # read what may have come meanwhile, or the reader would wait for an edge that never comes.
                self._loop.call_soon(self._on_results, link)
            if not pending.expected:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending.done), timeout_s)  # rare calls: a timer each is fine
            if len(pending.replies) < len(pending.expected):
                missing = sorted(pending.expected - pending.replies.keys())
                logger.warning("Admin call %s: no reply from rendezvous %s within %g s", call.WhichOneof("request"),
                               ", ".join(str(i) for i in missing), timeout_s)
            return merge_replies([pending.replies[i] for i in sorted(pending.replies)]) if pending.replies else None
        finally:
            del self._admin_calls[call.call_id]

    def _on_admin_reply(self, link: Link, payload: bytes) -> None:
        reply = streams.decode(envelope_pb2.AdminReply, payload, "admin reply")
        if reply is None:
            return
        if self.links is not None and self.links.shared and reply.state_digest:
            self.links.note_state(link, reply.state_digest, reply.state_changed_unix_ns, time.time_ns())
        pending = self._admin_calls.get(reply.call_id)
        if pending is None or link.index not in pending.expected:
            return
        pending.replies[link.index] = reply
        if pending.replies.keys() >= pending.expected and not pending.done.done():
            pending.done.set_result(None)

    def _on_control(self, link: Link, payload: bytes) -> None:
        message = streams.decode(envelope_pb2.Control, payload, "control message")
        if message is None:
            return
        now = time.time_ns()
        self.readiness.on_control(message, now)
        if message.kind == envelope_pb2.Control.RENDEZVOUS_READY and self.links is not None:
            self.links.answered(link, message.state_digest, message.state_changed_unix_ns, now)
        if message.kind == envelope_pb2.Control.RENDEZVOUS_READY and message.deadlines_ms != self._deadlines_ms:
            self._deadlines_ms = dict(message.deadlines_ms)
            self._log_deadlines()

    def _log_deadlines(self) -> None:
        configured = self.config.rendezvous.deadline_ms
        if not self._deadlines_ms:
            logger.info("SLA in force: the configuration's %g ms for every use case", configured)
            return
        learned = ", ".join(f"use case {u!r} {ms:g} ms" for u, ms in sorted(self._deadlines_ms.items()))
        logger.info("SLA in force, from the rendezvous: %s (set through the Admin API); %g ms (configured) "
                    "for every other use case", learned, configured)

    def _on_monitor(self, link: Link) -> None:
        assert self.links is not None
        while True:
            try:
                event = recv_monitor_message(link.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self.links.lost(link, time.time_ns())
                if not self.links.shared:
                    logger.warning("lost the connection to the rendezvous at %s", link.endpoint)
                    self.readiness.on_rendezvous_lost()
                    self._fail(Unavailable("the rendezvous went away before answering; retry"))
                    continue
                logger.warning("lost the connection to rendezvous %d at %s: its share of the requests goes to %s",
                               link.index, link.endpoint,
                               ", ".join(f"rendezvous {i}" for i in self.links.live()) or "none (no other is live)")
                if self.links.all_lost:
                    self.readiness.on_rendezvous_lost()
                self._fail(Unavailable(f"rendezvous {link.index}, which was deciding this request, went away "
                                       "before answering; retry"), link.index)

    def _fail(self, error: Exception, rendezvous: int | None = None) -> None:
        """End every call waiting (for the decision of ``rendezvous`` only, if given) with ``error``."""
        for waiter in self.waiting.values():
            if not waiter.future.done() and (rendezvous is None or waiter.rendezvous == rendezvous):
                waiter.future.set_exception(error)

    # --- housekeeping -------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        probe_every_ns = self.config.frontend.heartbeat_ms * 1_000_000
        next_probe = 0
        while True:
            now = time.time_ns()
            if now >= next_probe:
                self._probe(now)
                self.readiness.refresh(now)
                next_probe = now + probe_every_ns
                self._read_all()  # a safety net under the readers: a missed edge costs one heartbeat at most
                if self.links is not None:
                    self.links.refresh(now)
            await asyncio.sleep(HOUSEKEEPING_S)

    def _probe(self, now: int) -> None:
        assert self._pub is not None
        self._drain_subscriptions()
        probe = envelope_pb2.Control(kind=envelope_pb2.Control.PROBE, frontend_id=self.identity, sent_unix_ns=now)
        for topic, upcoming in self._sequence.items():  # so subscribers count a gap at the end of a burst
            probe.next_sequence[topic.decode()] = upcoming
        try:
            self._pub.send_multipart([streams.CONTROL_TOPIC, probe.SerializeToString()], zmq.NOBLOCK)
        except zmq.Again:
            logger.warning("input stream full: probe not sent")

    def _drain_subscriptions(self) -> None:
        # XPUB delivers (un)subscription messages; read them so they do not pile up.
        assert self._pub is not None
        while True:
            try:
                self._pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
