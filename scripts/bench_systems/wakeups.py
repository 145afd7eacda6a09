"""What waking a thread costs on this machine: the unit every multi-process pipeline pays per hop.

rvz's path crosses three ZeroMQ hops, and each wakes an I/O thread on either side and the receiving
process: at 1 in flight its latency is a chain of wake-ups, not of computation. How much one costs
depends on the machine far more than on rvz. On bare metal a wake-up across CPUs takes a few
microseconds; in a virtual machine whose idle vCPUs halt, the host must first run the halted vCPU
again. So `scripts/bench` measures it beside its table:

- a one-byte round trip over two pipes between two processes, both pinned to one CPU (the wake-ups
  are plain context switches) and free to use every CPU (the scheduler wakes the idle CPU);
- how late a 1 ms sleep wakes up (what a deadline timer, such as the fallback's, can do at best).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

ROUND_TRIPS = 3000
SLEEPS = 300
SLEEP_S = 0.001


def measure() -> dict[str, Any]:
    """Microseconds: pipe round trips on one CPU and across CPUs, and a 1 ms sleep's lateness (p50, p99)."""
    cpus = sorted(os.sched_getaffinity(0))
    figures: dict[str, Any] = {"round_trip_one_cpu_us": _round_trips({cpus[0]})}
    if len(cpus) > 1:
        figures["round_trip_any_cpu_us"] = _round_trips(set(cpus))
    figures["sleep_1ms_late_us"] = _sleep_lateness()
    return figures


def _round_trips(cpus: set[int]) -> dict[str, float]:
    """Ping-pong one byte with a forked child, both restricted to ``cpus``."""
    before = os.sched_getaffinity(0)
    ping_r, ping_w = os.pipe()
    pong_r, pong_w = os.pipe()
    os.sched_setaffinity(0, cpus)  # inherited by the child
    try:
        pid = os.fork()
        if pid == 0:  # the child: echo every byte, then leave without running the parent's cleanup
            try:
                for _ in range(ROUND_TRIPS):
                    os.write(pong_w, os.read(ping_r, 1))
            finally:
                os._exit(0)
        samples = []
        for _ in range(ROUND_TRIPS):
            start = time.perf_counter_ns()
            os.write(ping_w, b"x")
            os.read(pong_r, 1)
            samples.append(time.perf_counter_ns() - start)
        os.waitpid(pid, 0)
    finally:
        os.sched_setaffinity(0, before)
        for fd in (ping_r, ping_w, pong_r, pong_w):
            os.close(fd)
    return _percentiles(samples)


def _sleep_lateness() -> dict[str, float]:
    samples = []
    for _ in range(SLEEPS):
        start = time.perf_counter_ns()
        time.sleep(SLEEP_S)
        samples.append(time.perf_counter_ns() - start - int(SLEEP_S * 1e9))
    return _percentiles(samples)


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_ns, n=100, method="inclusive")
    return {"p50": round(statistics.median(samples_ns) / 1000, 1), "p99": round(cuts[98] / 1000, 1)}


def line(figures: dict[str, Any]) -> str:
    """One sentence for the report."""
    one, late = figures["round_trip_one_cpu_us"], figures["sleep_1ms_late_us"]
    across = figures.get("round_trip_any_cpu_us")
    spread = ("" if across is None else
              f"; free to use every CPU {across['p50']:g} µs (p99 {across['p99']:g}), the cost of waking an idle CPU")
    return (f"- Wake-ups on this machine: a pipe round trip between two processes on one CPU {one['p50']:g} µs "
            f"(p99 {one['p99']:g}){spread}; a 1 ms sleep wakes {late['p50']:g} µs late (p99 {late['p99']:g}). "
            "rvz's path at 1 in flight is a chain of such wake-ups: three ZeroMQ hops, each waking an I/O "
            "thread on either side and the receiving process.")
