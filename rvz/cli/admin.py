"""`rvz models`, `rvz policy show|set|reset`, `rvz promote`: the Admin API of a running deployment."""

from __future__ import annotations

import json
from typing import Any

import click

from rvz.cli.options import EXIT_FAILURE, Deployment, deployment_options, fail
from rvz.errors import CallFailed, ConfigError

SERVER_DEFAULT = "the frontend's frontend.default_use_case"


@click.command()
@deployment_options(target=True, use_case="every use case")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def models(deployment: Deployment, as_json: bool) -> None:
    """Live models with their recent latency, errors, on-time %, times chosen and drift from the canary."""
    from rvz.admin.client import list_models, models_json, print_models

    try:
        response = list_models(deployment.connection, deployment.use_case or "")
        if as_json:
            click.echo(json.dumps(models_json(response), indent=2))
        elif response.models:
            print_models(response)
        else:
            click.echo(_why_no_models(deployment))
    except CallFailed as e:
        deployment.call_failed(e)


def _why_no_models(deployment: Deployment) -> str:
    from rvz.admin.client import list_models

    where = f"the rendezvous behind {deployment.target}"
    if not deployment.use_case:
        return f"No model has announced itself to {where}: start some (`rvz up`, `rvz model run`)."
    others = sorted({m.use_case for m in list_models(deployment.connection, "").models})
    return (f"No model of use case {deployment.use_case!r} has announced itself to {where} "
            f"(use cases with models: {', '.join(map(repr, others)) or 'none'}).")


@click.group()
def policy() -> None:
    """Show, change or reset the answer policy (schedule, deadline, timeout behaviour) of a use case."""


@policy.command("show")
@deployment_options(target=True, use_case=SERVER_DEFAULT)
def policy_show(deployment: Deployment) -> None:
    """Print the policy in force as TOML (the `[rendezvous]` table), with its version."""
    from rvz.admin.client import get_policy, policy_toml

    try:
        click.echo(policy_toml(get_policy(deployment.connection, deployment.use_case or "")), nl=False)
    except CallFailed as e:
        deployment.call_failed(e)


@policy.command("set")
@click.argument("file", type=click.File("r"))
@deployment_options(target=True, use_case=SERVER_DEFAULT)
@click.option("--expected-version", default=0, show_default=True,
              help="Refuse unless the policy in force has this version (0: whichever).")
def policy_set(file: Any, deployment: Deployment, expected_version: int) -> None:
    """Validate FILE (a `[rendezvous]` table) and put it in force atomically, while serving.

    A policy refused, here or by the rendezvous, exits 1: the one in force stays."""
    from rvz.admin.client import set_policy

    try:
        state = set_policy(deployment.connection, deployment.use_case or "", file.read(), file.name, expected_version)
    except ConfigError as e:
        fail(f"policy refused, the one in force stays: {e}", EXIT_FAILURE)
    except CallFailed as e:
        deployment.call_failed(e)
    click.echo(f"use case {state.use_case!r}: policy version {state.version} in force")


@policy.command("reset")
@deployment_options(target=True, use_case=SERVER_DEFAULT)
def policy_reset(deployment: Deployment) -> None:
    """Undo every `policy set` and `promote` of a use case at once: the config file's policy (at a new
    version) and the roles its models were started with are in force again."""
    from rvz.admin.client import reset_policy

    try:
        state = reset_policy(deployment.connection, deployment.use_case or "")
    except CallFailed as e:
        deployment.call_failed(e)
    click.echo(f"use case {state.use_case!r}: the config's policy is in force (version {state.version}), and "
               "every model has the role it was started with")


@click.command()
@click.argument("name")
@deployment_options(target=True, use_case=SERVER_DEFAULT)
def promote(name: str, deployment: Deployment) -> None:
    """Make model NAME the champion of its use case (the old champion becomes a challenger)."""
    from rvz.admin.client import promote as call_promote

    try:
        response = call_promote(deployment.connection, deployment.use_case or "", name)
    except CallFailed as e:
        deployment.call_failed(e)
    demoted = f"; {response.demoted} is now a challenger" if response.demoted else ""
    click.echo(f"use case {response.use_case!r}: {response.champion} is the champion{demoted}")

