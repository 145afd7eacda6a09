"""Every command that talks to a deployment finds it through --config (or RVZ_CONFIG): its frontend, its default
use case, its streams and its logs. Real processes; the deployment's default use case is not "default"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import TESTS_DIR, Deployment
from rvz.process.entry import MODEL_READY

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., Deployment]

FRONTEND = 'default_use_case = "diabetes"'
# Started by `rvz model run --name canary` alone: everything else comes from this entry.
CANARY = """
[[models]]
name = "canary"
entry = "rvz_test_models:numeric"
role = "canary"
use_case = "diabetes"
version = "3"
"""


def rvz(d: Deployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rvz", *args], capture_output=True, text=True, timeout=60,
                          cwd=d.root, env={**os.environ, "PYTHONPATH": str(TESTS_DIR), **env})


def start(deployment: Make) -> tuple[Deployment, Path]:
    """forest (champion) and gbm (challenger) in use case diabetes; and the config a user of it would have:
    the same file, with the port the frontend got."""
    d = deployment(frontend=FRONTEND, extra=CANARY)
    d.start([("forest", "rvz_test_models:numeric", "champion"), ("gbm", "rvz_test_models:numeric", "challenger")],
            use_case="diabetes")
    config = d.root / "cli.toml"
    config.write_text(d.config_path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "{d.address}"'))
    return d, config


def roles(d: Deployment, config: Path) -> dict[str, str]:
    listed = rvz(d, "models", "--config", str(config), "--json")
    assert listed.returncode == 0, listed.stderr
    return {m["name"]: m["role"] for m in json.loads(listed.stdout)}


def test_commands_find_the_deployment_of_their_config(deployment: Make) -> None:
    d, config = start(deployment)
    canary = d.spawn("model-canary", "model", "run", "--config", str(d.config_path), "--name", "canary")
    assert canary.wait_line(MODEL_READY) == "diabetes/canary"
    d.wait_models({"forest", "gbm", "canary"}, "diabetes")

    scored = rvz(d, "score", "--config", str(config), "--features", '{"v": 2}')
    assert scored.returncode == 0, scored.stderr
    answer = json.loads(scored.stdout)
    assert (answer["model_name"], answer["output"]) == ("forest", 2.0)
    assert rvz(d, "check", RVZ_CONFIG=str(config)).stdout.strip() == "SERVING"
    assert rvz(d, "check", "--use-case", "diabetes", RVZ_CONFIG=str(config)).returncode == 0

    assert roles(d, config) == {"forest": "champion", "gbm": "challenger", "canary": "canary"}
    listed = json.loads(rvz(d, "models", "--config", str(config), "--json").stdout)
    assert {(m["name"], m["version"]) for m in listed} >= {("canary", "3")}  # from its [[models]] entry
    table = rvz(d, "models", "--config", str(config))
    assert table.returncode == 0 and "forest" in table.stdout and "diabetes" in table.stdout
    nothing = rvz(d, "models", "--config", str(config), "--use-case", "default")
    assert nothing.returncode == 0 and "No model of use case 'default'" in nothing.stdout
    assert "use cases with models: 'diabetes'" in nothing.stdout

    shown = rvz(d, "policy", "show", "--config", str(config))
    assert shown.returncode == 0 and shown.stdout.startswith("# use case 'diabetes', policy version 1\n")
    missing = rvz(d, "policy", "show", "--config", str(config), "--use-case", "nosuch")
    assert missing.returncode == 1 and "NOT_FOUND: no model has announced use case 'nosuch'" in missing.stderr

    logged = rvz(d, "log", "cat", "requests", "--config", str(config))
    assert answer["request_id"] in {json.loads(line)["request_id"] for line in logged.stdout.splitlines()}
    report = rvz(d, "report", "--config", str(config), "--json")
    assert report.returncode == 0, report.stderr
    assert [u["use_case"] for u in json.loads(report.stdout)["use_cases"]] == ["diabetes"]


def test_promote_set_and_reset_act_on_the_default_use_case_of_the_config(deployment: Make) -> None:
    d, config = start(deployment)
    promoted = rvz(d, "promote", "gbm", "--config", str(config))
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.strip() == "use case 'diabetes': gbm is the champion; forest is now a challenger"
    policy = d.root / "policy.toml"
    policy.write_text(rvz(d, "policy", "show", "--config", str(config)).stdout.replace("until_ms = 30.0",
                                                                                       "until_ms = 25.0"))
    assert "policy version 2 in force" in rvz(d, "policy", "set", str(policy), "--config", str(config)).stdout
    assert roles(d, config) == {"forest": "challenger", "gbm": "champion"}

    reset = rvz(d, "policy", "reset", "--config", str(config))
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.strip() == ("use case 'diabetes': the config's policy is in force (version 3), and every "
                                    "model has the role it was started with")
    assert roles(d, config) == {"forest": "champion", "gbm": "challenger"}
    shown = rvz(d, "policy", "show", "--config", str(config)).stdout
    assert "policy version 3" in shown and "until_ms = 30.0" in shown and "until_ms = 25.0" not in shown
    assert d.score({"v": 1}).model_name == "forest"
    saved = json.loads((d.root / "data" / "admin-state.json").read_text())
    changed_ns = saved.pop("changed_unix_ns")  # when the last change was made (several rendezvous compare it)
    assert 0 < time.time_ns() - changed_ns < 60 * 10**9
    assert saved == {"policies": {"diabetes": {"version": 3, "from_config": True}}, "roles": {}}

    # A restarted rendezvous keeps the reset: the config's policy, the started roles.
    d.proc("rendezvous").stop()
    d.procs.remove(d.proc("rendezvous"))
    d.start_rendezvous()
    d.wait_models({"forest", "gbm"}, "diabetes")
    assert "policy version 3" in rvz(d, "policy", "show", "--config", str(config)).stdout
    assert roles(d, config) == {"forest": "champion", "gbm": "challenger"}


def test_replay_through_the_running_rendezvous_of_the_config(deployment: Make) -> None:
    d, config = start(deployment)
    answered = {d.score({"v": v}).request_id for v in range(12)}
    result = rvz(d, "replay", "--config", str(config), "--entry", "rvz_test_models:numeric", "--name", "newbie",
                 RVZ_TEST_SHIFT="0.5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("replayed 12 requests into newbie v1 (0 errors), written through the running "
                                    "rendezvous;")
    assert "--use-case diabetes" in result.stdout
    # Reported only once every score was read back from the scores log.
    replayed = [r for r in d.records("scores") if r.score.model_name == "newbie"]
    assert {r.score.request_id for r in replayed} == answered and all(r.score.replayed for r in replayed)


def test_replay_into_a_running_deployment_without_its_config_fails_and_writes_nothing(deployment: Make) -> None:
    """Without --config, replay sent every score to the default scores port, where nothing listened, and said
    it had written them through the running rendezvous."""
    d, _ = start(deployment)
    for v in range(5):
        d.score({"v": v})
    result = rvz(d, "replay", "--data-dir", "data", "--entry", "rvz_test_models:numeric", "--name", "gbm",
                 "--use-case", "diabetes")
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rvz: replay failed: ") and "give --config" in lines[0], lines
    assert result.stdout == ""
    assert not [r for r in d.records("scores") if r.score.replayed]
    # Nothing was queued for later either: the replay sent nothing.
    assert d.score({"v": 9}).model_name == "forest"
    assert not [r for r in d.records("scores") if r.score.replayed]


def test_replay_with_no_archived_request_of_the_use_case_fails(deployment: Make) -> None:
    d, config = start(deployment)
    d.score({"v": 1})
    result = rvz(d, "replay", "--config", str(config), "--use-case", "default", "--entry", "rvz_test_models:numeric",
                 "--name", "newbie")
    assert result.returncode == 1
    assert "no archived request of use case 'default'" in result.stderr and "(use cases in it: 'diabetes')" in \
        result.stderr


def test_bench_stops_at_a_first_call_that_fails(deployment: Make) -> None:
    """Its default features are the demo's: every call of the run was refused, and it exited 0."""
    d = deployment().start([("typed", "rvz_test_models:Typed", "champion")])
    result = rvz(d, "bench", "--target", d.address, "--duration", "30", "--no-progress")
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rvz: the first call failed with INVALID_ARGUMENT: "), lines
    assert "nothing was measured" in lines[0] and "--no-check-first" in lines[0]
    assert len(d.records("requests")) <= 1
