"""What `rvz bench` counts: latency histograms and call tallies, mergeable across load processes.

Latencies are recorded in microseconds into HDR histograms (the ``hdrhistogram``
package): three significant digits from 1 µs to a minute in fixed memory, and a
compact encoding, so every load process ships its histograms to the parent,
which merges them exactly instead of averaging percentiles.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from rvz.wire.proto import scoring_pb2

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9}
# Answers are tallied by rule and by model; a server that puts unique text in `rule` must not grow these forever.
MAX_KEYS = 32
OTHER = "<other>"


def new_histogram() -> Any:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_ns(histogram: Any, value_ns: int) -> None:
    # Out-of-range values would be dropped by the histogram without a word; clamp them instead.
    histogram.record_value(min(max(value_ns // 1000, LOWEST_US), HIGHEST_US))


def summarize_us(histogram: Any) -> dict[str, float]:
    """count, min, mean, percentiles and max of a histogram of microseconds, in milliseconds."""
    count = histogram.get_total_count()
    if not count:
        return {"count": 0}
    summary: dict[str, float] = {"count": count, "min": histogram.get_min_value() / 1000,
                                 "mean": round(histogram.get_mean_value() / 1000, 4)}
    for name, percentile in PERCENTILES.items():
        summary[name] = histogram.get_value_at_percentile(percentile) / 1000
    summary["max"] = histogram.get_max_value() / 1000
    return summary


def _bump(counter: Counter[str], key: str, by: int = 1) -> None:
    if key not in counter and len(counter) >= MAX_KEYS:
        key = OTHER
    counter[key] += by


@dataclass
class Tally:
    """What one load process saw in the measured window (calls scheduled or started in it)."""

    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_details: dict[str, str] = field(default_factory=dict)
    rules: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)
    # Seconds from the start of the measured window to the last measured call's end.
    last_done_s: float = 0.0
    client_cpu_s: float = 0.0
    # Every call of the run, warm-up included (for CPU per request).
    completed_total: int = 0
    latency: Any = field(default_factory=new_histogram)
    server_elapsed: Any = field(default_factory=new_histogram)
    send_lag: Any = field(default_factory=new_histogram)
    # Per non-OK code: tells "refused at once" from "gave up after a while".
    error_latency: dict[str, Any] = field(default_factory=dict)

    def record_ok(self, latency_ns: int, response: bytes) -> None:
        self.ok += 1
        record_ns(self.latency, latency_ns)
        try:
            answer = scoring_pb2.ScoreResponse.FromString(response)
        except Exception:  # any Scoring server may be measured; a garbled answer is still an answer
            _bump(self.rules, "<undecodable response>")
            return
        if answer.elapsed_ms > 0:
            record_ns(self.server_elapsed, int(answer.elapsed_ms * 1e6))
        _bump(self.rules, answer.rule)
        _bump(self.models, f"{answer.model_name}/{answer.role}")

    def record_error(self, code: str, details: str, latency_ns: int) -> None:
        self.errors[code] += 1
        self.error_details.setdefault(code, details)
        if code not in self.error_latency:
            self.error_latency[code] = new_histogram()
        record_ns(self.error_latency[code], latency_ns)

    def to_wire(self) -> dict[str, Any]:
        """A picklable form with the histograms encoded, for the trip back to the parent process."""
        return {"sent": self.sent, "ok": self.ok, "errors": dict(self.errors),
                "error_details": self.error_details, "rules": dict(self.rules), "models": dict(self.models),
                "last_done_s": self.last_done_s, "client_cpu_s": self.client_cpu_s,
                "completed_total": self.completed_total, "latency": self.latency.encode(),
                "server_elapsed": self.server_elapsed.encode(), "send_lag": self.send_lag.encode(),
                "error_latency": {code: h.encode() for code, h in self.error_latency.items()}}

    def merge_wire(self, wire: dict[str, Any]) -> None:
        self.sent += wire["sent"]
        self.ok += wire["ok"]
        self.errors.update(wire["errors"])
        for code, details in wire["error_details"].items():
            self.error_details.setdefault(code, details)
        for key, n in wire["rules"].items():
            _bump(self.rules, key, n)
        for key, n in wire["models"].items():
            _bump(self.models, key, n)
        self.last_done_s = max(self.last_done_s, wire["last_done_s"])
        self.client_cpu_s += wire["client_cpu_s"]
        self.completed_total += wire["completed_total"]
        for name in ("latency", "server_elapsed", "send_lag"):
            getattr(self, name).decode_and_add(wire[name])
        for code, encoded in wire["error_latency"].items():
            self.error_latency.setdefault(code, new_histogram()).decode_and_add(encoded)
