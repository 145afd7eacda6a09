"""`scripts/chaos`: every fault of the isolation issue against a real deployment under load, as one table."""

from __future__ import annotations

import datetime
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import click

from chaos_faults.deployment import DEADLINE_MS
from chaos_faults.faults import FAULTS, QUICK
from chaos_faults.matrix import CALLERS, Row, run_row

NAMES = [f.name for f in FAULTS]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quick", is_flag=True, help=f"Only {', '.join(QUICK)}, with a shorter load.")
@click.option("--only", multiple=True, type=click.Choice(NAMES), help="Only this fault (repeatable).")
@click.option("--load-s", type=click.FloatRange(min=5.0), help="Seconds of load per row.  [default: 6, quick: 5]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write every row as JSON to this file.")
@click.option("--keep", is_flag=True, help="Keep the working directory (configs, logs, stderr of every process).")
def main(quick: bool, only: tuple[str, ...], load_s: float | None, json_path: str | None, keep: bool) -> None:
    """Inject each fault into a fresh `rvz up` deployment (champion, challenger, canary; a second use case)
    while callers keep one call each in flight, and print: calls, OK, by status, answer time p99 and max
    against the deadline, OK answers missing from the request log, and the time to recover."""
    chosen = [f for f in FAULTS if (f.name in only) if only] or [f for f in FAULTS if not quick or f.name in QUICK]
    workdir = Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))  # ipc:// paths must stay short
    rows: list[Row] = []
    try:
        for fault in chosen:
            click.echo(f"[{datetime.datetime.now():%H:%M:%S}] {fault.name}: {fault.what}...", err=True)
            rows.append(run_row(fault, workdir, load_s or (5.0 if quick else 6.0)))
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            click.echo(f"kept {workdir}", err=True)
    click.echo(table(rows))
    if json_path:
        Path(json_path).write_text(json.dumps([{**asdict(r), "fault": r.fault.name, "misses": r.misses()}
                                               for r in rows], indent=2))
    sys.exit(1 if any(r.misses() for r in rows) else 0)


def table(rows: list[Row]) -> str:
    lines = [f"scripts/chaos: deadline {DEADLINE_MS:g} ms, {CALLERS} callers, each row a fresh `rvz up`", "",
             "| fault | calls | OK | other statuses | p99 ms | max ms | OK not logged | recovered | targets |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        other = ", ".join(f"{code} {n}" for code, n in sorted(r.by_status.items()) if code != "OK") or "-"
        recovered = "-" if not r.fault.recovers else ("no" if r.recover_s is None else f"{r.recover_s:.2f} s")
        misses = "; ".join(r.misses()) or "met"
        lines.append(f"| {r.fault.name} | {r.calls} | {r.ok_pct:.2f}% | {other} | {r.p99_ms:.1f} | {r.max_ms:.1f} "
                     f"| {r.not_logged} | {recovered} | {misses} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
