"""`rvz bench` against real servers: the figures must be coherent (no timing assertions: the machine is shared)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import assert_coherent, scripts_importable
from rvz.bench.command import run_bench
from rvz.cli.bench import bench_command


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


