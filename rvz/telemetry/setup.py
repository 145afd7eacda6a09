"""OpenTelemetry setup for one rvz process: traces and metrics, both off unless asked for.

The standard environment variables win over the config file, so an operator can
point any deployment at a collector without touching it:
OTEL_TRACES_EXPORTER (otlp | console | none), OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, OTEL_METRICS_EXPORTER
(prometheus | otlp | console | none), OTEL_RESOURCE_ATTRIBUTES. Each process
reports its own ``service.name`` (``rvz-frontend``, ``rvz-rendezvous``,
``rvz-model-NAME``; OTEL_SERVICE_NAME replaces the ``rvz`` prefix).

When tracing is off, ``Telemetry.tracer`` is None and the hot paths skip every
tracing call; when it is on, spans are only created for sampled requests.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

from rvz.config import MetricsConfig, TracingConfig

logger = logging.getLogger(__name__)

INSTRUMENTATION = "rvz"


@dataclass
class Telemetry:
    service_name: str
    tracer: trace.Tracer | None = None
    meter: Meter | None = None
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    metrics_port: int = 0

    def shutdown(self) -> None:
        """Flush what is buffered (spans, last metrics) before the process exits."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


def service_name(component: str) -> str:
    return f"{os.environ.get('OTEL_SERVICE_NAME') or 'rvz'}-{component}"


def setup(component: str, tracing: TracingConfig, metrics: MetricsConfig, metrics_listen: str = "") -> Telemetry:
    name = service_name(component)
    resource = Resource.create({"service.name": name, "service.namespace": "rvz"})
    telemetry = Telemetry(name)
    exporter = os.environ.get("OTEL_TRACES_EXPORTER", tracing.exporter).strip().lower()
    if exporter not in ("", "none"):
        provider = TracerProvider(resource=resource, sampler=_sampler(tracing))
        provider.add_span_processor(_span_processor(exporter, tracing))
        telemetry.tracer_provider = provider
        telemetry.tracer = provider.get_tracer(INSTRUMENTATION)
        logger.info("tracing on: exporter %s, service.name %s", exporter, name)
    reader, port = _metric_reader(metrics, metrics_listen)
    if reader is not None:
        telemetry.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        telemetry.meter = telemetry.meter_provider.get_meter(INSTRUMENTATION)
        telemetry.metrics_port = port
    return telemetry


def _sampler(tracing: TracingConfig) -> Sampler | None:
    if os.environ.get("OTEL_TRACES_SAMPLER"):
        return None  # the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG itself
    # Parent-based: a request sampled at the frontend (or by the client) is sampled everywhere.
    return ParentBased(TraceIdRatioBased(tracing.sample_ratio))


def _span_processor(exporter: str, tracing: TracingConfig) -> BatchSpanProcessor | SimpleSpanProcessor:
    if exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return SimpleSpanProcessor(ConsoleSpanExporter())
    if exporter != "otlp":
        raise ValueError(f"unknown trace exporter {exporter!r} (OTEL_TRACES_EXPORTER / tracing.exporter): "
                         "use otlp, console or none")
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    span_exporter: SpanExporter
    if tracing.endpoint and not _otlp_endpoint_in_env("TRACES"):
        span_exporter = OTLPSpanExporter(endpoint=tracing.endpoint, insecure=True)
    else:
        span_exporter = OTLPSpanExporter()
    return BatchSpanProcessor(span_exporter)


def _otlp_endpoint_in_env(signal: str) -> bool:
    names = ("OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    return any(os.environ.get(name) for name in names)


def _metric_reader(metrics: MetricsConfig, listen: str) -> tuple[MetricReader | None, int]:
    exporter = os.environ.get("OTEL_METRICS_EXPORTER", "").strip().lower() or metrics.exporter
    if exporter == "none" and metrics.listen:
        exporter = "prometheus"
    if exporter == "none":
        return None, 0
    if exporter == "prometheus":
        return _prometheus(listen or "127.0.0.1:0")
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    if exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return PeriodicExportingMetricReader(ConsoleMetricExporter()), 0
    if exporter != "otlp":
        raise ValueError(f"unknown metrics exporter {exporter!r}: use prometheus, otlp, console or none")
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return PeriodicExportingMetricReader(OTLPMetricExporter()), 0


def _prometheus(listen: str) -> tuple[MetricReader, int]:
    """Serve /metrics on ``listen`` (port 0 picks a free one); returns the reader and the bound port."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"  # no host: loopback only
    server, _thread = start_http_server(int(port), addr=host)
    bound = int(server.server_address[1])
    logger.info("metrics: Prometheus scrape endpoint on http://%s:%d/metrics", host, bound)
    if not _loopback(host):
        logger.warning("metrics are served on %s, beyond this host: anyone who can reach it reads them "
                       "(give metrics.listen as :PORT for loopback only)", host)
    return PrometheusMetricReader(), bound


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def offset_listen(listen: str, offset: int) -> str:
    """The metrics address of another process of the same deployment (port + offset)."""
    if not listen:
        return ""
    host, _, port = listen.rpartition(":")
    return f"{host}:{int(port) + offset}" if int(port) else listen
