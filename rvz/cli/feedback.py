"""`rvz feedback import FILE`: the command line of ``rvz.feedback.importer.run_import``."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click

from rvz.cli.options import EXIT_FAILURE, Deployment, deployment_options, fail
from rvz.errors import CallFailed, FeedbackRefused, LogError
from rvz.feedback.importer import FileFormat, run_import


@click.group()
def feedback() -> None:
    """Record the true outcome of requests answered earlier, for `rvz report` to judge the models by."""


@feedback.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@deployment_options(target=True, data_dir=True)
@click.option("--format", "fmt", type=click.Choice(get_args(FileFormat)), default=None,
              show_default="from the file's suffix (.csv; .jsonl, .ndjson, .json) or its first character",
              help="csv: request_id,truth (a header row is optional); jsonl: one "
                   '{"request_id": ..., "truth": ...} per line.')
def feedback_import(file: Path, deployment: Deployment, fmt: FileFormat | None) -> None:
    """Record the truths of FILE (request ids from ScoreResponse.request_id). The whole file is checked
    first: a bad line records nothing. The last truth recorded for a request wins.

    Written into the feedback log of --data-dir when no frontend holds it, else through the running
    frontend (--target or --config)."""
    try:
        done = run_import(file, fmt, deployment.config.log, deployment.client)
    except FeedbackRefused as e:
        fail(f"nothing recorded: {e}", EXIT_FAILURE)
    except CallFailed as e:
        deployment.call_failed(e)
    except (LogError, OSError) as e:
        fail(f"import failed: {e}", EXIT_FAILURE)
    click.echo(f"recorded {done.recorded} truths from {file} through {done.through}")
