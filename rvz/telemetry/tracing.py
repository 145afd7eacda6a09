"""Spans of one request across processes, following OpenTelemetry's semantic conventions.

One trace per Score call: the frontend's SERVER span, its PRODUCER span for the
publish, a CONSUMER span per model that scored it (in the worker's process) and
the rendezvous's CONSUMER decision span, plus a short span per score the
rendezvous received (marked ``rvz.late`` when it came after the answer). Context
crosses ZeroMQ as W3C traceparent/tracestate inside the protobuf envelopes, put
there by the configured OpenTelemetry propagator.

Every function returns None (and costs next to nothing) for unsampled requests:
the frontend only puts a trace context into the envelope when its span is
sampled, and the other processes only trace envelopes that carry one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

SERVICE = "rvz.v1.Scoring"


def _start(tracer: trace.Tracer, name: str, carrier: Mapping[str, str], kind: SpanKind, start_ns: int,
           attributes: dict[str, str | int | float | bool]) -> Span | None:
    span = tracer.start_span(name, context=propagate.extract(carrier), kind=kind, start_time=start_ns,
                             attributes=attributes)
    return span if span.is_recording() else None


def trace_id_of(carrier: Mapping[str, str]) -> str:
    """The trace id in a W3C traceparent (``00-<trace id>-<span id>-<flags>``), for log lines."""
    parts = carrier.get("traceparent", "").split("-")
    return parts[1] if len(parts) == 4 else ""


def inject(span: Span, carrier: MutableMapping[str, str]) -> None:
    propagate.inject(carrier, context=trace.set_span_in_context(span))


def start_call(tracer: trace.Tracer, metadata: Iterable[tuple[str, str | bytes]] | None,
               start_ns: int) -> Span | None:
    """The frontend's server span; continues a trace the client sent in gRPC metadata."""
    carrier = {key: value for key, value in metadata or () if isinstance(value, str)}
    return _start(tracer, f"{SERVICE}/Score", carrier, SpanKind.SERVER, start_ns, {
        "rpc.system": "grpc", "rpc.service": SERVICE, "rpc.method": "Score"})


def end_call(span: Span, request_id: str, use_case: str, code: int, message: str = "") -> None:
    span.set_attribute("rvz.request_id", request_id)
    span.set_attribute("rvz.use_case", use_case)
    span.set_attribute("rpc.grpc.status_code", code)
    if code:
        span.set_status(Status(StatusCode.ERROR, message))
    span.end()


def start_publish(tracer: trace.Tracer, call: Span, use_case: str, request_id: str,
                  carrier: MutableMapping[str, str]) -> Span:
    """PRODUCER span for publishing on the input stream; its context travels in ``carrier``."""
    span = tracer.start_span(f"publish {use_case}", context=trace.set_span_in_context(call), kind=SpanKind.PRODUCER,
                             attributes={"messaging.system": "zeromq", "messaging.operation.type": "send",
                                         "messaging.destination.name": use_case, "messaging.message.id": request_id})
    inject(span, carrier)
    return span


def start_scoring(tracer: trace.Tracer, carrier: Mapping[str, str], request_id: str, model_name: str,
                  model_version: str, role: str, use_case: str, start_ns: int) -> Span | None:
    """A model worker's CONSUMER span for one request."""
    if not carrier:
        return None
    return _start(tracer, f"process {use_case}", carrier, SpanKind.CONSUMER, start_ns, {
        "messaging.system": "zeromq", "messaging.operation.type": "process", "messaging.destination.name": use_case,
        "messaging.message.id": request_id, "rvz.request_id": request_id, "rvz.model.name": model_name,
        "rvz.model.version": model_version, "rvz.model.role": role})


def end_scoring(span: Span, error_type: str, error: str, end_ns: int) -> None:
    if error_type:
        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, error))
    span.end(end_time=end_ns)


def start_decision(tracer: trace.Tracer, carrier: Mapping[str, str], request_id: str, use_case: str,
                   start_ns: int) -> Span | None:
    """The rendezvous's CONSUMER span from seeing the request to answering it."""
    if not carrier:
        return None
    return _start(tracer, f"rendezvous {use_case}", carrier, SpanKind.CONSUMER, start_ns, {
        "messaging.system": "zeromq", "messaging.operation.type": "process", "messaging.destination.name": use_case,
        "rvz.request_id": request_id, "rvz.use_case": use_case})


def end_decision(span: Span, rule: str, model_name: str, role: str, elapsed_ms: float, code: int,
                 message: str, end_ns: int) -> None:
    span.set_attributes({"rvz.rule": rule, "rvz.model.name": model_name, "rvz.model.role": role,
                         "rvz.elapsed_ms": elapsed_ms, "rpc.grpc.status_code": code})
    if code:
        span.set_status(Status(StatusCode.ERROR, message))
    span.end(end_time=end_ns)


def record_score(tracer: trace.Tracer, carrier: Mapping[str, str], request_id: str, model_name: str,
                 role: str, late: bool, error_type: str, now_ns: int) -> None:
    """A short span for a score the rendezvous received, child of the worker's span."""
    if not carrier:
        return
    span = _start(tracer, f"receive score {model_name}", carrier, SpanKind.CONSUMER, now_ns, {
        "rvz.request_id": request_id, "rvz.model.name": model_name, "rvz.model.role": role, "rvz.late": late})
    if span is not None:
        if error_type:
            span.set_attribute("error.type", error_type)
        span.end(end_time=now_ns)
