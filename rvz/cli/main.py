"""The `rvz` command line. Each command builds its config and calls one run_* function."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

import click

from rvz.bench.command import bench_command
from rvz.config import (
    DEFAULT_USE_CASE,
    ROLES,
    Config,
    ModelConfig,
    config_from_json,
    load_config,
    parse_config,
    parse_model,
)
from rvz.errors import ConfigError, LogError, ModelLoadError, RvzError
from rvz.report.command import report_command
from rvz.report.replay import replay_command
from rvz.telemetry import logging_setup as applog

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
DEFAULT_TARGET = "127.0.0.1:50051"

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    click.echo(f"rvz: {message}", err=True)
    sys.exit(code)


def config_options(func: F) -> F:
    """--config/--data-dir (and hidden --config-json, which `rvz up` uses for its children)."""
    func = click.option("--metrics-listen", default="",
                        help="HOST:PORT for this process's Prometheus /metrics (default: from [metrics] listen).")(func)
    func = click.option("--data-dir", type=click.Path(file_okay=False), envvar="RVZ_DATA_DIR",
                        help="Directory of the logs (log.dir). [env: RVZ_DATA_DIR]")(func)
    func = click.option("--config-json", hidden=True, envvar="RVZ_CONFIG_JSON",
                        help="Effective config, from `rvz up`.")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="RVZ_CONFIG",
                        help="TOML config file; without one, built-in defaults. [env: RVZ_CONFIG]")(func)
    return func


def _build_config(config_path: str | None, config_json: str | None, *, demo: bool,
                  listen: str | None = None, data_dir: str | None = None) -> Config:
    try:
        if config_json:
            config = config_from_json(config_json)
        elif config_path is None and not demo:
            config = parse_config({}, "<defaults>")
        else:
            config = load_config(config_path)
        return config.with_overrides(listen=listen, data_dir=data_dir)
    except ConfigError as e:
        _fail(f"config error: {e}")


def _supervised() -> None:
    parent = os.environ.get("RVZ_PARENT_PID")
    if parent and parent.isdigit() and int(parent) == os.getppid():
        from rvz.process.entry import die_with_parent

        die_with_parent()


@click.group(context_settings={"auto_envvar_prefix": "RVZ", "help_option_names": ["-h", "--help"]})
@click.option("--log-level", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), help="Log verbosity.")
@click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]),
              help="Log line format (json for log shippers).")
@click.pass_context
def cli(ctx: click.Context, log_level: str, log_format: str) -> None:
    """rvz: serve a champion, its challengers, a canary and a decoy on the same live traffic."""
    ctx.obj = {"log_level": log_level, "log_format": log_format}


def _logging(component: str) -> None:
    obj = click.get_current_context().find_root().obj
    applog.configure(component, obj["log_level"], obj["log_format"])


@cli.command()
@config_options
@click.option("--listen", envvar="RVZ_LISTEN",
              help="HOST:PORT for the gRPC frontend (frontend.listen). [env: RVZ_LISTEN]")
def up(config_path: str | None, config_json: str | None, data_dir: str | None, metrics_listen: str,
       listen: str | None) -> None:
    """Start the frontend, the rendezvous and every configured model (the demo without --config)."""
    from rvz.process.supervisor import run_up

    config = _build_config(config_path, config_json, demo=True, listen=listen, data_dir=data_dir)
    if metrics_listen:
        config = replace(config, metrics=replace(config.metrics, listen=metrics_listen))
    _logging("rvz-up")
    sys.exit(run_up(config))


@cli.command()
@config_options
@click.option("--listen", envvar="RVZ_LISTEN", help="HOST:PORT to serve gRPC on (frontend.listen). [env: RVZ_LISTEN]")
def frontend(config_path: str | None, config_json: str | None, data_dir: str | None, metrics_listen: str,
             listen: str | None) -> None:
    """Run the gRPC frontend alone."""
    from rvz.frontend.grpc_overflow import reexec_for
    from rvz.process.entry import run_frontend

    config = _build_config(config_path, config_json, demo=False, listen=listen, data_dir=data_dir)
    _logging("rvz-frontend")
    reexec_for(config.frontend)  # returns unless gRPC must be loaded with another experiment
    _supervised()
    _run("frontend", lambda: run_frontend(config, metrics_listen))


@cli.command()
@config_options
def rendezvous(config_path: str | None, config_json: str | None, data_dir: str | None, metrics_listen: str) -> None:
    """Run the rendezvous alone."""
    from rvz.process.entry import run_rendezvous

    config = _build_config(config_path, config_json, demo=False, data_dir=data_dir)
    _logging("rvz-rendezvous")
    _supervised()
    _run("rendezvous", lambda: run_rendezvous(config, metrics_listen))


@cli.group()
def model() -> None:
    """Model workers."""


@model.command("run")
@config_options
@click.option("--name", required=True, help="Model name (unique within its use case).")
@click.option("--version", "model_version", default="1", show_default=True, help="Model version.")
@click.option("--role", default="champion", show_default=True, type=click.Choice(ROLES), help="Role in the schedule.")
@click.option("--entry", default="", help="MODULE:ATTR of the model callable (not needed for a decoy).")
@click.option("--use-case", default=DEFAULT_USE_CASE, show_default=True, help="Use case to serve.")
@click.option("--batch-max", default=32, show_default=True, type=click.IntRange(min=1),
              help="Most requests handed to predict_batch at once.")
@click.option("--late-limit-ms", default=1000.0, show_default=True, type=click.FloatRange(min=0),
              help="Do not score requests already this far past their deadline (a model that fell behind "
                   "catches up).")
@click.option("--nice", default=0, show_default=True, type=click.IntRange(0, 19),
              help="CPU priority of this worker (0-19, higher is lower): e.g. 10 for a challenger, canary or "
                   "decoy, so the champion and the rendezvous get the CPU first.")
def model_run(config_path: str | None, config_json: str | None, data_dir: str | None, metrics_listen: str,
              name: str, model_version: str, role: str, entry: str, use_case: str, batch_max: int,
              late_limit_ms: float, nice: int) -> None:
    """Run one model worker: SUB to requests, score, PUSH scores to the rendezvous."""
    config = _build_config(config_path, config_json, demo=False, data_dir=data_dir)
    try:
        spec = parse_model({"name": name, "version": model_version, "role": role, "entry": entry,
                            "use_case": use_case, "batch_max": batch_max, "late_limit_ms": late_limit_ms,
                            "nice": nice},
                           "command line")
    except ConfigError as e:
        _fail(str(e))
    _logging(f"rvz-model-{name}")
    _supervised()
    _run_model(config, spec, metrics_listen)


def _run_model(config: Config, spec: ModelConfig, metrics_listen: str) -> None:
    from rvz.process.entry import run_model

    try:
        run_model(config, spec, metrics_listen)
    except ModelLoadError as e:
        _fail(f"cannot load model {spec.name!r}: {e}")
    except (RvzError, LogError) as e:
        _fail(f"model {spec.name!r} cannot run: {e}", EXIT_FAILURE)


def _run(component: str, run: Callable[[], None]) -> None:
    """Run a process; an error it reports on purpose becomes one line and exit code 1, not a traceback."""
    try:
        run()
    except (RvzError, LogError) as e:
        _fail(f"{component} cannot run: {e}", EXIT_FAILURE)


@cli.command()
@click.option("--target", default=DEFAULT_TARGET, show_default=True, help="HOST:PORT of the frontend.")
@click.option("--use-case", default="", help="Use case (empty: the default).")
@click.option("--features", "features_json", help='Features as JSON, e.g. \'{"petal_length": 1.4}\'.')
@click.option("--example", is_flag=True, help="Send a real row of the demo dataset.")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True, help="gRPC deadline, seconds.")
def score(target: str, use_case: str, features_json: str | None, example: bool, timeout_s: float) -> None:
    """Score one request and print the response as JSON."""
    from rvz.client import score as call_score
    from rvz.errors import CallFailed

    if bool(features_json) == example:
        _fail("give exactly one of --features JSON or --example")
    if example:
        from rvz.demo import example_features

        features: Any = example_features()
    else:
        try:
            features = json.loads(features_json or "")
        except json.JSONDecodeError as e:
            _fail(f"--features is not valid JSON: {e}")
        if not isinstance(features, dict):
            _fail("--features must be a JSON object of feature name -> value")
    try:
        response = call_score(target, use_case, features, timeout_s)
    except CallFailed as e:
        _fail(str(e), EXIT_FAILURE)
    click.echo(json.dumps(response))


@cli.command()
@click.option("--target", default=DEFAULT_TARGET, show_default=True, help="HOST:PORT of the frontend.")
@click.option("--use-case", default="", help="Check one use case (default: the whole server).")
@click.option("--timeout", "timeout_s", type=float, default=2.0, show_default=True, help="Seconds to wait.")
def check(target: str, use_case: str, timeout_s: float) -> None:
    """Exit 0 if SERVING, 1 otherwise (for container health checks)."""
    from rvz.client import check as health_check

    status = health_check(target, use_case, timeout_s)
    click.echo(status)
    sys.exit(EXIT_OK if status == "SERVING" else EXIT_FAILURE)


def admin_target(func: F) -> F:
    func = click.option("--use-case", default=DEFAULT_USE_CASE, show_default=True, help="Use case.")(func)
    func = click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="RVZ_CONFIG",
                        help="Config whose frontend.listen is the default target. [env: RVZ_CONFIG]")(func)
    func = click.option("--target", default=None, help="HOST:PORT of a frontend "
                        f"[default: frontend.listen of --config, or {DEFAULT_TARGET}]")(func)
    return func


def _target(target: str | None, config_path: str | None) -> str:
    if target:
        return target
    if config_path:
        return _build_config(config_path, None, demo=False).frontend.listen
    return DEFAULT_TARGET


@cli.command()
@admin_target
@click.option("--all", "all_use_cases", is_flag=True, help="Every use case (ignores --use-case).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(target: str | None, config_path: str | None, use_case: str, all_use_cases: bool, as_json: bool) -> None:
    """Live models with their recent latency, errors, on-time %, times chosen and drift from the canary."""
    from rvz.admin.client import list_models, models_json, print_models
    from rvz.errors import CallFailed

    try:
        response = list_models(_target(target, config_path), "" if all_use_cases else use_case)
    except CallFailed as e:
        _fail(str(e), EXIT_FAILURE)
    if as_json:
        click.echo(json.dumps(models_json(response), indent=2))
    else:
        print_models(response)


@cli.group()
def policy() -> None:
    """Show or change the answer policy (schedule, deadline, timeout behaviour) of a use case."""


@policy.command("show")
@admin_target
def policy_show(target: str | None, config_path: str | None, use_case: str) -> None:
    """Print the policy in force as TOML (the `[rendezvous]` table), with its version."""
    from rvz.admin.client import get_policy, policy_toml
    from rvz.errors import CallFailed

    try:
        click.echo(policy_toml(get_policy(_target(target, config_path), use_case)), nl=False)
    except CallFailed as e:
        _fail(str(e), EXIT_FAILURE)


@policy.command("set")
@click.argument("file", type=click.File("r"))
@admin_target
@click.option("--expected-version", default=0, help="Refuse unless the policy in force has this version.")
def policy_set(file: Any, target: str | None, config_path: str | None, use_case: str, expected_version: int) -> None:
    """Validate FILE (a `[rendezvous]` table) and put it in force atomically, while serving."""
    from rvz.admin.client import set_policy
    from rvz.errors import CallFailed

    try:
        state = set_policy(_target(target, config_path), use_case, file.read(), file.name, expected_version)
    except CallFailed as e:
        _fail(str(e), EXIT_FAILURE)
    click.echo(f"use case {state.use_case!r}: policy version {state.version} in force")


@cli.command()
@click.argument("name")
@admin_target
def promote(name: str, target: str | None, config_path: str | None, use_case: str) -> None:
    """Make model NAME the champion of its use case (the old champion becomes a challenger)."""
    from rvz.admin.client import promote as call_promote
    from rvz.errors import CallFailed

    try:
        response = call_promote(_target(target, config_path), use_case, name)
    except CallFailed as e:
        _fail(str(e), EXIT_FAILURE)
    demoted = f"; {response.demoted} is now a challenger" if response.demoted else ""
    click.echo(f"use case {response.use_case!r}: {response.champion} is the champion{demoted}")


@cli.group()
def log() -> None:
    """Read the request, scores and results logs."""


@log.command("cat")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--strict", is_flag=True, help="Fail on a corrupt record instead of skipping the rest of its segment.")
def log_cat(directory: str, strict: bool) -> None:
    """Print every record of a log directory (e.g. rvz-data/requests) as JSON lines."""
    from rvz.errors import LogError
    from rvz.log.reader import json_lines

    applog.configure("rvz-log", "WARNING")
    try:
        for line in json_lines(directory, strict):
            click.echo(line)
    except (LogError, ValueError) as e:
        _fail(str(e), EXIT_FAILURE)
    except BrokenPipeError:
        sys.stderr.close()  # `rvz log cat ... | head` is fine


cli.add_command(report_command)
cli.add_command(replay_command)
cli.add_command(bench_command)


def main(args: list[str] | None = None) -> None:
    cli.main(args=args, prog_name="rvz")

