"""`rvz log cat`: the records of a log as JSON lines; `rvz log check`: is every segment intact?"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rvz.cli.options import EXIT_FAILURE, Deployment, deployment_options, fail
from rvz.telemetry import logging_setup

LOGS = ("requests", "scores", "results")


@click.group()
def log() -> None:
    """Read the request, scores and results logs."""


@log.command("cat")
@click.argument("log_name", metavar="LOG")
@deployment_options(data_dir=True)
@click.option("--strict", is_flag=True, help="Fail at the first damaged record instead of reading around it.")
def log_cat(log_name: str, deployment: Deployment, strict: bool) -> None:
    """Print every record of LOG as JSON lines: requests, scores or results (of the deployment's log.dir),
    or the path of a log directory (e.g. rvz-data/requests). Damaged bytes are skipped and said on stderr."""
    from rvz.errors import LogError
    from rvz.log.format import Damage
    from rvz.log.reader import json_lines

    def say(damage: Damage) -> None:
        click.echo(f"rvz: skipped {damage.describe()}", err=True)

    directory = _directory(log_name, deployment)
    logging_setup.configure("rvz-log", "WARNING")
    try:
        for line in json_lines(str(directory), strict, on_damage=say):
            click.echo(line)
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


def _directory(log_name: str, deployment: Deployment) -> Path:
    path = Path(log_name)
    if path.is_dir():
        return path
    if log_name in LOGS:
        directory = deployment.data_dir / log_name
        if directory.is_dir():
            return directory
        fail(f"{directory} does not exist: give --data-dir or --config (log.dir of the deployment)")
    fail(f"{log_name} is neither a log directory nor one of {', '.join(LOGS)}")
