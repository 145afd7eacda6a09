"""The `rvz` command line: one click group; each command builds its config and calls one run_* function.

The commands live by what they do: ``serve`` (the processes of a deployment), ``calls`` (score,
check), ``feedback`` (truths), ``admin`` (models, policy, promote), ``logs``, ``report``, ``replay`` and
``bench``; what they share (exit codes, ``fail``, the options naming a deployment) is in ``options``.
"""

from __future__ import annotations

import click

from rvz.cli.admin import models, policy, promote
from rvz.cli.bench import bench_command
from rvz.cli.calls import check, score
from rvz.cli.feedback import feedback
from rvz.cli.keys import keys
from rvz.cli.logs import log
from rvz.cli.replay import replay_command
from rvz.cli.report import report_command
from rvz.cli.serve import frontend, hub, model, rendezvous, up


@click.group(context_settings={"auto_envvar_prefix": "RVZ", "help_option_names": ["-h", "--help"],
                               "show_default": True})
@click.version_option(package_name="rvz", prog_name="rvz", message="%(prog)s %(version)s")
@click.option("--log-level", default="INFO", show_default=True, show_envvar=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Log verbosity, of this process and every one it starts.")
@click.option("--log-format", default="text", show_default=True, show_envvar=True, type=click.Choice(["text", "json"]),
              help="Log line format (json for log shippers), of this process and every one it starts.")
def cli(log_level: str, log_format: str) -> None:
    """rvz: serve a champion, its challengers, a canary and a decoy on the same live traffic."""


for command in (up, frontend, hub, rendezvous, model, score, check, feedback, models, policy, promote, log,
                report_command, replay_command, bench_command, keys):
    cli.add_command(command)


def main(args: list[str] | None = None) -> None:
    cli.main(args=args, prog_name="rvz")
