"""The measurement plan of `scripts/bench`: what is run against which system, in which order.

The machine is shared and noisy, so the main figures come from several short
rounds, each starting the systems afresh one at a time (nothing else of ours
runs while one is measured; the order rotates between rounds) and the table
quotes medians. CPU time is read from /proc for the serving processes only;
the load generator runs in this process (or its own children) and is excluded.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench_systems import hops, otlp_sink, serving, systems
from bench_systems.procs import Proc, spawn
from bench_systems.systems import System
from rvz.bench.command import BenchResult, run_bench
from rvz.errors import StartupFailed
from rvz.frontend.server import CANCELLED_IN_GRPC
from rvz.log.reader import iter_records

T = TypeVar("T")

# The load generator's per-call deadline: well past rvz's 100 ms SLA, so a call the server loses is seen
# as a client-side DEADLINE_EXCEEDED, never mistaken for an answer.
CALL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Plan:
    rounds: int
    warmup_s: float
    saturation_s: float
    single_s: float
    half_rate_s: float
    overload_s: float
    fallback_s: float
    tracing_s: float
    # The comparison by turns (by_turns): 1-in-flight slices and saturation slices per system.
    turns_slices: int = 10
    turns_saturation_slices: int = 3
    fallback_rate: float = 100.0
    concurrency: int = 64
    processes: int = 1
    overload_processes: int = 1
    streams: str = "ipc"


# The overload run must outlast the time it takes 2x load to fill frontend.max_in_flight (1000 calls
# at an excess of 1x the max rate: about 2 s at 500 req/s), so that refusals are actually exercised.
FULL = Plan(rounds=3, warmup_s=1.0, saturation_s=5.0, single_s=3.0, half_rate_s=5.0, overload_s=5.0,
            fallback_s=4.0, tracing_s=3.0)
QUICK = Plan(rounds=1, warmup_s=0.5, saturation_s=2.0, single_s=1.5, half_rate_s=2.0, overload_s=3.0,
             fallback_s=2.0, tracing_s=1.5, turns_slices=4, turns_saturation_slices=1)
STARTERS: dict[str, Callable[[Path, Plan], System]] = {
    "direct": lambda root, plan: systems.start_direct(root),
    "fan-out": lambda root, plan: systems.start_fanout(root),
    "rvz": lambda root, plan: systems.start_rvz(root, streams=plan.streams, env=tracing_env(None)),
}


def start(name: str, root: Path, plan: Plan) -> System:
    """Start a system, once more if it fails: the checkout may be mid-edit, the machine briefly overloaded."""
    try:
        return STARTERS[name](root, plan)
    except StartupFailed:
        return STARTERS[name](root / "retry", plan)


@contextmanager
def running(system: System) -> Iterator[System]:
    try:
        yield system
    finally:
        system.stop()


def _bench(system: System, plan: Plan, **load: Any) -> BenchResult:
    load.setdefault("warmup_s", plan.warmup_s)
    load.setdefault("processes", plan.processes)
    return run_bench(system.target, timeout_s=CALL_TIMEOUT_S, **load)


def saturation(system: System, plan: Plan, duration_s: float | None = None) -> dict[str, Any]:
    """Closed loop at ``plan.concurrency`` in flight; CPU-seconds of the serving processes per 1000 calls."""
    before = system.usage()
    result = _bench(system, plan, concurrency=plan.concurrency, duration_s=duration_s or plan.saturation_s)
    after = system.usage()
    calls = max(1, result.completed_total)  # the warm-up's calls included: usage is read around both
    per_call = {name: {"cpu_us": round((after[name][0] - cpu) / calls * 1e6, 1),
                       "switches": round((after[name][1] - switches) / calls, 2)}
                for name, (cpu, switches) in before.items()}
    cpu_s = sum(after[name][0] - cpu for name, (cpu, _) in before.items())
    return {"rps": result.throughput_rps, "cpu_s_per_1000": round(cpu_s / calls * 1000, 4),
            "per_call": per_call, "rss_mb": system.rss_mb(), "result": result.as_dict()}


def single(system: System, plan: Plan) -> dict[str, Any]:
    """One call in flight: the latency floor."""
    result = _bench(system, plan, concurrency=1, duration_s=plan.single_s)
    return {"p50_ms": result.latency_ms.get("p50"), "p99_ms": result.latency_ms.get("p99"), "result": result.as_dict()}


def at_rate(system: System, plan: Plan, rate: float) -> dict[str, Any]:
    """Open loop at ``rate``: latency from the scheduled send time."""
    result = _bench(system, plan, rate=rate, duration_s=plan.half_rate_s)
    return {"rate": rate, "p99_ms": result.latency_ms.get("p99"), "p50_ms": result.latency_ms.get("p50"),
            "result": result.as_dict()}


def main_rounds(root: Path, plan: Plan, say: Callable[[str], None]) -> dict[str, Any]:
    """Saturation and 1-in-flight for every system, then open loop at 50% of rvz's median max rate."""
    names = list(STARTERS)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {n: [] for n in names} for m in
                                                        ("saturation", "single", "half_rate")}
    for r in range(plan.rounds):
        for name in _rotated(names, r):
            with running(start(name, root / f"round{r}", plan)) as system:
                runs["saturation"][name].append(saturation(system, plan))
                single_from_ns = time.time_ns()
                runs["single"][name].append(single(system, plan))
            if name == "rvz":  # read once stopped, so every record is flushed
                runs["single"][name][-1]["hops_ms"] = hops.breakdown(system.root / "data", single_from_ns)
            say(f"round {r + 1}/{plan.rounds} {name}: {runs['saturation'][name][-1]['rps']:,.0f} req/s at "
                f"{plan.concurrency} in flight, p50 {runs['single'][name][-1]['p50_ms']} ms at 1 in flight")
    half_rate = round(0.5 * statistics.median(run["rps"] for run in runs["saturation"]["rvz"]), 1)
    for r in range(plan.rounds):
        for name in _rotated(names, r):
            with running(start(name, root / f"half{r}", plan)) as system:
                runs["half_rate"][name].append(at_rate(system, plan, half_rate))
            say(f"round {r + 1}/{plan.rounds} {name}: p99 {runs['half_rate'][name][-1]['p99_ms']} ms "
                f"at {half_rate:g} req/s (open loop)")
    return {"half_rate": half_rate, "runs": runs}


# The comparison by turns: the length of each 1-in-flight slice and each saturation slice (see Plan).
SINGLE_SLICE_S = 0.6
SATURATION_SLICE_S = 2.0
BY_TURNS = ("direct", "bare", "rvz")


def by_turns(root: Path, plan: Plan, half_rate: float) -> dict[str, Any]:
    """direct, the bare rendezvous and rvz, all three running, measured by turns: at 1 in flight, at
    saturation, and in open loop at ``half_rate`` (the table's 50% of rvz's max rate).

    The table measures each system in its own window, a minute apart: on a shared machine the host's load
    moves in between, and the difference of two p50s carries that too. Here all three are up (idle when
    not measured) and measured in alternating short slices, so the host's load is shared between them.
    Added latency is the median over slices of a system's p50 minus direct's in the same turn.

    The bare rendezvous (bench_systems.bare) is rvz's five processes and three ZeroMQ hops with nothing
    else: what the architecture costs on this machine before any of rvz's own work.
    """
    starters: dict[str, Callable[[Path], System]] = {
        "direct": systems.start_direct, "bare": systems.start_bare,
        "rvz": lambda work: systems.start_rvz(work, streams=plan.streams, env=tracing_env(None))}
    work = root / "interleaved"
    with contextlib.ExitStack() as stack:
        up = {name: stack.enter_context(running(starters[name](work))) for name in BY_TURNS}
        p50s = _in_turns(up, plan.turns_slices, lambda system: _bench(
            system, plan, concurrency=1, duration_s=SINGLE_SLICE_S, warmup_s=0.1).latency_ms["p50"])
        rps = _in_turns(up, plan.turns_saturation_slices, lambda system: _bench(
            system, plan, concurrency=plan.concurrency, duration_s=SATURATION_SLICE_S, warmup_s=0.3).throughput_rps)
        p99s = _in_turns(up, plan.turns_saturation_slices, lambda system: _bench(
            system, plan, rate=half_rate, duration_s=SATURATION_SLICE_S, warmup_s=0.3).latency_ms["p99"])
    added = {name: round(statistics.median(s - d for s, d in zip(p50s[name], p50s["direct"], strict=True)), 4)
             for name in BY_TURNS}
    max_rps = {name: round(statistics.median(rps[name]), 1) for name in BY_TURNS}
    return {"slices": plan.turns_slices, "slice_s": SINGLE_SLICE_S,
            "saturation_slices": plan.turns_saturation_slices,
            "saturation_slice_s": SATURATION_SLICE_S, "p50_ms": p50s, "rps": rps, "half_rate": half_rate,
            "p99_half_ms": {name: round(statistics.median(p99s[name]), 3) for name in BY_TURNS},
            **{f"{name}_p50_ms": round(statistics.median(p50s[name]), 4) for name in BY_TURNS},
            "added_p50_ms": added["rvz"], "bare_added_p50_ms": added["bare"], "max_rps": max_rps,
            "rvz_over_direct": round(max_rps["rvz"] / max_rps["direct"], 3),
            "bare_over_direct": round(max_rps["bare"] / max_rps["direct"], 3),
            "rvz_over_bare": round(max_rps["rvz"] / max_rps["bare"], 3)}


CURVE_TURNS = ("curve", "plaintext")


def curve_cost(root: Path, plan: Plan) -> dict[str, Any]:
    """What CURVE costs: rvz as configured by default (CURVE on) and with ``security.curve = false``, both
    running, measured by turns (as ``by_turns``): p50 at 1 in flight and throughput at saturation."""
    off = {**tracing_env(None), "RVZ_SECURITY_CURVE": "false"}
    starters: dict[str, Callable[[Path], System]] = {
        "curve": lambda work: systems.start_rvz(work, "rvz-curve", streams=plan.streams, env=tracing_env(None)),
        "plaintext": lambda work: systems.start_rvz(work, "rvz-plaintext", streams=plan.streams, env=off)}
    with contextlib.ExitStack() as stack:
        up = {name: stack.enter_context(running(starters[name](root / "curve"))) for name in CURVE_TURNS}
        p50s = _in_turns(up, plan.turns_slices, lambda system: _bench(
            system, plan, concurrency=1, duration_s=SINGLE_SLICE_S, warmup_s=0.1).latency_ms["p50"])
        rps = _in_turns(up, plan.turns_saturation_slices, lambda system: _bench(
            system, plan, concurrency=plan.concurrency, duration_s=SATURATION_SLICE_S, warmup_s=0.3).throughput_rps)
    return {"slices": plan.turns_slices, "saturation_slices": plan.turns_saturation_slices, "p50_ms": p50s,
            "rps": rps, "median_p50_ms": {name: round(statistics.median(p50s[name]), 4) for name in CURVE_TURNS},
            "median_rps": {name: round(statistics.median(rps[name]), 1) for name in CURVE_TURNS},
            "added_p50_ms": round(statistics.median(c - p for c, p in zip(p50s["curve"], p50s["plaintext"],
                                                                           strict=True)), 4),
            "rps_ratio": round(statistics.median(rps["curve"]) / statistics.median(rps["plaintext"]), 3)}


def _in_turns(up: dict[str, System], slices: int, measure: Callable[[System], T]) -> dict[str, list[T]]:
    """``slices`` measurements of every system, taken in turns (the first to go rotates)."""
    figures: dict[str, list[T]] = {name: [] for name in up}
    for i in range(slices):
        for name in _rotated(list(up), i):
            figures[name].append(measure(up[name]))
    return figures


def _rotated(items: list[T], round_: int) -> list[T]:
    # Each system goes first in some round: whatever the machine does early or late is spread over all of them.
    k = round_ % len(items)
    return items[k:] + items[:k]


def overload(root: Path, plan: Plan, rvz_max_rps: float, grpc_overflow: str = "cancel") -> dict[str, Any]:
    """Open loop at 2x rvz's max rate: every call must end OK or RESOURCE_EXHAUSTED, and be counted.

    With frontend.grpc_overflow = "refuse" the same rate is offered (more than 2x that variant's own max,
    measured first, since the promise-based gRPC transport costs throughput).
    """
    rate = round(2 * rvz_max_rps, 1)
    name = "overload" if grpc_overflow == "cancel" else f"overload-{grpc_overflow}"
    system = systems.start_rvz(root / name, streams=plan.streams, env=tracing_env(None), grpc_overflow=grpc_overflow)
    data = system.root / "data"
    own_max = None
    with running(system):
        warm = _bench(system, plan, concurrency=plan.concurrency,
                      duration_s=plan.warmup_s if grpc_overflow == "cancel" else plan.tracing_s, warmup_s=0.0)
        if grpc_overflow != "cancel":
            own_max = round(warm.throughput_rps, 1)
        before = {log: count_records(data / log) for log in ("requests", "results")}
        result = _bench(system, plan, rate=rate, duration_s=plan.overload_s, warmup_s=0.0,
                        processes=plan.overload_processes)
    logged = {log: count_records(data / log) - n for log, n in before.items()}  # after stop: flushed
    unexpected = {code: n for code, n in result.errors.items() if code != "RESOURCE_EXHAUSTED"}
    counted = re.search(rf"{CANCELLED_IN_GRPC} (\d+) calls", system.proc("frontend").stderr_tail())
    return {"rate": rate, "grpc_overflow": grpc_overflow, "own_max_rps": own_max,
            "offered_rps": round(result.sent / plan.overload_s, 1), "sent": result.sent,
            "ok": result.ok, "resource_exhausted": result.errors.get("RESOURCE_EXHAUSTED", 0),
            "other": unexpected, "missing": result.missing, "requests_logged": logged["requests"],
            "results_logged": logged["results"], "passed": not unexpected and result.missing == 0,
            # Since the frontend started, so including the warm-up (which cancels nothing).
            "cancelled_counted_by_rvz": int(counted.group(1)) if counted else None,
            "result": result.as_dict()}


def durability(root: Path, plan: Plan, rate: float) -> dict[str, Any]:
    """The half-rate run again on rvz with log.durable_answers = false: what waiting for fdatasync costs.

    Logs are still written and synced; answers just do not wait for the request record's fdatasync,
    so the tail of the disk's syncs (journal commits, the host's own I/O) stops being the answers' tail.
    """
    system = systems.start_rvz(root / "durability", "rvz-not-durable", streams=plan.streams,
                               env=tracing_env(None), durable_answers=False)
    with running(system):
        figures = at_rate(system, plan, rate)
    return {"durable_answers": False, **figures}


def fallback(root: Path, plan: Plan) -> dict[str, Any]:
    """A champion that is always late: how long after its window closes does the fallback answer?"""
    system = systems.start_rvz(root / "fallback", "rvz-late", champion=systems.LATE_CHAMPION,
                               streams=plan.streams, env=tracing_env(None))
    with running(system):
        result = _bench(system, plan, rate=plan.fallback_rate, duration_s=plan.fallback_s, warmup_s=0.5)
    window = systems.WINDOW_MS
    server, client = result.server_elapsed_ms, result.latency_ms
    return {"window_ms": window, "calls": result.sent, "ok": result.ok, "errors": result.errors,
            "server_after_window_ms": {k: round(server[k] - window, 3) for k in ("p50", "p99", "max") if k in server},
            "client_after_window_ms": {k: round(client[k] - window, 3) for k in ("p50", "p99", "max") if k in client},
            "answers_by_model": result.answers_by_model, "result": result.as_dict()}


# ---------------------------------------------------------------------------------------------
# TRACING: throughput with tracing at 0/10/100% sampling.
# rvz's processes are configured through the standard OpenTelemetry variables (OTEL_TRACES_EXPORTER,
# OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_ENDPOINT); spans go to a sink on
# loopback that accepts and discards them, so exporting is paid for as it would be in production.
# None is tracing off, rvz's default and what the main table measures.
# ---------------------------------------------------------------------------------------------

TRACING_RATIOS: tuple[float | None, ...] = (None, 0.0, 0.1, 1.0)


def tracing_env(sampling_ratio: float | None, sink: str = "") -> dict[str, str]:
    """The environment of every rvz process for ``sampling_ratio`` (0.0-1.0) of requests traced."""
    if sampling_ratio is None:
        return {"OTEL_TRACES_EXPORTER": "none"}
    return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{sink}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": f"{sampling_ratio:g}"}


def measure_tracing(root: Path, plan: Plan) -> list[dict[str, Any]]:
    """Saturation throughput and CPU of rvz tracing each ratio of TRACING_RATIOS of requests.

    One deployment per ratio, each exporting to its own sink, all running at once and measured by turns
    (plan.turns_saturation_slices slices of plan.tracing_s each, medians): measured one after the other,
    a minute apart, the host's load moved between them by more than what tracing costs.
    """
    with contextlib.ExitStack() as stack:
        sinks: dict[str, Proc] = {}
        envs: dict[str, dict[str, str]] = {}
        up: dict[str, System] = {}
        for ratio in TRACING_RATIOS:
            name = _tracing_name(ratio)
            work = root / f"tracing-{name}"
            work.mkdir(parents=True, exist_ok=True)
            sinks[name] = sink = spawn("otlp-sink", ["-m", "bench_systems.otlp_sink"], work,
                                       announces=(serving.READY_PREFIX, otlp_sink.TOTALS_PREFIX))
            stack.callback(sink.stop)  # after rvz stopped (callbacks run in reverse): its last spans count
            envs[name] = tracing_env(ratio, sink.wait_line(serving.READY_PREFIX))
            up[name] = stack.enter_context(running(systems.start_rvz(work, streams=plan.streams, env=envs[name])))
        runs = _in_turns(up, plan.turns_saturation_slices, lambda system: saturation(system, plan, plan.tracing_s))
    results = []
    for ratio in TRACING_RATIOS:
        name = _tracing_name(ratio)
        results.append({"sampling_ratio": ratio, "env": envs[name], "slices": len(runs[name]), "runs": runs[name],
                        "sink": sinks[name].wait_line(otlp_sink.TOTALS_PREFIX, timeout_s=1.0),
                        "rps": round(statistics.median(r["rps"] for r in runs[name]), 1),
                        "cpu_s_per_1000": round(statistics.median(r["cpu_s_per_1000"] for r in runs[name]), 4)})
    return results


def _tracing_name(ratio: float | None) -> str:
    return "off" if ratio is None else f"{ratio:g}"


def count_records(directory: Path) -> int:
    return sum(1 for _ in iter_records(directory)) if directory.exists() else 0
