"""`rvz log cat`: the records of a log as JSON lines."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rvz.cli.options import EXIT_FAILURE, Deployment, deployment_options, fail
from rvz.telemetry import logging_setup

LOGS = ("requests", "scores", "results", "audit")


@click.group()
def log() -> None:
    """Read the request, scores and results logs."""


@log.command("cat")
@click.argument("log_name", metavar="LOG")
@deployment_options(data_dir=True)
@click.option("--strict", is_flag=True, help="Fail on a corrupt record instead of skipping the rest of its segment.")
def log_cat(log_name: str, deployment: Deployment, strict: bool) -> None:
    """Print every record of LOG as JSON lines: requests, scores, results or audit (of the deployment's log.dir),
    or the path of a log directory (e.g. rvz-data/requests)."""
    from rvz.errors import LogError
    from rvz.log.reader import json_lines

    directory = _directory(log_name, deployment)
    logging_setup.configure("rvz-log", "WARNING")
    try:
        for line in json_lines(str(directory), strict):
            click.echo(line)
    except (LogError, ValueError) as e:
        fail(str(e), EXIT_FAILURE)
    except BrokenPipeError:
        sys.stderr.close()  # `rvz log cat ... | head` is fine


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
