"""`rvz replay` into a new model, offline and beside a running deployment, then `rvz report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from harness import TESTS_DIR
from in_process import InProcessDeployment

pytestmark = pytest.mark.timeout(120)
# The deployment runs in this process: what runs as a process here is `rvz replay` and `rvz report`.
Make = Callable[..., InProcessDeployment]


def rvz(d: InProcessDeployment, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR), **env_vars}
    return subprocess.run([sys.executable, "-m", "rvz", *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=d.root)


def test_replay_offline_then_report(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:numeric", "champion")])
    answered = [d.score({"v": x}).request_id for x in range(20)]
    d.close()
    result = rvz(d, "replay", "--data-dir", str(d.root / "data"), "--entry", "rvz_test_models:numeric",
                 "--name", "newbie", "--version", "2", RVZ_TEST_SHIFT="0.5")
    assert result.returncode == 0, result.stderr
    assert "replayed 20 requests into newbie v2 (0 errors), written through the scores log" in result.stdout
    replayed = [r for r in d.records("scores") if r.score.model_name == "newbie"]
    assert sorted(r.score.request_id for r in replayed) == sorted(answered)
    assert all(r.score.replayed and r.score.model_version == "2" and not r.late for r in replayed)
    report = json.loads(rvz(d, "report", "--data-dir", str(d.root / "data"), "--json").stdout)
    models = {m["name"]: m for m in report["use_cases"][0]["models"]}
    assert models["newbie"]["replayed"] and models["newbie"]["scores"] == 20
    agreement = models["newbie"]["agreement"]
    assert agreement["reference"] == "answered" and agreement["pairs"] == 20
    assert agreement["mean_abs_diff"] == pytest.approx(0.5)


def test_replay_beside_a_running_rendezvous_goes_through_the_stream(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:echo", "champion")])
    for x in range(10):
        d.score({"x": -x})  # fragile fails on negative x: replayed errors are recorded too
    result = rvz(d, "replay", "--config", str(d.config_path), "--entry", "rvz_test_models:fragile",
                 "--name", "newbie", "--rate", "200")
    assert result.returncode == 0, result.stderr
    assert "replayed 10 requests into newbie v1 (9 errors), written through the running rendezvous" in result.stdout
    d.wait_for_record("scores", lambda r: r.score.model_name == "newbie" and r.score.request_id
                      == d.records("requests")[-1].request_id)
    replayed = [r for r in d.records("scores") if r.score.model_name == "newbie"]
    assert len(replayed) == 10 and sum(bool(r.score.error) for r in replayed) == 9
    assert all(r.score.replayed and not r.late and not r.orphan for r in replayed)
    assert d.score({"x": 1}).model_name == "champ"


def test_replay_errors(in_process: Make) -> None:
    d = in_process()
    missing = rvz(d, "replay", "--data-dir", str(d.root / "nothing"), "--entry", "m:f", "--name", "n")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (d.root / "data" / "requests").mkdir(parents=True)
    bad = rvz(d, "replay", "--data-dir", str(d.root / "data"), "--entry", "no_module:f", "--name", "n")
    assert bad.returncode == 2 and "cannot import module 'no_module'" in bad.stderr
