"""`rvz bench`: the command line of ``rvz.bench.command.run_bench``."""

from __future__ import annotations

import json
import sys

import click

from rvz.bench.command import DEFAULT_FEATURES, render, run_bench
from rvz.cli.options import EXIT_FAILURE, Deployment, deployment_options, fail, parse_features, require_extra


@click.command("bench")
@deployment_options(target=True, use_case="the frontend's frontend.default_use_case")
@click.option("--concurrency", default=16, show_default=True, type=click.IntRange(min=1),
              help="Closed loop: calls kept in flight (ignored with --rate).")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None, show_default="closed loop",
              help="Open loop: requests per second on a fixed timetable; latency counts from the scheduled "
                   "send time.")
@click.option("--warmup", "warmup_s", default=1.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds of load before measuring.")
@click.option("--duration", "duration_s", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds measured.")
@click.option("--features", "features_json", default=json.dumps(DEFAULT_FEATURES), show_default=True,
              help="Features of every request, as a JSON object (the default is a row of the demo's).")
@click.option("--timeout", "timeout_s", default=5.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="gRPC deadline of each call, seconds.")
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Load processes (Python gRPC clients are CPU-bound); their histograms are merged.")
@click.option("--check-first/--no-check-first", default=True, show_default=True,
              help="Send one call first and stop if it fails (--no-check-first measures refusals).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--progress/--no-progress", default=None, show_default="when stderr is a terminal",
              help="Show a progress bar on stderr.")
def bench_command(deployment: Deployment, concurrency: int, rate: float | None, warmup_s: float, duration_s: float,
                  features_json: str, timeout_s: float, processes: int, check_first: bool, as_json: bool,
                  progress: bool | None) -> None:
    """Load a Scoring service and report throughput, latency percentiles and non-OK answers by code."""
    require_extra("hdrh", "bench", "rvz bench")
    from rvz.errors import BenchError, FirstCallFailed

    features = parse_features(features_json)
    try:
        result = run_bench(deployment.target, concurrency=concurrency, rate=rate, warmup_s=warmup_s,
                           duration_s=duration_s, use_case=deployment.use_case or "", features=features,
                           timeout_s=timeout_s, processes=processes, check_first=check_first,
                           progress=sys.stderr.isatty() if progress is None else progress, tls=deployment.tls)
    except FirstCallFailed as e:
        fail(f"{e} (give --features and --use-case of the deployment's models, or --no-check-first to measure "
             "refusals)", EXIT_FAILURE)
    except BenchError as e:
        fail(str(e), EXIT_FAILURE)
    click.echo(json.dumps(result.as_dict()) if as_json else render(result))
