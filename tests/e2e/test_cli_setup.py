"""The `rvz` command line as installed: a missing optional dependency, the log options every process follows,
--version. Real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import base_config, spawn

pytestmark = pytest.mark.timeout(120)


def rvz_without(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`rvz ARGS` in an interpreter where ``module`` cannot be imported (as when its extra is not installed)."""
    code = f"import sys; sys.modules[{module!r}] = None; from rvz.cli.main import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize(("module", "args", "extra"), [
    ("matplotlib", ["report", "--data-dir", ".", "--html", "page.html"], "report"),
    ("sklearn", ["score", "--example", "--target", "127.0.0.1:1"], "demo"),
    ("sklearn", ["up", "--data-dir", "data"], "demo"),
    ("hdrh", ["bench", "--target", "127.0.0.1:1", "--no-progress"], "bench"),
], ids=["report --html", "score --example", "up (the demo)", "bench"])
def test_a_missing_extra_is_one_line_naming_it_before_any_output(tmp_path: Path, module: str, args: list[str],
                                                                  extra: str) -> None:
    started = time.monotonic()
    result = rvz_without(module, *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rvz: "), result.stderr
    assert lines[0].endswith(f" needs the {module} package, which is not installed: pip install 'rvz[{extra}]'")
    assert time.monotonic() - started < 20  # at once: nothing was started or waited for
    assert not (tmp_path / "page.html").exists() and not (tmp_path / "data").exists()


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version

    result = subprocess.run([sys.executable, "-m", "rvz", "--version"], capture_output=True, text=True, timeout=30,
                            cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, f"rvz {version('rvz')}\n")


MODEL = '[[models]]\nname = "echo"\nentry = "rvz_test_models:echo"\n'


def up_stderr(root: Path, *options: str) -> str:
    """`rvz OPTIONS up` with one model until it serves, then stopped; everything its processes logged."""
    config = root / "rvz.toml"
    config.write_text(base_config(root, extra=MODEL))
    proc = spawn("up", [*options, "up", "--config", str(config)], root, announces=("rvz serving on ",))
    try:
        proc.wait_line("rvz serving on ", timeout_s=90)
    finally:
        assert proc.stop() == 0
    return (root / "up.stderr").read_text()


def test_log_format_json_applies_to_every_process_rvz_up_starts(root: Path) -> None:
    """`rvz --log-format json up` formatted only the supervisor's own lines."""
    lines = [line for line in up_stderr(root, "--log-format", "json").splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line, whichever process wrote it
    components = {r["component"] for r in records}
    assert {"rvz-up", "rvz-frontend", "rvz-rendezvous"} <= components, components


def test_log_level_applies_to_every_process_rvz_up_starts(root: Path) -> None:
    logged = up_stderr(root, "--log-level", "WARNING")
    assert " INFO " not in logged and "serving rvz.v1.Scoring" not in logged, logged
