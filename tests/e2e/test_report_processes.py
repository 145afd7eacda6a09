"""`rvz report` on real logs written with LogWriter: exact figures through --json, the tables, the page."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from report_logs import Dataset, build_dataset

pytestmark = pytest.mark.timeout(60)

@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.mktemp("report") / "data")






















def test_real_process_prints_the_tables(dataset: Dataset, tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    command = [sys.executable, "-c", "from rvz.cli.report import report_command; report_command()",
               "--data-dir", str(dataset.root), "--use-case", "iris", "--html", str(page)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stderr
    assert "use case iris" in result.stdout and "logreg:1" in result.stdout and "fraud" not in result.stdout
    assert f"wrote the HTML report to {page}" in result.stderr
    assert "<svg" in page.read_text()






