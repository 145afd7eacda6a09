"""`rvz up` keeps a deployment whole: a stuck model is restarted, a second deployment never joins the first."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import grpc
import pytest

from harness import Proc, base_config, spawn
from rvz.client import Client
from rvz.errors import CallFailed
from rvz.process.child import ChildProcess, ChildSpec
from rvz.process.entry import MODEL_READY

pytestmark = pytest.mark.timeout(120)
SERVING_PREFIX = "rvz serving on "


def models(*entries: tuple[str, str, str], extra: str = "") -> str:
    return "".join(f'[[models]]\nname = "{n}"\nentry = "{e}"\nrole = "{r}"\n{extra}\n' for n, e, r in entries)


def start_up(root: Path, config: Path, name: str = "up", env: dict[str, str] | None = None) -> Proc:
    return spawn(name, ["up", "--config", str(config)], root, env=env, announces=(SERVING_PREFIX,))


def test_a_hung_model_is_restarted_by_its_watchdog_and_rvz_models_counts_it(root: Path) -> None:
    # Measured before: a challenger that blocks forever stayed alive and hung: nothing restarted it.
    config = root / "rvz.toml"
    config.write_text(base_config(root, extra=models(("champ", "rvz_test_models:echo", "champion"))
                                  + models(("hung", "rvz_test_models:hang", "challenger"), extra="watchdog_ms = 500")))
    up = start_up(root, config)
    try:
        address = up.wait_line(SERVING_PREFIX, timeout_s=90).split()[0]
        client = Client(address)
        started = time.monotonic()
        answered = []
        restarts = 0
        while time.monotonic() - started < 20 and restarts < 2:  # bounded: a few restarts are enough
            answered.append(client.score({"x": 1}).model_name)
            restarts = max([m.restarts for m in client.models() if m.name == "hung"], default=0)
        assert restarts >= 2, up.stderr()
        assert set(answered) == {"champ"}
        assert re.search(r"model hung \(pid \d+\) made no progress for \d+ ms \(watchdog 500 ms\)", up.stderr())
        client.close()
    finally:
        up.stop()


def test_a_second_deployment_fails_before_any_of_its_models_joins_the_first(root: Path) -> None:
    # Measured before: a second `rvz up` on the same ports failed ("log is locked"), but its workers first
    # connected to the running deployment's streams: 45 live calls were answered by the second one's code.
    config = root / "rvz.toml"
    config.write_text(base_config(root, extra=models(("champ", "rvz_test_models:echo", "champion"))))
    first = start_up(root, config)
    seconds: list[Proc] = []
    try:
        address = first.wait_line(SERVING_PREFIX, timeout_s=90).split()[0]
        client = Client(address)
        for data_dir in ("data", "other-data"):  # the same data directory, then only the same streams
            other = root / f"second-{data_dir}.toml"
            other.write_text(config.read_text().replace(f'dir = "{root}/data"', f'dir = "{root}/{data_dir}"'))
            second = start_up(root, other, name=f"second-{data_dir}", env={"RVZ_TEST_TAG": "intruder"})
            seconds.append(second)
            outputs = []
            while second.poll() is None:  # bounded by the second start failing, within a few seconds
                try:
                    outputs.append(client.score({"x": 1}).output["by"])
                except CallFailed as e:  # the second start's processes may starve the first of CPU for a
                    # deadline on 2 cores; what must never happen is an answer by the intruder's code
                    assert e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e
            assert second.poll() != 0
            assert set(outputs) <= {"echo"}, outputs
            assert MODEL_READY not in second.output_tail() and "started model" not in second.stderr()
        assert client.score({"x": 2}).output["by"] == "echo"
        client.close()
    finally:
        for proc in seconds:  # a failed assertion must not leave a second `rvz up` running
            proc.stop(signal.SIGTERM)
        first.stop(signal.SIGTERM)


def test_the_rendezvous_killed_is_back_within_two_seconds(root: Path) -> None:
    config = root / "rvz.toml"
    config.write_text(base_config(root, extra=models(("champ", "rvz_test_models:echo", "champion"))))
    up = start_up(root, config)
    try:
        address = up.wait_line(SERVING_PREFIX, timeout_s=90).split()[0]
        client = Client(address, timeout_s=1.0)
        assert client.score({"x": 1}).model_name == "champ"
        pid = int(re.findall(r"started rendezvous \(pid (\d+)\)", up.stderr())[-1])
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while True:  # bounded: 10 s at most
            try:
                client.score({"x": 1})
                break
            except CallFailed as e:
                assert e.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), e
                assert time.monotonic() - killed < 10
        assert time.monotonic() - killed < 2.0, up.stderr()
        client.close()
    finally:
        up.stop()


def test_a_process_stuck_in_a_model_exits_on_its_own_after_the_stop_grace(tmp_path: Path) -> None:
    # Found as orphans: `rvz up` killed while stopping left a hung model's worker running forever (SIGTERM
    # only sets a flag, and nobody was left to send the SIGKILL).
    script = ("import threading, rvz.process.entry as entry\n"
              "entry.STOP_GRACE_S = 0.3\n"
              "with entry._exit_on_signal(threading.Event()):\n"
              "    print('stuck', flush=True)\n"
              "    threading.Event().wait()\n")
    stuck = ChildProcess(ChildSpec("stuck", (sys.executable, "-c", script), cwd=tmp_path,
                                   stderr_path=tmp_path / "stuck.stderr", announces=("stuck",)))
    stuck.start()
    try:
        stuck.wait_line("stuck")
        os.kill(stuck.pid, signal.SIGTERM)
        assert stuck.wait(10) == 128 + signal.SIGTERM
        assert "exiting now" in stuck.stderr_tail()
    finally:
        stuck.kill()
