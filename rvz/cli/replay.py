"""`rvz replay`: the command line of ``rvz.report.replay.run_replay``."""

from __future__ import annotations

import sys
import time

import click
import zmq

from rvz.cli.options import EXIT_FAILURE, Deployment, deployment_options, fail
from rvz.cli.report import existing_data_dir
from rvz.config import ModelConfig
from rvz.config.cli import setting_options
from rvz.config.overrides import Given
from rvz.config.toml import check_model
from rvz.errors import ConfigError, LogError, ModelLoadError, ReplayFailed
from rvz.report.command import parse_time
from rvz.report.replay import ReplayOptions, run_replay

MODEL_SETTINGS = ("entry", "name", "version", "role", "batch_max")


@click.command("replay", context_settings={"help_option_names": ["-h", "--help"]})
@deployment_options(data_dir=True, use_case="frontend.default_use_case of --config")
@setting_options(ModelConfig, MODEL_SETTINGS, into="model_given", envvar_prefix="RVZ_REPLAY_",
                 defaults={"role": "challenger"}, required=("entry", "name"),
                 helps={"entry": "MODULE:ATTR of the model to replay into.",
                        "name": "Model name, as it will appear in the logs and the report.",
                        "role": "Role to record with the scores (not decoy).",
                        "batch_max": "Requests per predict_batch call."})
@click.option("--since", metavar="TIME", help="Only requests received at or after TIME (ISO-8601 or e.g. 1h).")
@click.option("--until", metavar="TIME", help="Only requests received before TIME.")
@click.option("--rate", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Requests per second (0: as fast as possible).")
def replay_command(deployment: Deployment, model_given: dict[str, Given], since: str | None, until: str | None,
                   rate: float) -> None:
    """Replay archived requests into a model that was not live, writing its scores marked as replayed.

    With a deployment running on the logs, the scores go through its rendezvous: give its --config."""
    spec = _model(deployment, model_given)
    try:
        now = time.time_ns()
        options = ReplayOptions(deployment.data_dir, spec, parse_time(since, now) if since else None,
                                parse_time(until, now) if until else None, rate)
    except ValueError as e:
        fail(str(e))
    existing_data_dir(deployment, "requests")
    from rvz.worker.model import load_model

    try:
        model = load_model(spec.entry)
    except ModelLoadError as e:
        fail(f"cannot load model {spec.name!r}: {e}")
    try:
        done = run_replay(deployment.config, options, model, show_progress=sys.stderr.isatty())
    except (ReplayFailed, LogError, zmq.ZMQError) as e:
        fail(f"replay failed: {e}", EXIT_FAILURE)
    click.echo(f"replayed {done.scores} requests into {spec.name} v{spec.version} ({done.errors} errors), written "
               f"through {done.through}; compare with: rvz report --data-dir {deployment.data_dir} "
               f"--use-case {spec.use_case}")


def _model(deployment: Deployment, given: dict[str, Given]) -> ModelConfig:
    try:
        values = {key: value.value(ModelConfig, key) for key, value in given.items()}
        use_case = Given(deployment.use_case_name, "command line", "--use-case").value(ModelConfig, "use_case")
        model = check_model(ModelConfig(**values, use_case=use_case), given["entry"].source, given["entry"].key)
    except ConfigError as e:
        fail(f"config error: {e}")
    if model.role == "decoy":
        fail("config error: command line: --role: a decoy scores nothing; replay into a champion, challenger or "
             "canary")
    return model
