"""The gRPC front door: ``rvz.v1.Scoring/Score``, health and reflection.

Score takes the request as raw bytes (the generic handler has no deserializer),
so the bytes the client sent are the bytes that travel to the models: they are
parsed once here for validation and never re-encoded. Every ``RvzError`` becomes
a gRPC status in one place, ``score``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.metrics import Histogram, Meter
from opentelemetry.trace import Span

from rvz.admin.service import AdminService
from rvz.config import Config
from rvz.errors import LogLockedError, NoAnswer, Overloaded, RvzError, status_from_value
from rvz.frontend import feedback, grpc_overflow
from rvz.frontend.admission import Admission
from rvz.frontend.grpc_backlog import Shedder
from rvz.frontend.publisher import Dispatcher
from rvz.frontend.readiness import Readiness
from rvz.frontend.validation import RequestCheck
from rvz.log.naming import log_name
from rvz.log.writer import LogWriter
from rvz.security.admin_auth import AdminAuth
from rvz.security.deployment import keyring_for
from rvz.security.keys import frontend_routing_id
from rvz.security.process import ProcessKeys
from rvz.security.tls import server_credentials
from rvz.telemetry import metrics, tracing
from rvz.telemetry.setup import Telemetry
from rvz.wire.ids import RequestIds
from rvz.wire.proto import admin_pb2, admin_pb2_grpc, scoring_pb2

logger = logging.getLogger(__name__)

SERVICE_NAME = scoring_pb2.DESCRIPTOR.services_by_name["Scoring"].full_name
ADMIN_SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
HEALTH_REFRESH_S = 0.05
# How often gRPC's own backlog is read (~0.2 ms a read; see rvz.grpc_backlog): often while calls queue
# inside gRPC, five times less often while few do (an overload's first 100 ms queue a few hundred calls,
# well below gRPC's own limit).
BACKLOG_CHECK_S = 0.02
BACKLOG_CHECK_QUIET_S = 0.1
# Calls that ended without an answer from the rendezvous: refused (the stream was full) or given up.
NOT_ANSWERED = frozenset((grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED))
# Logged at stop, with the count (scripts/bench reads it).
CANCELLED_IN_GRPC = "gRPC core cancelled"
# Metric labels for use cases the config does not name: at most this many announced ones, then "unknown".
MAX_USE_CASE_LABELS = 256
UNKNOWN_LABEL = "unknown"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(eq=False)
class Call:
    """One Score call as the frontend sees it, for its status, metrics and span."""

    received_ns: int
    # Set when the request is handed to the dispatcher: from then on the call waits for an answer.
    deadline_ns: int = 0
    use_case: str = ""
    request_id: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    span: Span | None = None


class Frontend:
    """One frontend process. ``name`` says which of the deployment's frontends it is ("" for the unnamed
    one): it names the request and feedback logs it writes (``rvz.frontend.names``)."""

    def __init__(self, config: Config, telemetry: Telemetry | None = None, name: str = "") -> None:
        self.config = config
        self.telemetry = telemetry or Telemetry("rvz-frontend")
        self.tracer = self.telemetry.tracer
        # Calls by (use case, status code name); read by the metrics exporter, never on a timer.
        self.calls: Counter[tuple[str, ...]] = Counter()
        self._configured_use_cases = {config.frontend.default_use_case, *(m.use_case for m in config.models)}
        self._announced_labels: set[str] = set()
        self.sla_ns = int(config.rendezvous.deadline_ms * 1e6)
        self.admission = Admission(config.frontend.max_in_flight)
        self.checks = RequestCheck(config.limits)
        self.shedder = Shedder(core_limit=config.frontend.grpc_backlog)
        # Whether gRPC core's own refusals are CANCELLED, which the frontend counts (see rvz.grpc_overflow).
        self.counts_cancelled = config.frontend.grpc_overflow == "cancel"
        # Score calls inside our handler; what gRPC holds beyond them waits for the event loop.
        self.in_handlers = 0
        # Raise ConfigError (before anything starts) for keys, certificates or a token file that cannot be had.
        keyring = keyring_for(config, "frontend")
        self.credentials = server_credentials(config.tls)
        self.admin_auth = AdminAuth.from_config(config)
        # With CURVE, the routing id is bound to the key: the rendezvous refuses it from any other.
        process = secrets.token_hex(6).encode()
        self.identity = frontend_routing_id(keyring.own.public, process) if keyring else b"fe-" + process
        self.ids = RequestIds()
        self.readiness = Readiness(config.frontend, config.streams)
        self.name = name
        self.request_log = LogWriter(f"{config.log.dir}/{log_name('requests', name)}", "rvz.v1.RequestEnvelope",
                                     segment_bytes=config.log.segment_mb * 1024 * 1024, fsync=config.log.fsync)
        self.dispatcher = Dispatcher(config, self.readiness, self.request_log, self.identity, self.tracer,
                                     ProcessKeys(keyring))
        self.health = health.aio.HealthServicer()
        self.feedback = feedback.FeedbackService(config.log, name)
        # No maximum_concurrent_rpcs: grpc.aio enforces it by not taking new calls from gRPC core, where
        # they queue until core's backlog protection (grpc.server.max_pending_requests) turns them away.
        # Taking every call and refusing the excess ourselves (see Admission) keeps that queue short and
        # gives the client a RESOURCE_EXHAUSTED it can act on.
        options = grpc_overflow.server_options(config.frontend, config.limits.request_bytes,
                                               shared_port=bool(config.requests_hub))
        self.server = grpc.aio.server(options=options)
        # The Admin API on a listener of its own (security.admin_listen), or on the main one.
        self.admin_server = grpc.aio.server() if config.security.admin_listen else None
        self.port = 0
        self.admin_port = 0
        self.started = False
        self._tasks: list[asyncio.Task[None]] = []
        self._published_health: dict[str, int] = {}
        # Called once, the first time the server's health turns SERVING (`rvz up` waits for every frontend's).
        self.on_serving: Callable[[], None] | None = None
        self._served = False
        self._duration: Histogram | None = None
        if self.telemetry.meter is not None:
            self._observe(self.telemetry.meter)

    def _observe(self, meter: Meter) -> None:
        metrics.count_by(meter, "rvz.frontend.calls", "Score calls by use case and status code", self.calls,
                         ("use_case", "code"))
        metrics.gauge(meter, "rvz.frontend.in_flight", "Score calls waiting for their answer",
                      lambda: len(self.dispatcher.waiting))
        metrics.gauge(meter, "rvz.frontend.admission_limit", "Score calls allowed to wait at once (adapts to "
                      "what is answered within the deadlines; at most frontend.max_in_flight)",
                      lambda: self.admission.limit)
        metrics.count(meter, "rvz.frontend.admission_tightened", "Times the admission limit was tightened "
                      "because answers were using most of their deadlines", lambda: self.admission.tightened)
        metrics.count(meter, "rvz.frontend.shed", "Calls refused because gRPC held a long queue of calls the "
                      "frontend had not picked up (the machine cannot keep up)", lambda: self.shedder.shed)
        if self.counts_cancelled:
            metrics.count(meter, "rvz.frontend.cancelled_in_grpc", "Calls gRPC core cancelled before the frontend "
                          "could pick them up (past frontend.grpc_backlog waiting: the machine cannot keep up)",
                          self.shedder.cancelled_by_grpc)
        metrics.count(meter, "rvz.frontend.answers_before_sync", "Answers sent before their request's record was "
                      "fdatasync'ed (at the deadline with log.durable_answers, at once without): a host crash, not a "
                      "process crash, could lose those records", lambda: self.dispatcher.answered_before_sync)
        metrics.count(meter, "rvz.frontend.no_decision", "Calls the frontend ended at their deadline because the "
                      "rendezvous sent no decision", lambda: self.dispatcher.backstopped)
        metrics.count(meter, "rvz.frontend.refused_full", "Requests refused because the input stream was full "
                      "(never dropped silently)", lambda: self.dispatcher.refused_full)
        metrics.observe_logs(meter, {"requests": self.request_log})
        self._duration = metrics.latency_histogram(meter, "rvz.frontend.call.duration",
                                                   "Score call duration as the frontend sees it")

    async def start(self) -> int:
        """Bind, connect the streams and start serving; returns the bound port."""
        if self.started:
            return self.port
        try:
            self.request_log.start()
        except LogLockedError as e:
            raise LogLockedError(f"{e}: another frontend of this data directory writes it; give this one a name of "
                                 "its own (`rvz frontend --name NAME` writes requests.NAME)") from e
        await self.dispatcher.start()
        handler = grpc.unary_unary_rpc_method_handler(self.score)  # raw bytes in, raw bytes out
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, {"Score": handler})])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        admin = AdminService(self.dispatcher, self.config.frontend.default_use_case, self.admin_auth)
        admin_pb2_grpc.add_AdminServicer_to_server(admin, self.admin_server or self.server)  # type: ignore[no-untyped-call]
        self.feedback.add_to(self.server)
        served = [SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME,
                  feedback.SERVICE_NAME]
        reflection.enable_server_reflection(served if self.admin_server else [*served, ADMIN_SERVICE_NAME],
                                            self.server)
        await self.health.set("", NOT_SERVING)
        self.port = self._listen(self.server, self.config.frontend.listen, "frontend.listen")
        if self.admin_server is not None:
            self.admin_port = self._listen(self.admin_server, self.config.security.admin_listen,
                                           "security.admin_listen")
            await self.admin_server.start()
        await self.server.start()
        self._tasks = [asyncio.create_task(self._publish_health(), name="rvz-health")]
        if self.counts_cancelled:  # with "refuse", core turns the excess away itself and channelz is empty
            self._tasks.append(asyncio.create_task(self._watch_backlog(), name="rvz-grpc-backlog"))
        self.started = True
        return self.port

    def _listen(self, server: grpc.aio.Server, address: str, setting: str) -> int:
        """Bind ``address`` with TLS if configured; returns the port (raises ``RvzError`` if it cannot)."""
        if self.credentials is None:
            port: int = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, self.credentials)
        if port == 0:
            raise RvzError(f"cannot listen on {address} ({setting}): the address is in use or invalid")
        return port

    async def stop(self, grace: float = 2.0) -> None:
        """Stop taking calls, let those in flight finish (up to ``grace`` s), then close everything."""
        if not self.started:
            return
        self.started = False
        if self.counts_cancelled:  # read while the server still exists
            logger.info("%s %d calls before the frontend could pick them up", CANCELLED_IN_GRPC,
                        self.shedder.cancelled_by_grpc(tries=5))
        await self.health.enter_graceful_shutdown()
        for task in self._tasks:
            task.cancel()
        await self.server.stop(grace)
        if self.admin_server is not None:
            await self.admin_server.stop(grace)
        await self.dispatcher.stop()
        self.request_log.stop()
        self.feedback.stop()

    async def score(self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        call = Call(time.time_ns())
        if self.tracer is not None:
            call.span = tracing.start_call(self.tracer, context.invocation_metadata(), call.received_ns)
        self.in_handlers += 1  # undone in the finally below
        try:
            return await self._score(data, context, call)
        except RvzError as e:  # the one place where rvz's errors become gRPC statuses
            call.code, call.message = e.code, str(e)
            if call.request_id:
                context.set_trailing_metadata((("rvz-request-id", call.request_id),))
            # Not context.abort(): it raises through gRPC's handler wrapper, 25% more CPU per refusal, and
            # refusals are what an overloaded frontend spends its time on.
            context.set_code(e.code)
            context.set_details(call.message)
            return b""
        except asyncio.CancelledError:  # the client went away or its deadline passed
            call.code = grpc.StatusCode.CANCELLED
            raise
        finally:
            self.in_handlers -= 1
            if call.deadline_ns and call.code not in NOT_ANSWERED:
                self.admission.on_answer(call.received_ns, time.time_ns(), call.deadline_ns)
            label = self._use_case_label(call.use_case)
            self.calls[(label, call.code.name)] += 1
            if self._duration is not None:
                self._duration.record((time.time_ns() - call.received_ns) / 1e6,
                                      {"use_case": label, "code": call.code.name})
            if call.span is not None:
                tracing.end_call(call.span, call.request_id, call.use_case, call.code.value[0], call.message)

    async def _score(self, data: bytes, context: grpc.aio.ServicerContext[bytes, bytes], call: Call) -> bytes:
        request = self.checks.parse(data)
        use_case = call.use_case = request.use_case or self.config.frontend.default_use_case
        # Refusals first: under overload they must cost as little as possible.
        if self.shedder.refuses():
            raise Overloaded(f"this frontend is behind: {self.shedder.waiting} calls are waiting inside gRPC for "
                             "it to pick them up; retry with backoff")
        in_flight = len(self.dispatcher.waiting)
        if not self.admission.admits(in_flight):
            raise Overloaded(self._overloaded_message(in_flight))
        if request.use_case:
            self.checks.check_use_case(use_case)
        schema = self.readiness.check(use_case)
        self.checks.check_features(request, use_case, schema)
        sla_ms = self.readiness.deadlines_ms.get(use_case)  # a policy set through the Admin API wins
        deadline_ns = call.received_ns + (self.sla_ns if sla_ms is None else int(sla_ms * 1e6))
        remaining = context.time_remaining()  # gRPC Python does not propagate deadlines by itself
        if remaining is not None:
            deadline_ns = min(deadline_ns, time.time_ns() + int(remaining * 1e9))
        call.request_id = self.ids.next()
        call.deadline_ns = deadline_ns
        result = await self.dispatcher.submit(call.request_id, use_case, data, call.received_ns, deadline_ns,
                                              call.span)
        if result.status_code:
            raise NoAnswer(status_from_value(result.status_code), result.status_message)
        return result.response

    def _use_case_label(self, use_case: str) -> str:
        """A metric label from a bounded set: use cases configured or announced (capped), else "unknown".

        A use case name comes from the client: as a label it would let any caller grow the metrics
        without bound (one series per name, each name up to the request's size).
        """
        if use_case in self._configured_use_cases or use_case in self._announced_labels:
            return use_case
        if self.readiness.models.known(use_case) and len(self._announced_labels) < MAX_USE_CASE_LABELS:
            self._announced_labels.add(use_case)
            return use_case
        return UNKNOWN_LABEL

    def _overloaded_message(self, in_flight: int) -> str:
        limit, most = self.admission.limit, self.admission.max_in_flight
        if limit >= most:
            return f"{in_flight} requests already in flight (frontend.max_in_flight = {most}); retry with backoff"
        return (f"{in_flight} requests already in flight: more than this deployment can answer within their "
                f"deadlines right now (adaptive admission limit {limit}, at most frontend.max_in_flight = {most}); "
                "retry with backoff")

    async def _watch_backlog(self) -> None:
        """Keep the shedder's reading of gRPC's backlog fresh (see rvz.grpc_backlog.Shedder)."""
        while True:
            queueing = self.shedder.waiting > self.shedder.shed_from // 4
            await asyncio.sleep(BACKLOG_CHECK_S if queueing else BACKLOG_CHECK_QUIET_S)
            if not self.shedder.update(self.in_handlers):
                return  # cannot be measured here; the admission limit still applies

    async def _publish_health(self) -> None:
        """Mirror readiness into the gRPC health service: "" for the server, one name per use case."""
        while True:
            now = time.time_ns()
            statuses = {"": SERVING if self.readiness.any_serving(now) else NOT_SERVING}
            for use_case in self.readiness.models.use_cases():
                statuses[use_case] = SERVING if self.readiness.serving(use_case, now) else NOT_SERVING
            for service, status in statuses.items():
                if self._published_health.get(service) != status:
                    self._published_health[service] = status
                    await self.health.set(service, status)
                    logger.info("health of %r: %s", service or "<server>",
                                health_pb2.HealthCheckResponse.ServingStatus.Name(status))
                    if service == "" and status == SERVING and not self._served and self.on_serving is not None:
                        self._served = True
                        self.on_serving()
            await asyncio.sleep(HEALTH_REFRESH_S)
