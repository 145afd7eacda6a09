"""Each setting is declared once: the file, the environment and the command line accept and refuse the same
values with the same message (rvz.config.fields, .overrides, .cli)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import pytest
import tomli_w
from click.testing import CliRunner

from rvz.cli.serve import model_options, serve_options
from rvz.config import SECTIONS, Config, ModelConfig, load_config
from rvz.config.fields import Spec, scalar_specs, specs
from rvz.config.overrides import Given, apply, env_name, from_environment, model_from
from rvz.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

SAMPLES: dict[type, list[Any]] = {
    int: [1, 0, -1, 7, 19, 20, 1000, 1.5, "x", True],
    float: [0.5, 1, 0.0, -5.0, 1.0, 1.5, 250.0, math.inf, "fast", False],
    bool: [True, False, "yes", 1],
    str: ["a", "", "-x", "gbm", "mymodels:Model", "no colon", "tcp://127.0.0.1:5", "ipc:///tmp/x", "localhost",
          "[::1]:6000", "127.0.0.1:99999", "0.0.0.0:0"],
}
# The other settings a model needs to be read on its own; a default output, for on_timeout = "default".
MODEL_BASE = {"name": "m", "entry": "mymodels:Model"}
BASE = {"rendezvous": {"default_output": "unknown"}}


def samples(spec: Spec) -> list[Any]:
    return [*spec.choices, "nope", ""] if spec.choices else SAMPLES[spec.kind]


def as_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def every_setting() -> list[tuple[str, Spec, Any]]:
    cases = [(section, spec, value) for section, cls in SECTIONS.items() for spec in scalar_specs(cls)
             for value in samples(spec)]
    return cases + [("models", spec, value) for spec in scalar_specs(ModelConfig) for value in samples(spec)]


def outcome(read: Any, key: str) -> tuple[str, Any]:
    """("ok", the value read) or ("refused", the problem after the key that names it)."""
    try:
        return "ok", read()
    except ConfigError as e:
        message = str(e)
        assert f"{key}: " in message, message
        return "refused", message.split(f"{key}: ", 1)[1]


def from_file(tmp_path: Path, section: str, key: str, value: Any) -> tuple[str, Any]:
    path = tmp_path / "rvz.toml"
    if section == "models":
        path.write_text(tomli_w.dumps({"models": [{**MODEL_BASE, key: value}]}))
        return outcome(lambda: getattr(load_config(path).models[0], key), f"models[0].{key}")
    path.write_text(tomli_w.dumps({section: {**BASE.get(section, {}), key: value}}))
    return outcome(lambda: getattr(getattr(load_config(path), section), key), f"{section}.{key}")


def from_environment_text(tmp_path: Path, section: str, key: str, text: str) -> tuple[str, Any]:
    if section == "models":
        given = {k: Given(v, "environment", f"RVZ_MODEL_RUN_{k.upper()}") for k, v in MODEL_BASE.items()}
        given[key] = Given(text, "environment", f"RVZ_MODEL_RUN_{key.upper()}")
        return outcome(lambda: getattr(model_from(Config(), given), key), f"RVZ_MODEL_RUN_{key.upper()}")
    path = tmp_path / "base.toml"
    path.write_text(tomli_w.dumps(BASE))
    name = env_name(section, key)
    return outcome(lambda: getattr(getattr(apply(load_config(path), from_environment({name: text})), section), key),
                   name)


# An empty variable is unset (as click has it for every option's env var).
@pytest.mark.parametrize(("section", "spec", "value"), [case for case in every_setting() if case[2] != ""],
                         ids=lambda v: v.key if isinstance(v, Spec) else repr(v))
def test_the_file_and_the_environment_read_every_setting_alike(tmp_path: Path, section: str, spec: Spec,
                                                               value: Any) -> None:
    in_file = from_file(tmp_path, section, spec.key, value)
    assert from_environment_text(tmp_path, section, spec.key, as_text(value)) == in_file


# --- the command line ----------------------------------------------------------------------------


@click.command()
@serve_options()
@model_options
def model_command(config: Config, metrics_listen: str, model_given: dict[str, Given]) -> None:
    """What `rvz model run` would run, as JSON."""
    from dataclasses import asdict

    try:
        click.echo(json.dumps(asdict(model_from(config, model_given))))
    except ConfigError as e:
        raise click.ClickException(str(e)) from e


@click.command()
@serve_options(listen=True, metrics_setting=True)
def serve_command(config: Config) -> None:
    """The effective config of `rvz up`, as JSON."""
    from rvz.config import config_to_json

    click.echo(config_to_json(config))


def invoke(command: click.Command, args: list[str], env: dict[str, str], key: str) -> tuple[str, Any]:
    result = CliRunner().invoke(command, args, env=env)
    if result.exit_code == 0:
        return "ok", json.loads(result.stdout)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{key}: " in lines[0], result.output
    return "refused", lines[0].split(f"{key}: ", 1)[1]


MODEL_FLAGS = {key: "--" + key.replace("_", "-") for key in specs(ModelConfig)}
SECTION_FLAGS = {("frontend", "listen"): "--listen", ("log", "dir"): "--data-dir",
                 ("metrics", "listen"): "--metrics-listen"}


def command_line_cases() -> list[tuple[str, Spec, Any]]:
    models = [("models", spec, value) for spec in scalar_specs(ModelConfig) for value in samples(spec)]
    sections = [(section, specs(SECTIONS[section])[key], value) for section, key in SECTION_FLAGS
                for value in samples(specs(SECTIONS[section])[key])]
    return models + sections


@pytest.mark.parametrize(("section", "spec", "value"), command_line_cases(),
                         ids=lambda v: v.key if isinstance(v, Spec) else repr(v))
def test_options_and_their_env_vars_read_a_setting_as_the_file_does(tmp_path: Path, section: str, spec: Spec,
                                                                    value: Any) -> None:
    expected = from_file(tmp_path, section, spec.key, value)
    text = as_text(value)
    if section == "models":
        base = [arg for k, v in MODEL_BASE.items() if k != spec.key for arg in (MODEL_FLAGS[k], v)]
        flag, envvar = MODEL_FLAGS[spec.key], f"RVZ_MODEL_RUN_{spec.key.upper()}"
        outcomes = [invoke(model_command, [*base, f"{flag}={text}"], {}, flag)]
        if text:  # an empty variable is unset
            outcomes.append(invoke(model_command, base, {envvar: text}, envvar))
        read = [(kind, found[spec.key] if kind == "ok" else found) for kind, found in outcomes]
    else:
        flag, envvar = SECTION_FLAGS[(section, spec.key)], env_name(section, spec.key)
        outcomes = [invoke(serve_command, [f"{flag}={text}"], {}, flag)]
        if text:
            outcomes.append(invoke(serve_command, [], {envvar: text}, envvar))
        read = [(kind, found["config"][section][spec.key] if kind == "ok" else found) for kind, found in outcomes]
    assert read == [expected] * len(outcomes)


def test_late_limit_has_one_range_everywhere(tmp_path: Path) -> None:
    """The file accepted late_limit_ms = -5.0, which the command line refused."""
    assert from_file(tmp_path, "models", "late_limit_ms", -5.0) == (
        "refused", "must be zero or a positive number, got -5.0")
    on_line = invoke(model_command, ["--name", "m", "--entry", "a:b", "--late-limit-ms", "-5"], {}, "--late-limit-ms")
    assert on_line == ("refused", "must be zero or a positive number, got -5.0")


# --- `rvz model run` takes its settings from the model's [[models]] entry ------------------------

CONFIG = """
[frontend]
default_use_case = "fraud"
[[models]]
name = "gbm"
entry = "mymodels:Fraud"
use_case = "fraud"
role = "challenger"
version = "7"
nice = 10
late_limit_ms = 50
[[models]]
name = "gbm"
entry = "mymodels:Churn"
use_case = "churn"
[[models]]
name = "lr"
entry = "mymodels:Churn"
use_case = "churn"
role = "canary"
[[models]]
name = "lr"
entry = "mymodels:Iris"
use_case = "iris"
"""


def run_model(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any] | str:
    path = tmp_path / "rvz.toml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(model_command, ["--config", str(path), *args], env=env)
    return json.loads(result.stdout) if result.exit_code == 0 else result.output.strip()


def test_a_model_is_found_by_name_and_use_case(tmp_path: Path) -> None:
    model = run_model(tmp_path, "--name", "gbm", "--use-case", "fraud")
    assert model == {"name": "gbm", "entry": "mymodels:Fraud", "version": "7", "role": "challenger",
                     "use_case": "fraud", "batch_max": 32, "late_limit_ms": 50.0, "nice": 10, "watchdog_ms": 0.0,
                     "replicas": 1, "replica_queue": 0}
    assert run_model(tmp_path, "--name", "gbm", "--use-case", "churn")["entry"] == "mymodels:Churn"  # type: ignore[index]


def test_without_use_case_the_only_entry_or_the_default_use_cases(tmp_path: Path) -> None:
    assert run_model(tmp_path, "--name", "gbm")["use_case"] == "fraud"  # type: ignore[index]
    message = run_model(tmp_path, "--name", "lr")
    assert isinstance(message, str) and message.endswith(
        f"command line: --use-case: {tmp_path / 'rvz.toml'} has a model 'lr' in use cases 'churn', 'iris': give one")


def test_the_command_line_and_the_environment_win_over_the_entry(tmp_path: Path) -> None:
    model = run_model(tmp_path, "--name", "gbm", "--use-case", "fraud", "--role", "champion", "--nice", "0",
                      env={"RVZ_MODEL_RUN_VERSION": "8"})
    assert isinstance(model, dict)
    assert (model["role"], model["nice"], model["version"], model["entry"]) == ("champion", 0, "8", "mymodels:Fraud")


def test_a_model_without_an_entry_needs_one_on_the_command_line(tmp_path: Path) -> None:
    message = run_model(tmp_path, "--name", "new", "--use-case", "fraud")
    assert isinstance(message, str) and message.endswith(
        f"command line: --entry: is required: {tmp_path / 'rvz.toml'} has no [[models]] entry named 'new' in use "
        "case 'fraud'")
    model = run_model(tmp_path, "--name", "new", "--entry", "mymodels:New")
    assert isinstance(model, dict) and (model["use_case"], model["role"]) == ("fraud", "champion")
    assert isinstance(archive := run_model(tmp_path, "--name", "archive", "--role", "decoy"), dict)
    assert archive["entry"] == ""


# --- the environment -----------------------------------------------------------------------------


def test_the_environment_wins_over_the_file_and_the_command_line_over_both(tmp_path: Path) -> None:
    path = tmp_path / "rvz.toml"
    path.write_text('[frontend]\nlisten = "127.0.0.1:7000"\nmax_in_flight = 5\n[log]\ndir = "from-file"\n')
    env = {"RVZ_FRONTEND_LISTEN": "127.0.0.1:7001", "RVZ_FRONTEND_MAX_IN_FLIGHT": "6", "RVZ_LOG_DIR": "from-env"}
    result = CliRunner().invoke(serve_command, ["--config", str(path), "--listen", "127.0.0.1:7002"], env=env)
    config = json.loads(result.stdout)["config"]
    assert (config["frontend"]["listen"], config["frontend"]["max_in_flight"], config["log"]["dir"]) == (
        "127.0.0.1:7002", 6, "from-env")


def test_a_setting_that_depends_on_another_is_checked_after_the_environment() -> None:
    with pytest.raises(ConfigError) as caught:
        apply(Config(), from_environment({"RVZ_RENDEZVOUS_ON_TIMEOUT": "default"}))
    assert str(caught.value) == 'environment: rendezvous.default_output: is required when on_timeout = "default"'


@pytest.mark.parametrize(("old", "new"), [("RVZ_LISTEN", "RVZ_FRONTEND_LISTEN"), ("RVZ_DATA_DIR", "RVZ_LOG_DIR")])
def test_renamed_environment_variables_are_refused_with_their_new_names(old: str, new: str) -> None:
    with pytest.raises(ConfigError, match=f"environment: {old} is no longer read; set {new} instead"):
        from_environment({old: "x"})


def test_structured_settings_are_not_read_from_the_environment() -> None:
    assert from_environment({"RVZ_RENDEZVOUS_SCHEDULE": "[]", "RVZ_RENDEZVOUS_DEADLINE_MS": "80"}) == {
        ("rendezvous", "deadline_ms"): Given("80", "environment", "RVZ_RENDEZVOUS_DEADLINE_MS")}
