"""The README opens with the two commands, and CI runs exactly the second one."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_demo_and_test_commands() -> None:
    demo, tests = readme_commands()
    assert demo.endswith("rvz up")
    assert tests.endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    _, tests = readme_commands()
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_first_command_installs_what_the_tour_uses() -> None:
    """`pip install -e '.[demo]'` then the tour: `rvz report --html`, `rvz log export` (report), `rvz bench`."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "rvz[report,bench]" in extras["demo"]
    tour = (ROOT / "README.md").read_text().split("## A first tour", 1)[1]
    assert "rvz report --html" in tour and "rvz bench" in tour
