"""`rvz keys create|list|add-model|token`: the deployment's CURVE keys and Admin tokens (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import click

from rvz.cli.options import Deployment, deployment_options, fail
from rvz.errors import ConfigError


@click.group()
def keys() -> None:
    """The keys of the streams and the Admin API's tokens (in security.keys_dir, default DATA_DIR/keys)."""


@keys.command("create")
@deployment_options(data_dir=True)
def keys_create(deployment: Deployment) -> None:
    """Make every missing key of this host's processes (frontend, rendezvous, replay, each [[models]]
    entry) and the Admin token file. Idempotent: existing keys are kept."""
    from rvz.security.deployment import ensure_keys, keys_dir

    made = ensure_keys(deployment.config)
    click.echo("\n".join(f"made {path}" for path in made) or f"every key exists in {keys_dir(deployment.config)}")


@keys.command("list")
@deployment_options(data_dir=True)
def keys_list(deployment: Deployment) -> None:
    """The authorized public keys: file, role, model, and whether its secret key is on this host."""
    from rvz.security.manage import list_keys

    try:
        listed = list_keys(deployment.config)
    except ConfigError as e:
        fail(str(e))
    for item in listed:
        where = "secret here" if item.secret_here else "secret elsewhere"
        click.echo(f"{item.path.name:<40} {item.info.describe():<50} {where:<16} {item.info.public.decode()}")


@keys.command("add-model")
@click.argument("name")
@click.option("--use-case", required=True, help="Use case the model serves.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to copy to the model's host (its key pair and the servers' public keys; 0600).")
@deployment_options(data_dir=True)
def keys_add_model(name: str, use_case: str, out: Path, deployment: Deployment) -> None:
    """Admit model NAME running on another host: copy --out there and run it with `rvz model run --keys`."""
    from rvz.security.manage import add_remote_model

    try:
        add_remote_model(deployment.config, name, use_case, out)
    except ConfigError as e:
        fail(str(e))
    click.echo(f"wrote {out}: copy it to the model's host (keep it 0600) and run `rvz model run --name {name} "
               f"--use-case {use_case} --keys {out.name} ...`; the deployment admits it from now on")


@keys.command("token")
@click.argument("name")
@deployment_options(data_dir=True)
def keys_token(name: str, deployment: Deployment) -> None:
    """Add an Admin token named NAME (its name is who the audit log records)."""
    from rvz.security.manage import add_token

    try:
        path = add_token(deployment.config, name)
    except ConfigError as e:
        fail(str(e))
    click.echo(f"added token {name!r} to {path}")
