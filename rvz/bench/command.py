"""`rvz bench` (the click command is ``rvz.cli.bench``): a load generator for ``rvz.v1.Scoring/Score``,
and ``run_bench`` for Python callers.

Closed loop (``concurrency``) measures throughput at a fixed number of calls
in flight; open loop (``rate``) sends on a fixed timetable and measures
latency from each call's scheduled send time. The work is done in
``rvz.bench.load`` (the callers) and ``rvz.bench.stats`` (histograms, tallies,
with hdrhistogram: the bench extra); both are imported only when a benchmark
runs, so registering the command costs every other `rvz` command nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rvz.security.tls import ClientTls

DEFAULT_TARGET = "127.0.0.1:50051"
# A row of the demo's iris use case, so `rvz bench` works against `rvz up` as it is.
DEFAULT_FEATURES: dict[str, Any] = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
PROGRESS_REFRESH_S = 0.25


@dataclass(frozen=True)
class BenchResult:
    """One run's figures. Latencies are in milliseconds; counts cover calls scheduled in the measured window."""

    target: str
    mode: str  # "closed" or "open"
    concurrency: int | None
    rate: float | None
    processes: int
    warmup_s: float
    duration_s: float
    timeout_s: float
    use_case: str
    # From the start of the measured window to the end of its last call.
    elapsed_s: float
    sent: int
    ok: int
    errors: dict[str, int]
    # The first message seen for each non-OK code, and how long those calls took.
    error_details: dict[str, str]
    error_latency_ms: dict[str, dict[str, float]]
    # Calls that neither succeeded nor failed: always 0 unless the generator itself is broken.
    missing: int
    throughput_rps: float
    latency_ms: dict[str, float]
    # ScoreResponse.elapsed_ms as the server reported it (OK answers that carry it).
    server_elapsed_ms: dict[str, float]
    # Open loop: how late calls left against their timetable (a client that cannot keep up shows here).
    send_lag_ms: dict[str, float]
    answers_by_rule: dict[str, int]
    answers_by_model: dict[str, int]
    client_cpu_s: float
    # Every call of the run, warm-up included: the denominator for the server's CPU per request.
    completed_total: int
    # The merged latency histogram (HDR, microseconds, base64): decode with hdrh to merge runs.
    latency_histogram: str = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def encode_request(use_case: str, features: dict[str, Any]) -> bytes:
    from rvz.errors import BenchError
    from rvz.wire.proto import scoring_pb2

    request = scoring_pb2.ScoreRequest(use_case=use_case)
    try:
        request.features.update(features)
    except (ValueError, TypeError) as e:
        raise BenchError(f"features cannot be sent as a google.protobuf.Struct: {e}") from e
    data: bytes = request.SerializeToString()
    return data


def run_bench(target: str = DEFAULT_TARGET, *, concurrency: int = 16, rate: float | None = None,
              warmup_s: float = 1.0, duration_s: float = 5.0, use_case: str = "",
              features: dict[str, Any] | None = None, timeout_s: float = 5.0, processes: int = 1,
              progress: bool = False, check_first: bool = True, tls: ClientTls | None = None) -> BenchResult:
    """Load ``target`` and return what was measured; raises ``BenchError`` if it cannot run.

    ``rate`` (requests/s) selects the open loop; otherwise ``concurrency`` calls are kept in flight.
    ``check_first``: send one call before the load and raise ``FirstCallFailed`` if it fails (turn it
    off to measure refusals). ``tls``: how to reach a TLS frontend (None: plaintext).
    """
    from rvz.bench.load import LoadPlan, first_call, run_here, run_spawned, split_plan
    from rvz.bench.stats import summarize_us
    from rvz.errors import BenchError

    if concurrency < 1 or processes < 1 or duration_s <= 0 or warmup_s < 0 or timeout_s <= 0:
        raise BenchError("concurrency and processes must be >= 1, duration and timeout > 0, warm-up >= 0")
    if rate is not None and rate <= 0:
        raise BenchError("rate must be > 0 requests/s")
    request = encode_request(use_case, DEFAULT_FEATURES if features is None else features)
    base = LoadPlan(target, request, timeout_s, warmup_s, duration_s, tls=tls)
    if check_first:
        first_call(base)
    plans = split_plan(base, concurrency, rate, processes)
    slots: Any = [0] * len(plans)
    if len(plans) > 1:
        import multiprocessing

        slots = multiprocessing.get_context("spawn").Array("q", len(plans), lock=False)
    with _Progress(slots, len(plans), warmup_s, duration_s, progress) as bar:
        tally = run_here(plans[0], slots, bar.started) if len(plans) == 1 else run_spawned(plans, slots, bar.started)
    elapsed = tally.last_done_s or duration_s
    failed = sum(tally.errors.values())
    return BenchResult(
        target=target, mode="open" if rate is not None else "closed",
        concurrency=None if rate is not None else concurrency, rate=rate, processes=len(plans),
        warmup_s=warmup_s, duration_s=duration_s, timeout_s=timeout_s, use_case=use_case,
        elapsed_s=round(elapsed, 6), sent=tally.sent, ok=tally.ok, errors=dict(sorted(tally.errors.items())),
        error_details=tally.error_details, missing=tally.sent - tally.ok - failed,
        error_latency_ms={code: summarize_us(h) for code, h in sorted(tally.error_latency.items())},
        throughput_rps=round(tally.ok / elapsed, 2), latency_ms=summarize_us(tally.latency),
        server_elapsed_ms=summarize_us(tally.server_elapsed), send_lag_ms=summarize_us(tally.send_lag),
        answers_by_rule=dict(tally.rules.most_common()), answers_by_model=dict(tally.models.most_common()),
        client_cpu_s=round(tally.client_cpu_s, 3), completed_total=tally.completed_total,
        latency_histogram=tally.latency.encode().decode("ascii"))


class _Progress:
    """A progress bar on stderr, redrawn by a thread that reads the load processes' call counters."""

    def __init__(self, slots: Any, n: int, warmup_s: float, duration_s: float, enabled: bool) -> None:
        self.slots = slots
        self.n = n
        self.warmup_s = warmup_s
        self.total_s = warmup_s + duration_s
        self.enabled = enabled
        self.start_wall: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def started(self, start_wall: float) -> None:
        self.start_wall = start_wall

    def __enter__(self) -> _Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._draw, name="rvz-bench-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _draw(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), auto_refresh=False, transient=True) as bar:
            task = bar.add_task("connecting", total=self.total_s)
            while not self._stop.wait(PROGRESS_REFRESH_S):
                if self.start_wall is not None:
                    bar.update(task, completed=min(self.total_s, max(0.0, time.time() - self.start_wall)),
                               description=self._describe())
                bar.refresh()

    def _describe(self) -> str:
        assert self.start_wall is not None
        elapsed = time.time() - self.start_wall
        phase = "warm-up" if elapsed < self.warmup_s else "measuring" if elapsed < self.total_s else "finishing"
        calls = sum(self.slots[k] for k in range(self.n))
        return f"{phase:<9} {calls:>9,} calls"


def render(result: BenchResult) -> str:
    """A few lines for a person."""
    load = (f"open loop at {result.rate:g} req/s" if result.mode == "open"
            else f"closed loop, {result.concurrency} in flight")
    lines = [f"{result.target}: {load}, {result.processes} load process(es), "
             f"{result.duration_s:g} s measured after {result.warmup_s:g} s warm-up",
             f"calls      {result.sent} sent, {result.ok} OK, {result.sent - result.ok - result.missing} failed"
             + "".join(f", {code} {n}" for code, n in result.errors.items())
             + (f", {result.missing} MISSING" if result.missing else ""),
             f"throughput {result.throughput_rps:,.1f} OK/s over {result.elapsed_s:.2f} s",
             f"latency    {_percentiles(result.latency_ms)}"]
    if result.server_elapsed_ms.get("count"):
        lines.append(f"server     {_percentiles(result.server_elapsed_ms)}  (ScoreResponse.elapsed_ms)")
    if result.send_lag_ms.get("count"):
        lines.append(f"send lag   {_percentiles(result.send_lag_ms)}")
    lines.extend(f"answered   {n:>8}  {rule}" for rule, n in result.answers_by_rule.items())
    lines.extend(f"error      {code}: {details} (p50 {result.error_latency_ms[code].get('p50', 0):.3f} ms)"
                 for code, details in result.error_details.items())
    lines.append(f"client CPU {result.client_cpu_s:.2f} s")
    return "\n".join(lines)


def _percentiles(summary: dict[str, float]) -> str:
    if not summary.get("count"):
        return "-"
    names = ("p50", "p90", "p99", "p99.9", "max")
    return "  ".join(f"{name} {summary[name]:.3f}" for name in names) + f"  ms (mean {summary['mean']:.3f})"
