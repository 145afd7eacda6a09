"""The quick subset of the fault matrix (scripts/chaos --quick) meets the isolation issue's targets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness import SCRIPTS_DIR

pytestmark = pytest.mark.timeout(300)


def test_the_quick_fault_matrix_meets_every_target(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    done = subprocess.run([str(SCRIPTS_DIR / "chaos"), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=280)
    rows = {row["fault"]: row for row in json.loads(out.read_text())}
    assert set(rows) == {"none", "rendezvous-stop", "kill-champion", "challenger-contract"}, done.stderr
    assert {name: row["misses"] for name, row in rows.items() if row["misses"]} == {}, done.stdout
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows["rendezvous-stop"]["by_status"].get("UNAVAILABLE", 0) > 0  # the fault really happened
    assert all(row["not_logged"] == 0 for row in rows.values())
