"""`rvz log cat`: the records of a log as JSON lines; `rvz log check`: is every segment intact?;
`rvz log export`: the logs joined into one table per use case (``rvz.report.export``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rvz.cli.options import EXIT_FAILURE, Deployment, deployment_options, fail, require_extra
from rvz.cli.report import existing_data_dir, time_option
from rvz.log.dirs import LOGS
from rvz.telemetry import logging_setup


@click.group()
def log() -> None:
    """Read the logs: requests, scores, results, feedback, policies, audit."""


@log.command("cat")
@click.argument("log_name", metavar="LOG")
@deployment_options(data_dir=True)
@click.option("--strict", is_flag=True, help="Fail at the first damaged record instead of reading around it.")
def log_cat(log_name: str, deployment: Deployment, strict: bool) -> None:
    """Print every record of LOG as JSON lines: requests, scores, results, feedback, policies or audit (of the
    deployment's log.dir), or the path of a log directory (e.g. rvz-data/requests). A LOG of the deployment is
    every writer's (LOG and each LOG.NAME: requests and feedback of every frontend, the others of every
    rendezvous), merged by the time each record was written, each log in its own order; a policy change or Admin
    action that every rendezvous recorded is printed once, the earliest. Damaged bytes are skipped and said on
    stderr."""
    from rvz.errors import LogError
    from rvz.log.dirs import SAME_CHANGE, by_time, time_of
    from rvz.log.format import Damage
    from rvz.log.reader import json_line, messages

    def say(damage: Damage) -> None:
        click.echo(f"rvz: skipped {damage.describe()}", err=True)

    directories = _directories(log_name, deployment)
    streams = [messages(directory, strict, on_damage=say) for directory in directories]
    logging_setup.configure("rvz-log", "WARNING")
    try:
        # A log given by its path is read as it is: one stream, whatever its records (a decoy's archive too).
        records = streams[0] if len(streams) == 1 else by_time(streams, time_of(log_name), SAME_CHANGE.get(log_name))
        for message in records:
            click.echo(json_line(message))
    except (LogError, ValueError) as e:
        fail(str(e), EXIT_FAILURE)
    except BrokenPipeError:
        sys.stderr.close()  # `rvz log cat ... | head` is fine


@log.command("check")
@click.argument("directory", type=click.Path(exists=True, file_okay=False), required=False)
@deployment_options(data_dir=True)
def log_check(directory: str | None, deployment: Deployment) -> None:
    """Verify every segment of a log, or of every log under a data directory (default: the deployment's
    log.dir): one line per log, one per damaged range; exit 1 if anything is damaged."""
    from rvz.errors import LogError
    from rvz.log.check import check_log, find_logs

    try:
        checks = [check_log(log) for log in find_logs(Path(directory) if directory else deployment.data_dir)]
    except LogError as e:
        fail(str(e), EXIT_FAILURE)
    for check in checks:
        click.echo(check.summary())
        for damage in check.damage:
            click.echo(f"  {damage.describe()}")
    if any(check.damage for check in checks):
        click.echo("rvz: damage found: readers skip it (only a damaged tail is cut, and kept in DIR/damaged/, "
                   "when the log's writer starts)", err=True)
        sys.exit(EXIT_FAILURE)


def _directories(log_name: str, deployment: Deployment) -> list[Path]:
    """The directories `rvz log cat LOG_NAME` reads (several only for one of ``LOGS``); exits 2 when there is
    none."""
    from rvz.log.dirs import log_dirs

    path = Path(log_name)
    if path.is_dir():
        return [path]
    if log_name in LOGS:
        found = log_dirs(deployment.data_dir, log_name)
        if found:
            return found
        fail(f"{deployment.data_dir / log_name} does not exist: give --data-dir or --config (log.dir of the "
             "deployment)")
    fail(f"{log_name} is neither a log directory nor one of {', '.join(LOGS)}")


@log.command("export")
@deployment_options(data_dir=True, use_case="every use case")
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True,
              help="File format (Parquet keeps the types: timestamps, numbers, booleans).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Directory to write USE_CASE.parquet (or .csv) into; created if missing.")
@click.option("--since", metavar="TIME", callback=time_option, help="Only requests received at or after TIME.")
@click.option("--until", metavar="TIME", callback=time_option, help="Only requests received before TIME.")
def log_export(deployment: Deployment, fmt: str, out: Path, since: int | None, until: int | None) -> None:
    """Write one table per use case joining the logs: each request, every model's output, latency and
    error, the answer and its rule, and the truth when known (see docs/comparing-models.md). Outputs are
    read as the [[use_cases]] of --config declare."""
    require_extra("pyarrow", "report", "rvz log export")
    from rvz.compare.outputs import OutputSpec
    from rvz.errors import LogError
    from rvz.report.data import Filter
    from rvz.report.export import export

    directory = existing_data_dir(deployment)
    declared = {u.name: OutputSpec.declared_by(u, f"[[use_cases]] of {deployment.config.source}")
                for u in deployment.config.use_cases}
    try:
        written = export(directory, out, fmt, Filter(since, until, deployment.use_case),  # type: ignore[arg-type]
                         lambda use_case: declared.get(use_case, OutputSpec()))
    except (LogError, OSError) as e:
        fail(f"export failed: {e}", EXIT_FAILURE)
    if not written:
        click.echo(f"no request in the request logs of {directory} in the time and use case asked for: nothing "
                   "written")
    for done in written:
        click.echo(f"{done.path}: use case {done.use_case}, {done.rows} requests, {done.models} models")
