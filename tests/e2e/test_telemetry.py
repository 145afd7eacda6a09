"""One trace per request across every process, exported over OTLP to a real receiver; metrics scraped."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from harness import Deployment

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]


@dataclass
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]


@dataclass
class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A minimal OTLP/gRPC trace receiver: what a collector would get."""

    spans: list[Span] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def Export(self, request: Any, context: Any) -> Any:
        with self.changed:
            for resource_spans in request.resource_spans:
                service = next(a.value.string_value for a in resource_spans.resource.attributes
                               if a.key == "service.name")
                for scope in resource_spans.scope_spans:
                    for s in scope.spans:
                        attributes = {a.key: _value(a.value) for a in s.attributes}
                        self.spans.append(Span(service, s.name, s.trace_id.hex(), s.span_id.hex(),
                                               s.parent_span_id.hex(), s.kind, attributes))
            self.changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout_s: float = 20) -> list[Span]:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.spans), timeout_s):
                raise AssertionError(f"spans never matched; got {[(s.service, s.name) for s in self.spans]}")
            return list(self.spans)


def _value(value: Any) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    servicer = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


def traced(deployment: Make, port: int, **env: str) -> Deployment:
    d = deployment()
    d.env.update({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
                  "OTEL_BSP_SCHEDULE_DELAY": "50", **env})
    return d.start([("champ", "rvz_test_models:echo", "champion"), ("chall", "rvz_test_models:echo", "challenger")])


SERVICES = {"rvz-frontend", "rvz-rendezvous", "rvz-model-champ", "rvz-model-chall"}


def spans_of(spans: list[Span], trace_id: str) -> list[Span]:
    return [s for s in spans if s.trace_id == trace_id]


def test_one_trace_per_request_across_all_processes(collector: tuple[Collector, int], deployment: Make) -> None:
    receiver, port = collector
    d = traced(deployment, port)
    responses = [d.score({"x": x}) for x in range(5)]
    ids = {r.request_id for r in responses}

    def complete(spans: list[Span]) -> bool:
        by_request = defaultdict(set)
        for s in spans:
            if s.attributes.get("rvz.request_id") in ids:
                by_request[s.attributes["rvz.request_id"]].add(s.service)
        return len(by_request) == 5 and all(services == SERVICES for services in by_request.values())

    spans = receiver.wait_for(complete)
    for response in responses:
        server = next(s for s in spans if s.name == "rvz.v1.Scoring/Score"
                      and s.attributes.get("rvz.request_id") == response.request_id)
        trace = spans_of(spans, server.trace_id)
        assert {s.service for s in trace} == SERVICES
        # Every span of the request carries this trace id, and no other request shares it.
        assert {s.trace_id for s in spans if s.attributes.get("rvz.request_id") == response.request_id} \
            == {server.trace_id}
        by_id = {s.span_id: s for s in trace}
        publish = next(s for s in trace if s.name == "publish default")
        assert publish.parent_id == server.span_id and publish.kind == 4  # PRODUCER
        models = [s for s in trace if s.name == "process default"]
        assert {s.service for s in models} == {"rvz-model-champ", "rvz-model-chall"}
        assert all(s.parent_id == publish.span_id and s.kind == 5 for s in models)  # CONSUMER
        decision = next(s for s in trace if s.name == "rendezvous default")
        assert decision.parent_id == publish.span_id
        assert decision.attributes["rvz.model.name"] == response.model_name == "champ"
        assert decision.attributes["rvz.rule"] == response.rule
        receipts = [s for s in trace if s.name.startswith("receive score")]
        assert receipts and all(by_id[s.parent_id].name == "process default" for s in receipts)


def test_a_client_traceparent_is_continued(collector: tuple[Collector, int], deployment: Make) -> None:
    receiver, port = collector
    d = traced(deployment, port)
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    from rvz.wire.proto import scoring_pb2, scoring_pb2_grpc

    request = scoring_pb2.ScoreRequest()
    request.features.update({"x": 1})
    scoring_pb2_grpc.ScoringStub(d.channel).Score(
        request, timeout=5, metadata=(("traceparent", f"00-{trace_id}-{parent_id}-01"),))
    spans = receiver.wait_for(lambda spans: {s.service for s in spans_of(spans, trace_id)} == SERVICES
                              and any(s.name == "rvz.v1.Scoring/Score" for s in spans_of(spans, trace_id)))
    server = next(s for s in spans_of(spans, trace_id) if s.name == "rvz.v1.Scoring/Score")
    assert server.parent_id == parent_id


def test_unsampled_requests_make_no_spans(collector: tuple[Collector, int], deployment: Make) -> None:
    receiver, port = collector
    d = traced(deployment, port, OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG="0")
    for x in range(5):
        d.score({"x": x})
    d.close()  # each process flushes its spans when it stops
    assert receiver.spans == []


def test_prometheus_counters_move(deployment: Make) -> None:
    d = deployment(extra='[metrics]\nlisten = "127.0.0.1:0"\n')
    d.start([("champ", "rvz_test_models:echo", "champion"), ("chall", "rvz_test_models:slow", "challenger")])
    port = int(d.proc("rendezvous").wait_stderr(r"Prometheus scrape endpoint on http://[\d.]+:(\d+)").group(1))

    def scrape() -> str:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()

    def value(text: str, metric: str, **labels: str) -> float:
        for line in text.splitlines():
            if line.startswith(metric + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = scrape()
    for x in range(10):
        d.score({"x": x})
    deadline = time.monotonic() + 10
    while value(scrape(), "rvz_rendezvous_late_scores_total", model="chall") < \
            value(before, "rvz_rendezvous_late_scores_total", model="chall") + 10 and time.monotonic() < deadline:
        time.sleep(0.05)  # the slow challenger's scores arrive after the answers
    after = scrape()
    assert value(after, "rvz_rendezvous_requests_total") - value(before, "rvz_rendezvous_requests_total") == 10
    assert value(after, "rvz_rendezvous_answers_total", model="champ") - \
        value(before, "rvz_rendezvous_answers_total", model="champ") == 10
    assert value(after, "rvz_rendezvous_late_scores_total", model="chall") - \
        value(before, "rvz_rendezvous_late_scores_total", model="chall") == 10
    assert re.search(r'rvz_rendezvous_score_latency_milliseconds_bucket\{.*model="champ"', after)
    assert value(after, "rvz_log_bytes_total", log="results") > 0
    assert value(after, "rvz_log_bytes_total", log="scores") > 0


def test_json_log_lines_carry_the_request_and_trace_ids(collector: tuple[Collector, int],
                                                         deployment: Make) -> None:
    _, port = collector
    d = deployment()
    d.env.update({"RVZ_LOG_FORMAT": "json", "OTEL_TRACES_EXPORTER": "otlp",
                  "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"})
    d.start([("champ", "rvz_test_models:fragile", "champion"), ("chall", "rvz_test_models:echo", "challenger")])
    response = d.score({"x": -1})
    line = d.proc("model-champ").wait_stderr(r'\{[^\n]*"request_id": "' + response.request_id + r'"[^\n]*\}')
    record = json.loads(line.group(0))
    assert record["level"] == "WARNING" and record["component"] == "rvz-model-champ"
    assert record["model"] == "champ" and len(record["trace_id"]) == 32
