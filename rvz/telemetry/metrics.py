"""Metrics of each process, as OpenTelemetry instruments.

Counts are kept as plain integers by the components themselves (free on the hot
path) and read by observable instruments only when a scrape or export happens.
Latencies need real histograms; they are recorded only when metrics are on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

if TYPE_CHECKING:
    from rvz.log.writer import LogWriter

# Latency buckets in ms: fine where the SLA lives (sub-ms to 100s of ms).
LATENCY_BUCKETS_MS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 250, 500, 1000, 2500)


def count(meter: Meter, name: str, description: str, read: Callable[[], int | float],
          attributes: Mapping[str, str] | None = None, unit: str = "1") -> None:
    """A monotonic counter whose value is read from ``read()`` at collection time."""
    def callback(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(read(), dict(attributes or {}))

    meter.create_observable_counter(name, callbacks=[callback], unit=unit, description=description)


def count_by(meter: Meter, name: str, description: str, counts: Counter[tuple[str, ...]],
             keys: tuple[str, ...]) -> None:
    """A counter per attribute combination; ``counts`` maps attribute values (in ``keys`` order) to totals."""
    def callback(_: CallbackOptions) -> Iterable[Observation]:
        for values, total in list(counts.items()):
            yield Observation(total, dict(zip(keys, values, strict=True)))

    meter.create_observable_counter(name, callbacks=[callback], description=description)


def gauge(meter: Meter, name: str, description: str, read: Callable[[], int | float], unit: str = "1") -> None:
    def callback(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(read())

    meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)


def gauge_by(meter: Meter, name: str, description: str, values: Mapping[Any, float],
             keys: tuple[str, ...]) -> None:
    def callback(_: CallbackOptions) -> Iterable[Observation]:
        for labels, value in list(values.items()):
            yield Observation(value, dict(zip(keys, labels, strict=True)))

    meter.create_observable_gauge(name, callbacks=[callback], description=description)


def latency_histogram(meter: Meter, name: str, description: str) -> Histogram:
    return meter.create_histogram(name, unit="ms", description=description,
                                  explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS_MS))


def observe_logs(meter: Meter, logs: Mapping[str, LogWriter]) -> None:
    """Bytes written, group commits and fsync latency of this process's logs (one instrument each)."""
    def per_log(read: Callable[[LogWriter], int]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(_: CallbackOptions) -> Iterable[Observation]:
            for name, log in logs.items():
                yield Observation(read(log), {"log": name})
        return callback

    meter.create_observable_counter("rvz.log.bytes", [per_log(lambda log: log.bytes_written)], unit="By",
                                    description="Bytes appended to the log")
    meter.create_observable_counter("rvz.log.fsyncs", [per_log(lambda log: log.fsync_count)],
                                    description="Group commits (fdatasync calls) of the log")
    fsync = meter.create_histogram("rvz.log.fsync.duration", unit="ms", description="fdatasync latency",
                                   explicit_bucket_boundaries_advisory=[0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100])
    for name, log in logs.items():
        log.add_durable_listener(_fsync_recorder(fsync, log, name))


def _fsync_recorder(fsync: Histogram, log: LogWriter, name: str) -> Callable[[int], None]:
    attributes = {"log": name}

    def record(_seq: int) -> None:
        # Runs in the log's sync thread, right after each group commit: off the hot path.
        fsync.record(log.last_fsync_seconds * 1000, attributes)

    return record
