"""`rvz bench` against real servers: the figures must be coherent (no timing assertions: the machine is shared)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import Deployment, scripts_importable
from rvz.bench.command import BenchResult, run_bench
from rvz.cli.bench import bench_command

PERCENTILES = ("min", "p50", "p90", "p99", "p99.9", "max")


def assert_coherent(result: dict[str, Any] | BenchResult) -> dict[str, Any]:
    r = result.as_dict() if isinstance(result, BenchResult) else result
    assert r["sent"] == r["ok"] + sum(r["errors"].values())
    assert r["missing"] == 0
    assert set(r["error_details"]) == set(r["errors"]) == set(r["error_latency_ms"])
    assert all(r["error_latency_ms"][code]["count"] == n for code, n in r["errors"].items())
    assert r["latency_ms"]["count"] == r["ok"]
    if r["ok"]:
        values = [r["latency_ms"][p] for p in PERCENTILES]
        assert values == sorted(values)
        assert r["throughput_rps"] > 0
        assert sum(r["answers_by_rule"].values()) == r["ok"]
    assert r["completed_total"] >= r["sent"]
    return r




@pytest.fixture
def direct_server(root: Path) -> Iterator[str]:
    """The direct baseline of scripts/bench (a plain gRPC Scoring server) as a real process."""
    with scripts_importable():
        from bench_systems.systems import start_direct

        system = start_direct(root)
        try:
            yield system.target
        finally:
            system.stop()


def test_closed_loop_json_against_rvz_and_refusals_by_code(deployment: Callable[..., Deployment]) -> None:
    d = deployment().start([("echo", "rvz_test_models:echo", "champion")])
    args = ["--target", d.address, "--concurrency", "4", "--warmup", "0.2", "--duration", "0.5",
            "--features", '{"x": 1.5}', "--json", "--no-progress"]
    out = CliRunner().invoke(bench_command, args, catch_exceptions=False)
    assert out.exit_code == 0, out.output
    r = assert_coherent(json.loads(out.output))
    assert r["mode"] == "closed" and r["concurrency"] == 4
    assert r["ok"] > 0 and r["errors"] == {}
    assert r["answers_by_model"] == {"echo/champion": r["ok"]}
    assert r["server_elapsed_ms"]["count"] == r["ok"]  # rvz reports elapsed_ms in every answer

    # No model serves this use case: every call is refused, and counted under its code (with the first call's
    # check off: by default the first refusal stops the run, see below).
    refusals = ["--use-case", "nosuch", "--no-check-first"]
    out = CliRunner().invoke(bench_command, [*args, *refusals], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    r = assert_coherent(json.loads(out.output))
    assert r["ok"] == 0 and r["sent"] > 0
    assert r["errors"] == {"NOT_FOUND": r["sent"]}
    assert "nosuch" in r["error_details"]["NOT_FOUND"]
    out = CliRunner().invoke(bench_command, [a for a in args if a != "--json"] + refusals)
    assert out.exit_code == 0, out.output
    assert " sent, 0 OK, " in out.output
    assert ", NOT_FOUND " in out.output and "error      NOT_FOUND:" in out.output


def test_open_loop_in_two_processes_merges_their_tallies(direct_server: str) -> None:
    result = run_bench(direct_server, rate=200.0, warmup_s=0.2, duration_s=0.5, processes=2,
                       features={"a": 1.0, "b": 2.0})
    r = assert_coherent(result)
    assert r["mode"] == "open" and r["processes"] == 2
    # The timetable is fixed: 200/s for 0.5 s, interleaved between the two processes.
    assert r["sent"] == 100
    assert r["ok"] == 100
    assert r["send_lag_ms"]["count"] == r["sent"]
    assert r["answers_by_model"] == {"champion/champion": 100}


def test_human_output_against_the_direct_baseline(direct_server: str) -> None:
    out = CliRunner().invoke(bench_command, ["--target", direct_server, "--concurrency", "2", "--warmup", "0",
                                             "--duration", "0.3", "--features", '{"x": "not a number"}',
                                             "--no-progress"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    # The direct baseline's champion sums numbers and ignores strings: all answers are OK.
    assert "calls " in out.output and " 0 failed" in out.output
    assert "latency " in out.output and "p99" in out.output








def test_bare_rendezvous_answers_with_the_champion_and_usage_is_read_per_process(root: Path) -> None:
    """scripts/bench's floor of the architecture: five real processes, every call answered by the champion."""
    with scripts_importable():
        from bench_systems import measure
        from bench_systems.systems import start_bare

        system = start_bare(root)
        try:
            plan = dataclasses.replace(measure.QUICK, concurrency=4, warmup_s=0.1)
            figures = measure.saturation(system, plan, duration_s=0.5)
        finally:
            exit_codes = {p.name: p.stop() for p in system.procs}
    r = assert_coherent(figures["result"])
    assert r["ok"] > 0 and r["errors"] == {}
    assert r["answers_by_model"] == {"champion/champion": r["ok"]}
    processes = {"frontend", "rendezvous", "model-champion", "model-challenger", "model-canary"}
    assert exit_codes == dict.fromkeys(processes, 0)  # each stopped cleanly on SIGTERM
    # Every process took part in every call: each used CPU and was woken.
    assert set(figures["per_call"]) == processes
    assert all(v["cpu_us"] > 0 and v["switches"] > 0 for v in figures["per_call"].values()), figures["per_call"]


