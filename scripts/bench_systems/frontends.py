"""`scripts/bench --frontends`: throughput with 1 and 2 frontend processes and cheap models, and the cores
each run used.

Three runs, each a fresh `rvz up` (through the CLI, as a user starts it) with the three cheap models of
the main benchmark (champion, challenger, canary):

- ``1 direct``: one frontend that binds the requests stream itself (the default deployment);
- ``1 via hub``: one frontend publishing through the requests hub (``streams.requests_in``): what the hub's
  extra hop costs on its own;
- ``2 via hub``: ``frontend.processes = 2``, one port served by both (SO_REUSEPORT).

The load is the same closed loop for every run, from several load processes (each one connection, which
the kernel gives to one frontend process: several connections spread over the frontends). Cores used:
the CPU time the deployment's processes (``rvz up`` and its children) and the load processes used during
the run, over its wall time, read from /proc. Exactly-once is not the point here, but every answered
request is checked to be in one frontend's request log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench_systems import scale
from bench_systems.procs import spawn
from rvz.bench.command import run_bench
from rvz.log.dirs import log_dirs
from rvz.log.reader import iter_records

SERVING_PREFIX = "rvz serving on "
START_TIMEOUT_S = 90.0
CONCURRENCY = 64
LOAD_PROCESSES = 4
RUNS = (("1 direct", 1, False), ("1 via hub", 1, True), ("2 via hub", 2, True))
_TICKS = os.sysconf("SC_CLK_TCK")


# The same warm-up and measured time as --scale's runs.
FULL, QUICK = scale.FULL, scale.QUICK


def config(root: Path, processes: int, hub: bool) -> str:
    return f"""
[frontend]
listen = "127.0.0.1:0"
processes = {processes}

[streams]
requests = "ipc://{root}/requests.sock"
scores = "ipc://{root}/scores.sock"
results = "ipc://{root}/results.sock"
{f'requests_in = "ipc://{root}/requests-in.sock"' if hub else ""}

[log]
dir = "{root}/data"

[[models]]
name = "champion"
entry = "bench_systems.models:champion"

[[models]]
name = "challenger"
entry = "bench_systems.models:challenger"
role = "challenger"

[[models]]
name = "canary"
entry = "bench_systems.models:canary"
role = "canary"
"""


def measure(root: Path, plan: scale.ScalePlan) -> dict[str, Any]:
    """One run per line of RUNS; the figures by run and the ratios against the single direct frontend."""
    runs = {name: run_once(root / name.replace(" ", "-"), processes, hub, plan) for name, processes, hub in RUNS}
    base = runs[RUNS[0][0]]["rps"]
    for run in runs.values():
        run["vs_direct"] = round(run["rps"] / base, 2) if base else None
    return {"concurrency": CONCURRENCY, "load_processes": LOAD_PROCESSES, "cpus": os.cpu_count(), "runs": runs}


def run_once(root: Path, processes: int, hub: bool, plan: scale.ScalePlan) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "rvz.toml"
    path.write_text(config(root, processes, hub))
    up = spawn("up", ["-m", "rvz", "up", "--config", str(path)], root, announces=(SERVING_PREFIX,))
    try:
        target = up.wait_line(SERVING_PREFIX, timeout_s=START_TIMEOUT_S).split()[0]
        parts = by_part([up.pid, *children(up.pid)])
        cpu_before, wall_before = {part: cpu_seconds(pids) for part, pids in parts.items()}, time.monotonic()
        load_before = os.times()
        result = run_bench(target, concurrency=CONCURRENCY, warmup_s=plan.warmup_s, duration_s=plan.duration_s,
                           processes=LOAD_PROCESSES)
        wall = time.monotonic() - wall_before
        cores = {part: round((cpu_seconds(pids) - cpu_before[part]) / wall, 2) for part, pids in parts.items()}
        load_after = os.times()
    finally:
        up.stop()
    # The load processes are this process's children, waited for by run_bench: their time is in os.times().
    load_cpu = (load_after.children_user + load_after.children_system + load_after.user + load_after.system
                - load_before.children_user - load_before.children_system - load_before.user - load_before.system)
    by_frontend = {d.name: sum(1 for _ in iter_records(d)) for d in log_dirs(root / "data", "requests")}
    return {"processes": processes, "hub": hub, "rps": result.throughput_rps, "p50_ms": result.latency_ms.get("p50"),
            "p99_ms": result.latency_ms.get("p99"), "errors": result.errors,
            "deployment_cores": round(sum(cores.values()), 2), "cores_by_part": cores,
            "load_cores": round(load_cpu / wall, 2),
            "requests_by_frontend": by_frontend}


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (`rvz up`'s children), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def by_part(pids: list[int]) -> dict[str, list[int]]:
    """``pids`` by the part of the deployment each runs (its `rvz` command: up, frontend, hub, rendezvous,
    model), from /proc."""
    parts: dict[str, list[int]] = {}
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        command = next((a.decode() for a in argv[argv.index(b"rvz") + 1:] if not a.startswith(b"-")), "?") \
            if b"rvz" in argv else "?"
        parts.setdefault(command, []).append(pid)
    return parts


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of ``pids`` so far (a process that is gone counts nothing)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICKS


def table(figures: dict[str, Any]) -> str:
    lines = [f"Frontend processes with cheap models (3 workers), closed loop, {figures['concurrency']} in flight from "
             f"{figures['load_processes']} load processes (one connection each), {figures['cpus']} CPUs; cores: CPU "
             "time over wall time of the deployment's processes and of the load:", "",
             "| frontends | throughput (req/s) | vs 1 direct | p50 (ms) | p99 (ms) | deployment cores | of which "
             "| load cores | requests by frontend |",
             "|---|---:|---:|---:|---:|---:|---|---:|---|"]
    for name, run in figures["runs"].items():
        errors = f" (errors: {run['errors']})" if run["errors"] else ""
        spread = ", ".join(f"{k} {v:,}" for k, v in run["requests_by_frontend"].items())
        parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(run.get("cores_by_part", {}).items()))
        lines.append(f"| {name} | {run['rps']:,.1f}{errors} | {run['vs_direct']:.2f}x | {run['p50_ms']:.2f} | "
                     f"{run['p99_ms']:.2f} | {run['deployment_cores']:.2f} | {parts} | {run['load_cores']:.2f} "
                     f"| {spread} |")
    return "\n".join(lines)
