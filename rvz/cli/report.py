"""`rvz report`: the command line of ``rvz.report.command.run_report``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from rvz.cli.options import EXIT_FAILURE, EXIT_OK, Deployment, deployment_options, fail, require_extra
from rvz.config import UseCaseConfig
from rvz.config.cli import setting_options
from rvz.config.overrides import Given
from rvz.errors import ConfigError, LogError
from rvz.log.dirs import log_dirs
from rvz.report.command import DEFINITIONS, ReportOptions, output_specs, parse_time, run_report

if TYPE_CHECKING:
    from rvz.compare.outputs import OutputSpec


def time_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """A --since/--until value as Unix ns (see ``parse_time``)."""
    if value is None:
        return None
    try:
        return parse_time(value, time.time_ns())
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def existing_data_dir(deployment: Deployment, log: str = "") -> Path:
    """The deployment's log.dir; exits 2 when it does not exist, or, given ``log``, when it holds no
    directory of that log (neither LOG nor a frontend's LOG.NAME, ``rvz.log.dirs``)."""
    directory = deployment.data_dir / log
    if not (log_dirs(deployment.data_dir, log) if log else directory.is_dir()):
        named = f" (nor any {log}.NAME of a named frontend)" if log else ""
        fail(f"{directory} does not exist{named}; give --data-dir or --config (log.dir of the deployment)")
    return deployment.data_dir


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]},
               epilog="\b\n" + DEFINITIONS)
@deployment_options(data_dir=True, use_case="every use case")
@click.option("--since", metavar="TIME", callback=time_option,
              help="Only requests received at or after TIME: ISO-8601 (e.g. 2024-05-01T10:00:00Z; without an "
                   "offset, local time) or a duration before now (30m, 1h, 2d).")
@click.option("--until", metavar="TIME", callback=time_option,
              help="Only requests received before TIME (same forms as --since).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True),
              help="Also write a self-contained HTML page with plots to this file (needs rvz[report]).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables (for scripts).")
@setting_options(UseCaseConfig, ("output", "kind", "probabilities"), into="output_given",
                 flags={"kind": "--output-kind"},
                 helps={"output": "Compare this output field (a.b for nested dicts; with --output-kind), for "
                                  "--use-case or every use case: wins over [[use_cases]] of --config.",
                        "kind": "Compare outputs and truths as a label or a number (see --output).",
                        "probabilities": "For labels: the output field of class probabilities (see --output)."})
def report_command(deployment: Deployment, since: int | None, until: int | None, html_path: str | None,
                   as_json: bool, output_given: dict[str, Given]) -> None:
    """Compare the models of each use case from the logs: counts, errors, latency, on-time %, times
    chosen, agreement with the champion, score distribution against the canary, and, for requests
    with a truth (`rvz feedback import`), each model's quality and a test against the champion.

    Outputs are read as the [[use_cases]] of --config declare (or --output says); each score is
    judged on time against the policy that decided its request (version 1: the schedule of --config)."""
    directory = existing_data_dir(deployment)
    if since is not None and until is not None and since >= until:
        fail("--since must be before --until")
    if html_path:
        require_extra("matplotlib", "report", "--html")
    from rvz.report.data import Filter

    outputs = output_specs(deployment.config, _given_output(output_given), deployment.use_case)
    options = ReportOptions(directory, deployment.config.rendezvous.schedule,
                            Filter(since, until, deployment.use_case), Path(html_path) if html_path else None,
                            as_json, outputs)
    try:
        run_report(options)
    except (LogError, OSError) as e:
        fail(f"report failed: {e}", EXIT_FAILURE)
    sys.exit(EXIT_OK)


def _given_output(given: dict[str, Given]) -> OutputSpec | None:
    """--output, --output-kind and --probabilities as one declaration; exits 2 for a bad or partial one."""
    from rvz.compare.outputs import OutputSpec

    if not given:
        return None
    if "kind" not in given:
        fail("--output-kind label|number is required with --output or --probabilities")
    try:
        values = {key: value.value(UseCaseConfig, key) for key, value in given.items()}
    except ConfigError as e:
        fail(f"config error: {e}")
    if values.get("probabilities") and values["kind"] != "label":
        fail("--probabilities: only labels have probabilities (--output-kind label)")
    return OutputSpec(values["kind"], values.get("output", ""), values.get("probabilities", ""), "command line")
