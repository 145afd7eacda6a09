"""`scripts/bench --scale`: throughput of an I/O-bound model at 1, 2 and 4 replicas, and exactly-once per
model counted from the logs of the same runs.

Each run is a fresh `rvz up` (through the CLI, as a user starts it) with one model that sleeps 10 ms per
request (a stand-in for a remote feature store or an accelerator: the worker's CPU is idle meanwhile),
``replicas = N``, and a deadline long enough that every call is answered by that model. The load is a
closed loop with the same calls in flight for every N, so the only thing that changes is the replicas.
After each run the deployment is stopped (its logs flushed) and its request and scores logs are read:
every request must have exactly one score of the model, whichever replica scored it.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_systems.procs import spawn
from rvz.bench.command import run_bench
from rvz.log.reader import iter_records
from rvz.wire.proto import envelope_pb2

REPLICAS = (1, 2, 4)
MODEL = "io"
ENTRY = "bench_systems.models:io_bound"
SERVING_PREFIX = "rvz serving on "
# Enough in flight to keep 4 replicas busy, with a queue at the rendezvous; each call's wait at 1 replica
# (64 x 10 ms) stays well inside the deadline, so nothing is answered by a timeout.
CONCURRENCY = 64
DEADLINE_MS = 5000.0
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class ScalePlan:
    warmup_s: float
    duration_s: float


FULL = ScalePlan(warmup_s=1.0, duration_s=5.0)
QUICK = ScalePlan(warmup_s=0.5, duration_s=2.0)


def config(root: Path, replicas: int) -> str:
    return f"""
[frontend]
listen = "127.0.0.1:0"
max_in_flight = 1000

[streams]
requests = "ipc://{root}/requests.sock"
scores = "ipc://{root}/scores.sock"
results = "ipc://{root}/results.sock"

[log]
dir = "{root}/data"

[rendezvous]
deadline_ms = {DEADLINE_MS}
on_timeout = "error"
[[rendezvous.schedule]]
until_ms = {DEADLINE_MS}
accept = ["champion"]

[[models]]
name = "{MODEL}"
entry = "{ENTRY}"
replicas = {replicas}
"""


def measure(root: Path, plan: ScalePlan) -> dict[str, Any]:
    """One run per replica count; the figures by count and the speed-up from 1 to the largest."""
    runs = {str(n): run_once(root / f"replicas-{n}", n, plan) for n in REPLICAS}
    one, most = runs[str(REPLICAS[0])]["rps"], runs[str(REPLICAS[-1])]["rps"]
    return {"model_ms": 10, "concurrency": CONCURRENCY, "runs": runs,
            "speedup": round(most / one, 2) if one else None}


def run_once(root: Path, replicas: int, plan: ScalePlan) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "rvz.toml"
    path.write_text(config(root, replicas))
    up = spawn("up", ["-m", "rvz", "up", "--config", str(path)], root, announces=(SERVING_PREFIX,))
    try:
        target = up.wait_line(SERVING_PREFIX, timeout_s=START_TIMEOUT_S).split()[0]
        started_ns = time.time_ns()
        result = run_bench(target, concurrency=CONCURRENCY, warmup_s=plan.warmup_s, duration_s=plan.duration_s,
                           timeout_s=DEADLINE_MS / 1000 * 2)
    finally:
        up.stop()  # the rendezvous flushes and syncs its logs on the way out
    once = exactly_once(root / "data")
    window_ns = (started_ns + int(plan.warmup_s * 1e9), started_ns + int((plan.warmup_s + plan.duration_s) * 1e9))
    return {"replicas": replicas, "rps": round(decided_in(root / "data", window_ns) / plan.duration_s, 1),
            "client_rps": result.throughput_rps, "p50_ms": result.latency_ms.get("p50"),
            "p99_ms": result.latency_ms.get("p99"), "errors": result.errors, **once}


def decided_in(data: Path, window_ns: tuple[int, int]) -> int:
    """Calls the rendezvous answered within the window. Counted from the results log, not by the load
    generator: its closed loop counts calls sent in the window and waits for the last ones to end, which
    with 0.7 s per call at 1 replica would understate that run and inflate the ratio."""
    start, end = window_ns
    return sum(1 for r in iter_records(data / "results")
               if start <= envelope_pb2.ResultEnvelope.FromString(r.payload).decided_unix_ns < end)


def exactly_once(data: Path) -> dict[str, Any]:
    """From the logs: requests, scores of the model, requests scored twice or more, requests never scored,
    and scores by worker (which replica did how much)."""
    requests = {envelope_pb2.RequestEnvelope.FromString(r.payload).request_id
                for r in iter_records(data / "requests")}
    scored: Counter[str] = Counter()
    by_worker: Counter[str] = Counter()
    for record in iter_records(data / "scores"):
        score = envelope_pb2.ScoreRecord.FromString(record.payload).score
        if score.model_name == MODEL:
            scored[score.request_id] += 1
            by_worker[score.worker_id] += 1
    return {"requests": len(requests), "scores": sum(scored.values()),
            "duplicates": sum(1 for n in scored.values() if n > 1),
            "missing": sum(1 for rid in requests if rid not in scored),
            "by_worker": sorted(by_worker.values(), reverse=True)}


def table(figures: dict[str, Any]) -> str:
    runs = figures["runs"]
    base = runs[str(REPLICAS[0])]["rps"]
    lines = [f"Replicas of an I/O-bound model ({figures['model_ms']} ms sleep per request), closed loop, "
             f"{figures['concurrency']} in flight; throughput: calls answered per second in the measured window "
             "(results log); exactly once counted from the same runs' logs:", "",
             "| replicas | throughput (req/s) | vs 1 replica | p50 (ms) | p99 (ms) | requests | duplicate scores "
             "| missing scores | scores by replica |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for n in REPLICAS:
        r = runs[str(n)]
        errors = f" (errors: {r['errors']})" if r["errors"] else ""
        lines.append(f"| {n} | {r['rps']:,.1f}{errors} | {r['rps'] / base:.2f}x | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['requests']:,} | {r['duplicates']} | {r['missing']} | "
                     f"{'/'.join(map(str, r['by_worker']))} |" if base else f"| {n} | - |")
    met = figures["speedup"] is not None and figures["speedup"] >= 3.5
    clean = all(r["duplicates"] == 0 and r["missing"] == 0 for r in runs.values())
    lines += ["", f"- Target: at least 3.5x from 1 to 4 replicas: {figures['speedup']}x "
              f"({'met' if met else 'NOT met'}); 0 duplicate and 0 missing scores per model: "
              f"{'met' if clean else 'NOT met'}."]
    return "\n".join(lines)
