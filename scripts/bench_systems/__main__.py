"""`scripts/bench`: direct vs fan-out vs rvz on this machine, in one invocation, as one table."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bench_systems import frontends, measure, report, scale, wakeups
from rvz.errors import BenchError, StartupFailed


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help="A ~1 minute smoke run: one round, short runs.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write every figure (per round, with histograms) to this JSON file.")
@click.option("--rounds", type=click.IntRange(min=1), help="Rounds of the main measurements.  [default: 3, quick: 1]")
@click.option("--concurrency", default=64, show_default=True, type=click.IntRange(min=1),
              help="Calls in flight for the saturation runs.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Load generator processes for the main runs (they share the machine with the servers).")
@click.option("--overload-processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Load generator processes for the 2x overload run.")
@click.option("--streams", default="ipc", show_default=True, type=click.Choice(["ipc", "tcp"]),
              help="rvz's ZeroMQ transport.")
@click.option("--skip", multiple=True,
              type=click.Choice(["interleaved", "curve", "overload", "overload-refuse", "fallback", "durability",
                                 "tracing"]),
              help="Leave out an extra measurement (repeatable).")
@click.option("--keep", is_flag=True, help="Keep the working directory (configs, logs, stderr of every process).")
@click.option("--scale", "scale_run", is_flag=True,
              help="Instead: throughput of an I/O-bound model at 1, 2 and 4 replicas, and exactly-once per model "
                   "from the same runs' logs (with --quick: shorter runs).")
@click.option("--frontends", "frontends_run", is_flag=True,
              help="Instead: throughput with 1 frontend (direct, then through the requests hub) and 2 frontend "
                   "processes, cheap models, and the cores each run used.")
def main(quick: bool, json_path: str | None, rounds: int | None, concurrency: int, processes: int,
         overload_processes: int, streams: str, skip: tuple[str, ...], keep: bool, scale_run: bool,
         frontends_run: bool) -> None:
    """Run direct, fan-out and rvz on this machine and print one table (Markdown) with rvz's ratios."""
    if scale_run:
        _apart("--scale", lambda root: scale.measure(root, scale.QUICK if quick else scale.FULL), scale.table,
               quick, json_path, keep)
        return
    if frontends_run:
        _apart("--frontends", lambda root: frontends.measure(root, frontends.QUICK if quick else frontends.FULL),
               frontends.table, quick, json_path, keep)
        return
    plan = measure.QUICK if quick else measure.FULL
    plan = dataclasses.replace(plan, rounds=rounds or plan.rounds, concurrency=concurrency, processes=processes,
                               overload_processes=overload_processes, streams=streams)
    root = Path(tempfile.mkdtemp(prefix="rvzb-", dir="/tmp"))  # short: ipc:// paths are limited to ~100 bytes
    started = time.monotonic()
    try:
        figures = _measure(root, plan, set(skip))
    except (BenchError, StartupFailed) as e:
        click.echo(f"scripts/bench: {e}\n(working directory kept: {root})", err=True)
        sys.exit(1)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    figures["wall_s"] = round(time.monotonic() - started, 1)
    click.echo(_render(figures, plan, quick))
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=1) + "\n")
    if keep:
        click.echo(f"\n(working directory: {root})", err=True)


def _apart(flag: str, run: Callable[[Path], dict[str, Any]], table: Callable[[dict[str, Any]], str], quick: bool,
           json_path: str | None, keep: bool) -> None:
    """A measurement run instead of the main table (``flag``): its figures and its own table."""
    root = Path(tempfile.mkdtemp(prefix="rvzs-", dir="/tmp"))  # short: ipc:// paths are limited to ~100 bytes
    started = time.monotonic()
    try:
        figures = run(root)
    except (BenchError, StartupFailed) as e:
        click.echo(f"scripts/bench: {e}\n(working directory kept: {root})", err=True)
        sys.exit(1)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    figures.update(machine=report.machine(), wall_s=round(time.monotonic() - started, 1),
                   date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    click.echo(f"rvz benchmark: scripts/bench {flag}{' --quick' if quick else ''}, {figures['date']}, "
               f"{figures['wall_s']:g} s in all\n\n{report.machine_line(figures['machine'])}\n\n{table(figures)}")
    if json_path:
        Path(json_path).write_text(json.dumps(figures, indent=1) + "\n")
    if keep:
        click.echo(f"\n(working directory: {root})", err=True)


def _say(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


def _measure(root: Path, plan: measure.Plan, skip: set[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {"machine": report.machine(), "plan": dataclasses.asdict(plan),
                               "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                               "failed": {}, "wakeups": wakeups.measure()}
    main = measure.main_rounds(root, plan, _say)
    summary = report.summarize(main)
    figures.update(half_rate=main["half_rate"], summary=summary, ratios=report.ratios(summary), runs=main["runs"])
    extras: dict[str, Callable[[], Any]] = {
        "interleaved": lambda: measure.by_turns(root, plan, main["half_rate"]),
        "curve": lambda: measure.curve_cost(root, plan),
        "overload": lambda: measure.overload(root, plan, summary["rvz"]["rps"]),
        "overload-refuse": lambda: measure.overload(root, plan, summary["rvz"]["rps"], grpc_overflow="refuse"),
        "fallback": lambda: measure.fallback(root, plan),
        "durability": lambda: measure.durability(root, plan, main["half_rate"]),
        "tracing": lambda: measure.measure_tracing(root, plan),
    }
    for name, run in extras.items():
        if name in skip:
            continue
        _say(f"{name}...")
        try:
            figures[name] = run()
        except (BenchError, StartupFailed, OSError) as e:
            # The main table still stands; say what could not be measured, and why.
            figures["failed"][name] = str(e)
            _say(f"{name} failed: {e}")
    figures["machine"]["loadavg_at_end"] = list(os.getloadavg())
    figures["targets"] = [{"target": n, "met": ok, "figure": f} for n, ok, f in report.targets(figures)]
    return figures


def _render(figures: dict[str, Any], plan: measure.Plan, quick: bool) -> str:
    summary = figures["summary"]
    title = (f"rvz benchmark: scripts/bench{' --quick' if quick else ''}, {figures['date']}, "
             f"medians of {plan.rounds} round(s), {figures['wall_s']:g} s in all")
    lines = [title, "", report.machine_line(figures["machine"]), "",
             report.table(summary, plan, figures["half_rate"]), "", wakeups.line(figures["wakeups"])]
    lines += [line for line in (report.errors_line(figures["runs"]), report.hops_line(summary),
                                report.per_call_line(summary)) if line]
    lines += report.extras(figures)
    lines.append(report.targets_line(report.targets(figures)))
    lines += [f"- Not measured: {name} ({error.splitlines()[0]})" for name, error in figures["failed"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
