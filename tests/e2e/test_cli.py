"""The `rvz` command line as a user runs it: real processes, exit codes and output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from harness import Proc, base_config, spawn
from rvz.log.writer import LogWriter
from rvz.process.banner import SERVING_PREFIX
from rvz.wire.proto import admin_pb2
from security_tools import operator_admin

pytestmark = pytest.mark.timeout(120)


def rvz(*args: str, cwd: Path | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rvz", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout_s)


@pytest.mark.parametrize(("toml", "key"), [
    ('[rendezvous]\non_timeout = "sometimes"\n', "rendezvous.on_timeout"),
    ("[rendezvous]\n[[rendezvous.schedule]]\nuntil_ms = 50\naccept = ['champion']\n"
     "[[rendezvous.schedule]]\nuntil_ms = 40\naccept = ['canary']\n", "rendezvous.schedule[1].until_ms"),
    ("[frontend]\nlisten = 'nowhere'\n", "frontend.listen"),
    ("[frontend]\nmax_in_flght = 3\n", "frontend.max_in_flght"),
    ("[[models]]\nname = 'a'\nrole = 'champion'\n", "models[0].entry"),
    ("[streams]\nrequests = 'http://x'\n", "streams.requests"),
    ("[log\n", "not valid TOML"),
])
@pytest.mark.parametrize("command", ["up", "frontend", "rendezvous"])
def test_invalid_config_is_one_line_naming_file_and_key(tmp_path: Path, toml: str, key: str,
                                                        command: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    result = rvz(command, "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and key in lines[0], result.stderr


def test_missing_config_file_and_bad_model_options(tmp_path: Path) -> None:
    result = rvz("frontend", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "file not found" in result.stderr
    result = rvz("model", "run", "--name", "m", "--role", "king", "--entry", "a:b")
    assert result.returncode == 2 and "king" in result.stderr
    result = rvz("model", "run", "--name", "m", "--entry", "no_such_module:f")
    assert result.returncode == 2 and "cannot import module 'no_such_module'" in result.stderr
    result = rvz("score", "--features", "{not json")
    assert result.returncode == 2 and "--features is not valid JSON" in result.stderr


def test_log_cat_prints_json_lines_and_survives_a_torn_tail(tmp_path: Path) -> None:
    from rvz.wire.proto import envelope_pb2

    directory = tmp_path / "results"
    with LogWriter(directory, "rvz.v1.ResultEnvelope") as log:
        for i in range(3):
            log.append(envelope_pb2.ResultEnvelope(request_id=f"r{i}", rule="default").SerializeToString())
    segment = next(directory.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[:-3])  # a crash in the middle of the last record
    result = rvz("log", "cat", str(directory))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["request_id"] for line in result.stdout.splitlines()] == ["r0", "r1"]
    assert result.stderr.startswith("rvz: skipped ") and "damaged tail at offsets" in result.stderr
    assert rvz("log", "cat", "--strict", str(directory)).returncode == 1
    # A writer starting on it truncates the torn record and appends after the good ones.
    with LogWriter(directory, "rvz.v1.ResultEnvelope") as log:
        log.append(envelope_pb2.ResultEnvelope(request_id="r3").SerializeToString())
    result = rvz("log", "cat", "--strict", str(directory))
    assert [json.loads(line)["request_id"] for line in result.stdout.splitlines()] == ["r0", "r1", "r3"]


DEMO_MODELS = """
[[models]]
name = "gbm"
role = "champion"
entry = "rvz.demo:Champion"
[[models]]
name = "logreg"
role = "challenger"
entry = "rvz.demo:Challenger"
[[models]]
name = "rules"
role = "canary"
entry = "rvz.demo:Canary"
nice = 7
[[models]]
name = "archive"
role = "decoy"
"""


@pytest.fixture
def up(root: Path) -> Iterator[tuple[Proc, str]]:
    """`rvz up` with the demo's models (streams on ipc://, frontend on port 0)."""
    config = root / "rvz.toml"
    config.write_text(base_config(root, extra=DEMO_MODELS))
    proc = start_up(root, config)
    try:
        line = proc.wait_line(SERVING_PREFIX, timeout_s=90)
        yield proc, line.split()[0]
    finally:
        proc.stop()


def start_up(root: Path, config: Path, name: str = "up") -> Proc:
    return spawn(name, ["up", "--config", str(config)], root, announces=(SERVING_PREFIX,))


def child_pids(proc: Proc) -> dict[str, int]:
    return {m[0]: int(m[1]) for m in re.findall(r"started (.+?) \(pid (\d+)\)", proc.stderr())}


def thread_nice_values(pid: int) -> set[int]:
    # Field 19 of /proc/PID/task/TID/stat, counted after the ")" that ends the command name.
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return {int((task / "stat").read_text().rsplit(")", 1)[1].split()[16]) for task in tasks}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


def test_rvz_up_serves_the_demo_end_to_end(up: tuple[Proc, str], root: Path) -> None:
    proc, address = up
    result = rvz("score", "--target", address, "--example")
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["model_name"] == "gbm" and response["role"] == "champion"
    assert response["output"]["label"] in {"setosa", "versicolor", "virginica"}
    assert rvz("check", "--target", address).returncode == 0
    assert rvz("check", "--target", address, "--use-case", "default").stdout.strip() == "SERVING"
    requests = rvz("log", "cat", str(root / "data" / "requests")).stdout.splitlines()
    assert response["request_id"] in {json.loads(line)["request_id"] for line in requests}
    pids = child_pids(proc)
    assert set(pids) == {"rendezvous", "frontend", "model gbm", "model logreg", "model rules", "model archive"}
    assert thread_nice_values(pids["model rules"]) == {7}  # every thread, ZeroMQ's and the model's included
    assert thread_nice_values(pids["model gbm"]) == {0}
    # The rendezvous's loop runs on its main thread, whose timers fire with the least slack Linux allows.
    assert Path(f"/proc/{pids['rendezvous']}/timerslack_ns").read_text().strip() == "1"
    inherited = Path("/proc/self/timerslack_ns").read_text()
    assert inherited.strip() != "1" and Path(f"/proc/{pids['frontend']}/timerslack_ns").read_text() == inherited
    assert proc.stop(signal.SIGINT) == 0
    assert not any(alive(pid) for pid in pids.values())
    results = rvz("log", "cat", str(root / "data" / "results")).stdout
    assert response["request_id"] in results


def test_rvz_up_restarts_a_model_that_dies(up: tuple[Proc, str]) -> None:
    proc, address = up
    first = child_pids(proc)["model logreg"]
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child_pids(proc)["model logreg"] == first:
        time.sleep(0.05)  # the supervisor's log is the only signal of a restart
    assert child_pids(proc)["model logreg"] != first
    assert "exited with code -9" in proc.stderr()
    assert rvz("score", "--target", address, "--example").returncode == 0


LOADING_MODEL = """
[[models]]
name = "loading"
role = "champion"
entry = "rvz_test_slow_import:echo"
"""


@pytest.mark.parametrize(("sig", "exit_code", "moment"), [
    (signal.SIGINT, 130, r"started rendezvous \(pid \d+\)"),  # the first child has started
    (signal.SIGTERM, 143, r"started rendezvous \(pid \d+\)"),
    (signal.SIGINT, 130, r"serving rvz\.v1\.Scoring on"),  # the frontend listens, the model is still loading
])
def test_a_signal_during_start_up_stops_every_child_at_once(root: Path, sig: signal.Signals, exit_code: int,
                                                            moment: str) -> None:
    config = root / "rvz.toml"
    config.write_text(base_config(root, extra=LOADING_MODEL))
    proc = start_up(root, config)
    try:
        proc.wait_stderr(moment)
        os.kill(proc.pid, sig)
        signalled = time.monotonic()
        code = proc.wait(timeout_s=10)
        took_s = time.monotonic() - signalled
    finally:
        proc.stop()
    assert code == exit_code, proc.stderr()
    assert took_s < 5, proc.stderr()
    pids = child_pids(proc)
    assert {"rendezvous", "frontend", "model loading"} >= set(pids) >= {"rendezvous"}, proc.stderr()
    assert not any(alive(pid) for pid in pids.values()), proc.stderr()
    assert f"{sig.name} while starting: stopping every child" in proc.stderr()
    assert "did not report ready" not in proc.stderr() and "Traceback" not in proc.stderr()


ECHO_MODELS = """
[[models]]
name = "a"
role = "champion"
entry = "rvz_test_models:echo"
[[models]]
name = "b"
role = "challenger"
entry = "rvz_test_models:echo"
"""


def test_after_a_restart_the_banner_and_start_lines_say_what_is_in_force(root: Path) -> None:
    config = root / "rvz.toml"
    config.write_text(base_config(root, extra=ECHO_MODELS))
    first = start_up(root, config, "up-1")
    try:
        banner = first.wait_line(SERVING_PREFIX)
        assert "default: policy v1, SLA 100 ms, models a (champion), b (challenger);" in banner, banner
        address = banner.split()[0]
        with grpc.insecure_channel(address) as channel:
            admin = operator_admin(channel, root / "data")
            admin.Promote(admin_pb2.PromoteRequest(use_case="default", model_name="b"), timeout=5)
            admin.SetPolicy(admin_pb2.SetPolicyRequest(use_case="default", policy=admin_pb2.Policy(
                deadline_ms=40, schedule=[admin_pb2.Window(until_ms=40, accept=["champion"])])), timeout=5)
    finally:
        assert first.stop(signal.SIGINT) == 0
    second = start_up(root, config, "up-2")  # the same configuration file, the same data directory
    try:
        banner = second.wait_line(SERVING_PREFIX)
        second.wait_stderr(r"SLA in force, from the rendezvous: use case 'default' 40 ms")
    finally:
        second.stop()
    assert ("default: policy v2, SLA 40 ms, models a (challenger; configured: champion), "
            "b (champion; configured: challenger);") in banner, banner
    stderr = second.stderr()
    assert "in force: use case 'default' policy v2 (SLA 40 ms, set through the Admin API)" in stderr
    assert "roles set through the Admin API: default/a challenger, default/b champion" in stderr
