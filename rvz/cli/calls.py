"""`rvz score` and `rvz check`: one call to a frontend."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from rvz.cli.options import (
    EXIT_FAILURE,
    EXIT_OK,
    Deployment,
    deployment_options,
    fail,
    parse_features,
    require_extra,
)
from rvz.errors import CallFailed


@click.command()
@deployment_options(target=True, use_case="the frontend's frontend.default_use_case")
@click.option("--features", "features_json", help='Features as JSON, e.g. \'{"petal_length": 1.4}\'.')
@click.option("--example", is_flag=True, help="Send a real row of the demo dataset (needs rvz[demo]).")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True, help="gRPC deadline, seconds.")
def score(deployment: Deployment, features_json: str | None, example: bool, timeout_s: float) -> None:
    """Score one request and print the response as JSON."""
    from rvz.client import score as call_score

    if bool(features_json) == example:
        fail("give exactly one of --features JSON or --example")
    features = _example() if example else parse_features(features_json or "")
    try:
        response = call_score(deployment.connection, deployment.use_case or "", features, timeout_s)
    except CallFailed as e:
        deployment.call_failed(e)
    click.echo(json.dumps(response))


def _example() -> dict[str, Any]:
    require_extra("sklearn", "demo", "--example (a row of the demo's dataset)")
    from rvz.demo import example_features

    return example_features()


@click.command()
@deployment_options(target=True, use_case="the whole server")
@click.option("--timeout", "timeout_s", type=float, default=2.0, show_default=True, help="Seconds to wait.")
def check(deployment: Deployment, timeout_s: float) -> None:
    """Exit 0 if SERVING, 1 otherwise (for container health checks)."""
    from rvz.client import check as health_check

    status = health_check(deployment.connection, deployment.use_case or "", timeout_s)
    click.echo(status)
    sys.exit(EXIT_OK if status == "SERVING" else EXIT_FAILURE)
