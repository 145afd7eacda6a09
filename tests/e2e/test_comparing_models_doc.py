"""docs/comparing-models.md and docs/python-client.md, run as written: their shell commands and Python code,
in order, against a real deployment of the demo's models (started by the harness in place of `rvz up`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness import TESTS_DIR, Deployment
from rvz.config import parse_config

pytestmark = pytest.mark.timeout(300)
Make = Callable[..., Deployment]
DOC = TESTS_DIR.parent / "docs" / "comparing-models.md"
CLIENT_DOC = TESTS_DIR.parent / "docs" / "python-client.md"
DEMO_TARGET = "127.0.0.1:50051"
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_NAME = re.compile(r"^# ([\w.]+\.py):")


def blocks(doc: Path = DOC) -> list[tuple[str, str]]:
    return [(language, body) for language, body in BLOCK.findall(doc.read_text())]


def demo(deployment: Make) -> Deployment:
    return deployment().start([("gbm", "rvz.demo:Champion", "champion"), ("logreg", "rvz.demo:Challenger",
                                                                         "challenger"),
                               ("rules", "rvz.demo:Canary", "canary")])


def run(line: str, root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120, cwd=root, env=env)
    assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_the_walk_through_runs_as_written(deployment: Make) -> None:
    d = demo(deployment)
    config = d.root / "cli.toml"  # the deployment as its users' commands find it: the port it got
    config.write_text(d.config_path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "{d.address}"'))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "RVZ_CONFIG": str(config), "PATH": os.pathsep.join([bin_dir, os.environ["PATH"]])}
    env.pop("PYTHONPATH", None)
    printed = ""
    commands = 0
    for language, body in blocks():
        body = body.replace(DEMO_TARGET, d.address)
        if language == "python":
            name = FILE_NAME.match(body)
            assert name, f"a Python block of the doc names its file on its first line:\n{body}"
            (d.root / name.group(1)).write_text(body)
        elif language == "sh":
            for line in filter(None, body.splitlines()):
                if line.startswith("rvz up"):
                    continue  # the harness started the same models
                result = run(line, d.root, env)
                printed, commands = result.stdout, commands + 1
        elif language == "toml":
            parse_config(__import__("tomllib").loads(body), "docs/comparing-models.md")
        elif language == "" and printed:
            for expected in body.strip().splitlines():  # what the doc says the last command printed
                assert expected.replace("export/", f"{d.root}/export/") in printed or expected in printed, \
                    (expected, printed)
            printed = ""
    assert commands == 7

    report = json.loads((d.root / "report.json").read_text())
    (use_case,) = report["use_cases"]
    models = {m["name"]: m for m in use_case["models"]}
    assert use_case["truths"] == 150 and use_case["champion"] == "gbm:1"
    forest = models["forest"]
    assert forest["replayed"] and forest["quality"]["n"] == 150
    assert re.fullmatch(r"forest:1 \(replayed\) (beats|is worse than|is not significantly different from) the "
                        r"champion gbm:1.*, p [=<] [0-9.]+, n = 150 \(McNemar exact\)",
                        forest["vs_champion"]["sentence"])
    # The sentences the doc quotes are the ones this run printed.
    sentences = {m["vs_champion"]["sentence"] for m in models.values() if m["vs_champion"]}
    quoted = re.findall(r"`([^`]*the champion gbm:1[^`]*)`", DOC.read_text())
    assert quoted and set(quoted) <= sentences, sentences
    page = (d.root / "report.html").read_text()
    assert "Quality against the truth (150 requests with a truth)" in page and "Confusion matrices" in page


def test_the_python_client_examples_run(deployment: Make) -> None:
    d = demo(deployment)
    examples = [body.replace(DEMO_TARGET, d.address).replace("rvz-data/keys/", f"{d.root}/data/keys/")
                for language, body in blocks(CLIENT_DOC) if language == "python"]
    assert len(examples) == 2
    for i, example in enumerate(examples):
        (d.root / f"example{i}.py").write_text(example)
        result = subprocess.run([sys.executable, f"example{i}.py"], capture_output=True, text=True, timeout=60,
                                cwd=d.root)
        assert result.returncode == 0, result.stderr
    assert "setosa gbm champion" in (result := subprocess.run(
        [sys.executable, "example0.py"], capture_output=True, text=True, timeout=60, cwd=d.root)).stdout or \
        "setosa logreg champion" in result.stdout  # the first run promoted logreg, then reset the roles
    assert result.stdout.strip().endswith("SERVING")


README = TESTS_DIR.parent / "README.md"


def test_the_readme_tour_runs_as_written(deployment: Make) -> None:
    d = demo(deployment)
    config = d.root / "cli.toml"
    config.write_text(d.config_path.read_text().replace('listen = "127.0.0.1:0"', f'listen = "{d.address}"'))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "RVZ_CONFIG": str(config), "PATH": os.pathsep.join([bin_dir, os.environ["PATH"]])}
    env.pop("PYTHONPATH", None)
    tour = README.read_text().split("## A first tour", 1)[1]
    (body,) = [b for language, b in BLOCK.findall(tour)[:1] if language == "sh"]
    lines = [line.split("  #")[0].strip() for line in body.splitlines() if line.strip()]
    assert len(lines) >= 8
    for line in lines:
        if line.startswith("rvz feedback import"):  # the truths of what was answered so far, as the tour says
            answered = [r.request_id for r in d.records("requests")]
            (d.root / "truths.csv").write_text("request_id,truth\n" + "".join(f"{i},setosa\n" for i in answered))
        line = line.replace("mymodels:New", "rvz.demo:Challenger").replace("--duration 10", "--duration 2")
        run(line, d.root, env)
    assert (d.root / "report.html").stat().st_size > 10_000
