"""`rvz bench` against real servers: the figures must be coherent (no timing assertions: the machine is shared)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from harness import assert_coherent, scripts_importable
from in_process import InProcessDeployment
from rvz.bench.load import LoadPlan, split_plan
from rvz.bench.stats import Tally, record_ns
from rvz.cli.bench import bench_command


def test_unreachable_target_and_bad_options_exit_with_a_message(root: Path) -> None:
    out = CliRunner().invoke(bench_command, ["--target", "127.0.0.1:1", "--timeout", "1", "--no-progress"])
    assert out.exit_code == 1
    assert "cannot connect to 127.0.0.1:1" in out.output
    out = CliRunner().invoke(bench_command, ["--features", "[1, 2]"])
    assert out.exit_code == 2
    assert "--features must be a JSON object" in out.output


def test_load_is_shared_evenly_between_processes() -> None:
    base = LoadPlan("t", b"", 1.0, 0.0, 1.0)
    assert [p.callers for p in split_plan(base, 10, None, 3)] == [4, 3, 3]
    assert [p.callers for p in split_plan(base, 2, None, 4)] == [1, 1]  # never a process with nothing to do
    plans = split_plan(base, 1, 300.0, 3)
    assert [p.rate for p in plans] == [100.0, 100.0, 100.0]
    assert [round(p.first_offset_s * 300) for p in plans] == [0, 1, 2]


def test_tallies_merge_exactly_through_their_wire_form() -> None:
    parts = [Tally(), Tally()]
    for i, tally in enumerate(parts):
        for ms in range(1, 101):
            record_ns(tally.latency, (ms + i * 100) * 1_000_000)
        tally.sent, tally.ok = 101, 100
        tally.record_error("UNAVAILABLE", f"from {i}", 1_000_000)
    merged = Tally()
    for tally in parts:
        merged.merge_wire(tally.to_wire())
    assert (merged.sent, merged.ok, dict(merged.errors)) == (202, 200, {"UNAVAILABLE": 2})
    assert merged.error_details == {"UNAVAILABLE": "from 0"}
    assert merged.latency.get_total_count() == 200
    assert merged.latency.get_value_at_percentile(50) // 1000 == 100
    assert merged.error_latency["UNAVAILABLE"].get_total_count() == 2




def test_wake_up_costs_are_measured_on_this_machine() -> None:
    with scripts_importable():
        from bench_systems import wakeups

        figures = wakeups.measure()
        line = wakeups.line(figures)
    across = {"round_trip_any_cpu_us"} if len(os.sched_getaffinity(0)) > 1 else set()
    keys = {"round_trip_one_cpu_us", "sleep_1ms_late_us"} | across
    assert set(figures) == keys
    for name in keys:
        assert 0 < figures[name]["p50"] <= figures[name]["p99"], figures
        assert f"{figures[name]['p50']:g} µs" in line


def test_closed_loop_json_against_rvz_and_refusals_by_code(in_process: Callable[..., InProcessDeployment]) -> None:
    d = in_process().start([("echo", "rvz_test_models:echo", "champion")])
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
    # check off: by default the first refusal stops the run).
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


def test_scale_counts_duplicate_and_missing_scores_per_model_from_the_logs(tmp_path: Path) -> None:
    from rvz.log.writer import LogWriter
    from rvz.wire.proto import envelope_pb2

    with scripts_importable():
        from bench_systems import scale

    requests = [envelope_pb2.RequestEnvelope(request_id=f"q{i}").SerializeToString() for i in range(4)]
    scores = [envelope_pb2.ScoreRecord(score=envelope_pb2.ScoreEnvelope(request_id=rid, model_name=model,
                                                                         worker_id=worker)).SerializeToString()
              for rid, model, worker in (("q0", "io", "a"), ("q1", "io", "b"), ("q1", "io", "a"), ("q2", "io", "b"),
                                         ("q3", "other", "c"))]
    for log, kind, payloads in (("requests", "rvz.v1.RequestEnvelope", requests),
                                ("scores", "rvz.v1.ScoreRecord", scores)):
        with LogWriter(tmp_path / log, kind, fsync=False) as writer:
            writer.append_many(payloads)
    once = scale.exactly_once(tmp_path)
    assert once == {"requests": 4, "scores": 4, "duplicates": 1, "missing": 1, "by_worker": [2, 2]}
    runs = {str(n): {"rps": 100.0 * n, "p50_ms": 1.0, "p99_ms": 2.0, "errors": {}, **once} for n in scale.REPLICAS}
    text = scale.table({"model_ms": 10, "concurrency": 64, "runs": runs, "speedup": 4.0})
    assert "| 4 | 400.0 | 4.00x |" in text and "4.0x (met)" in text and "missing scores per model: NOT met" in text


def test_frontends_counts_the_cpu_of_a_process_tree_and_tables_each_run(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    with scripts_importable():
        from bench_systems import frontends

    script = ("import sys, time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
              "sys.stdout.write('done\\n')\nsys.stdout.flush()\nsys.stdin.read()")
    with subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE) as busy:
        try:
            assert busy.stdout is not None and busy.stdout.readline() == b"done\n"  # it has burnt its 0.3 s
            assert busy.pid in frontends.children(os.getpid())
            assert frontends.cpu_seconds([busy.pid]) >= 0.25
            assert frontends.cpu_seconds([2**22 + 1]) == 0  # a process that is gone counts nothing
        finally:
            busy.kill()
    spread = {"requests": 10, "requests.1": 9}
    runs = {name: {"rps": 1000.0 * n, "vs_direct": float(n), "p50_ms": 1.0, "p99_ms": 2.0, "errors": {},
                   "deployment_cores": 1.5, "cores_by_part": {"rendezvous": 0.5, "frontend": 1.0}, "load_cores": 0.5,
                   "requests_by_frontend": spread}
            for name, n, _ in frontends.RUNS}
    text = frontends.table({"concurrency": 64, "load_processes": 4, "cpus": 2, "runs": runs})
    assert ("| 2 via hub | 2,000.0 | 2.00x | 1.00 | 2.00 | 1.50 | frontend 1.00, rendezvous 0.50 | 0.50 "
            "| requests 10, requests.1 9 |") in text
    assert frontends.by_part([os.getpid()]).keys() <= {"?"}  # pytest is not an rvz process
