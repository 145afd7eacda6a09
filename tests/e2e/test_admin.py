"""The Admin API's CLI, as processes, against a deployment in this process (the API itself:
tests/unit/test_admin_in_process.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from harness import listed_models
from in_process import InProcessDeployment

pytestmark = pytest.mark.timeout(120)
Make = Callable[..., InProcessDeployment]


def test_admin_cli(in_process: Make) -> None:
    d = in_process().start([("champ", "rvz_test_models:echo", "champion"), ("chall", "rvz_test_models:echo",
                                                                          "challenger")])
    d.score({"x": 1})
    listed_models(d, 2)

    def rvz(*args: str) -> subprocess.CompletedProcess[str]:
        # --config: the deployment's data directory, whose Admin token the CLI sends.
        return subprocess.run([sys.executable, "-m", "rvz", *args, "--target", d.address, "--config",
                               str(d.config_path)], capture_output=True, text=True, timeout=30)

    listed = json.loads(rvz("models", "--json").stdout)
    assert {m["name"]: m["role"] for m in listed} == {"champ": "champion", "chall": "challenger"}
    table = rvz("models")
    assert "champ" in table.stdout, (table.stdout, table.stderr)
    shown = rvz("policy", "show")
    assert shown.returncode == 0 and "policy version 1" in shown.stdout
    policy_file = d.root / "policy.toml"
    policy_file.write_text(shown.stdout.replace("until_ms = 30.0", "until_ms = 25.0"))
    assert "policy version 2 in force" in rvz("policy", "set", str(policy_file)).stdout
    assert "until_ms = 25.0" in rvz("policy", "show").stdout
    policy_file.write_text("[rendezvous]\ndeadline = 5\n")
    refused = rvz("policy", "set", str(policy_file))
    assert refused.returncode == 1 and "deadline" in refused.stderr
    promoted = rvz("promote", "chall")
    assert promoted.returncode == 0 and "chall is the champion; champ is now a challenger" in promoted.stdout
    missing = rvz("promote", "nobody")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    d.stop("rendezvous")
    unreachable = rvz("models")
    assert unreachable.returncode == 1 and "UNAVAILABLE" in unreachable.stderr
