"""`rvz up`, `rvz frontend`, `rvz rendezvous`, `rvz model run`: the processes of a deployment."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from rvz.cli.options import (
    EXIT_FAILURE,
    build_config,
    config_option,
    configure_logging,
    data_dir_option,
    fail,
    require_extra,
    section_given,
)
from rvz.config import Config, FrontendConfig, MetricsConfig, ModelConfig, SecurityConfig
from rvz.config.cli import setting_options
from rvz.config.overrides import Given, SectionKey, env_name, model_from
from rvz.errors import ConfigError, LogError, ModelLoadError, RvzError

F = TypeVar("F", bound=Callable[..., Any])


def serve_options(*, listen: bool = False, demo: bool = False, metrics_setting: bool = False,
                  model_keys: bool = False) -> Callable[[F], F]:
    """--config, --data-dir, --metrics-listen (and --listen, --keys); the command gets ``config`` and
    ``metrics_listen``.

    ``metrics_setting``: --metrics-listen is metrics.listen (`rvz up`); otherwise it is this one
    process's /metrics, passed as ``metrics_listen``. Exits 2 on a bad value.
    """

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def build(config_path: str | None, config_json: str | None, **kwargs: Any) -> Any:
            given: dict[SectionKey, Given] = {}
            for section in ("log", "frontend", "metrics", "security"):
                given |= section_given(section, kwargs.pop(f"{section}_given", {}))
            config = build_config(config_path, given, demo=demo, config_json=config_json)
            if not metrics_setting:
                kwargs["metrics_listen"] = _metrics_listen(kwargs.pop("metrics_listen"))
            return command(config=config, **kwargs)

        wrapped: Any = data_dir_option(build)
        if listen:
            wrapped = _setting_option(FrontendConfig, "frontend", "listen", "--listen")(wrapped)
        if model_keys:
            wrapped = _setting_option(SecurityConfig, "security", "model_keys", "--keys")(wrapped)
        if metrics_setting:
            wrapped = _setting_option(MetricsConfig, "metrics", "listen", "--metrics-listen")(wrapped)
        else:
            wrapped = click.option("--metrics-listen", default="", metavar="HOST:PORT",
                                   show_default="from metrics.listen", allow_from_autoenv=False,
                                   help="This process's Prometheus /metrics.")(wrapped)
        wrapped = click.option("--config-json", hidden=True, envvar="RVZ_CONFIG_JSON",
                               help="Effective config, from `rvz up`.")(wrapped)
        return config_option(wrapped)  # type: ignore[no-any-return]

    return decorate


def _setting_option(cls: type, section: str, key: str, flag: str) -> Callable[[F], F]:
    return setting_options(cls, [key], into=f"{section}_given", flags={key: flag},
                           envvars={key: env_name(section, key)})


def _metrics_listen(text: str) -> str:
    try:
        return str(Given(text, "command line", "--metrics-listen").value(MetricsConfig, "listen"))
    except ConfigError as e:
        fail(f"config error: {e}")


@click.command(epilog="With --only, this host runs its share of a deployment spread over several hosts, from "
                     "the same config file (docs/multi-host.md); each host needs its own data directory.")
@serve_options(listen=True, demo=True, metrics_setting=True)
@click.option("--only", multiple=True, metavar="PART", show_envvar=True, show_default="every part",
              help="Run only this part: rendezvous (every one; rendezvous:I for one of several), hub (the "
                   "requests hub of several frontends), frontend, models (all of them) or a model's NAME (or "
                   "USE_CASE/NAME); give it again for more parts.")
def up(config: Config, only: tuple[str, ...]) -> None:
    """Start the frontend, the rendezvous and every configured model (the demo without --config)."""
    from rvz.demo import SKLEARN_ENTRIES
    from rvz.process.share import share_from

    try:
        share = share_from(config, only)
    except ConfigError as e:
        fail(str(e))
    if any(m.entry in SKLEARN_ENTRIES for m in share.models):
        require_extra("sklearn", "demo", "the demo's models")
    configure_logging("rvz-up")
    _hand_down_logging()
    from rvz.process.supervisor import run_up

    sys.exit(run_up(config, share))


def _hand_down_logging() -> None:
    """Children start as `python -m rvz ...`: the top-level options reach them as their env vars."""
    options = click.get_current_context().find_root().params
    os.environ["RVZ_LOG_LEVEL"] = options.get("log_level", "INFO")
    os.environ["RVZ_LOG_FORMAT"] = options.get("log_format", "text")


@click.command(epilog="With the requests hub (streams.requests_in, or frontend.processes > 1), any number of "
                     "frontends, on this host or others, join one deployment (docs/scaling.md).")
@serve_options(listen=True)
@click.option("--name", default="", metavar="NAME", show_default="none",
              help="Which of the deployment's frontends this is: it writes requests.NAME and feedback.NAME in "
                   "the data directory (the unnamed one writes requests and feedback).")
def frontend(config: Config, metrics_listen: str, name: str) -> None:
    """Run the gRPC frontend alone."""
    from rvz.frontend.grpc_overflow import reexec_for
    from rvz.frontend.names import name_problem
    from rvz.process.entry import run_frontend

    problem = name_problem(name)
    if problem:
        fail(f"--name: {problem}")
    configure_logging("rvz-frontend" + (f"-{name}" if name else ""))
    reexec_for(config.frontend)  # returns unless gRPC must be loaded with another experiment
    _supervised()
    _run("frontend", lambda: run_frontend(config, metrics_listen, name))


@click.command(epilog="With streams.rendezvous_processes = N, N of them share the requests, each started with its "
                     "--index (docs/scaling.md).")
@serve_options()
@click.option("--index", default=0, type=click.IntRange(0, 15), metavar="I",
              help="Which of the deployment's rendezvous this is (from 0): it binds that one's endpoints and "
                   "writes its logs.")
def rendezvous(config: Config, metrics_listen: str, index: int) -> None:
    """Run the rendezvous alone."""
    from rvz.process.entry import run_rendezvous

    configure_logging("rvz-rendezvous" + (f"-{index}" if index else ""))
    _supervised()
    _run("rendezvous", lambda: run_rendezvous(config, metrics_listen, index))


@click.command(epilog="`rvz up` runs it when the config has streams.requests_in or frontend.processes > 1 "
                     "(docs/scaling.md).")
@serve_options()
def hub(config: Config, metrics_listen: str) -> None:
    """Run the requests hub alone: several frontends publish into one requests stream through it."""
    from rvz.process.entry import run_hub

    if not config.requests_hub:
        fail("config error: the requests hub needs streams.requests_in, or frontend.processes > 1 "
             f"({config.source} has neither)")
    configure_logging("rvz-hub")
    _supervised()
    _run("requests hub", lambda: run_hub(config))


@click.group()
def model() -> None:
    """Model workers."""


# Every setting of a model, as options of `rvz model run` (the command gets them as ``model_given``).
model_options = setting_options(
    ModelConfig, ("name", "entry", "version", "role", "use_case", "batch_max", "late_limit_ms", "nice", "watchdog_ms",
                  "replicas", "replica_queue"),
    into="model_given", envvar_prefix="RVZ_MODEL_RUN_", required=("name",), defaults={"use_case": None},
    helps={"use_case": "Use case the model serves [default: its [[models]] entry's, else "
                       "frontend.default_use_case]."})


@model.command("run", epilog="The model's [[models]] entry in the config (found by --name, and --use-case when "
                             "given) gives every setting not given here.")
@serve_options(model_keys=True)
@model_options
def model_run(config: Config, metrics_listen: str, model_given: dict[str, Given]) -> None:
    """Run one model worker: SUB to requests, score, PUSH scores to the rendezvous."""
    try:
        spec = model_from(config, model_given)
    except ConfigError as e:
        fail(f"config error: {e}")
    configure_logging(f"rvz-model-{spec.name}")
    _supervised()
    from rvz.process.entry import run_model

    try:
        run_model(config, spec, metrics_listen)
    except ModelLoadError as e:
        fail(f"cannot load model {spec.name!r}: {e}")
    except ConfigError as e:
        fail(f"model {spec.name!r} cannot run: {e}")
    except (RvzError, LogError) as e:
        fail(f"model {spec.name!r} cannot run: {e}", EXIT_FAILURE)


def _supervised() -> None:
    parent = os.environ.get("RVZ_PARENT_PID")
    if parent and parent.isdigit() and int(parent) == os.getppid():
        from rvz.process.entry import die_with_parent

        die_with_parent()


def _run(component: str, run: Callable[[], None]) -> None:
    """Run a process; an error it reports on purpose becomes one line and exit code 1, not a traceback."""
    try:
        run()
    except ConfigError as e:  # exit 2: `rvz up` stops rather than restarting it
        fail(f"{component} cannot run: {e}")
    except (RvzError, LogError) as e:
        fail(f"{component} cannot run: {e}", EXIT_FAILURE)
