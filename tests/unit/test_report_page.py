"""The HTML page of `rvz report`, parsed as a browser would: real tables, the verdicts, the plots, the
notes for plots that cannot say anything, and nothing fetched from elsewhere."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from report_logs import Dataset, Logs, build_dataset
from rvz.cli.report import report_command
from rvz.log.writer import LogWriter

pytestmark = pytest.mark.timeout(90)


class Page(HTMLParser):
    """The tables (header cells and rows of cells), figures with an inline SVG, and every tag's attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[dict[str, list[list[str]] | list[str] | str]] = []
        self.figures: list[str] = []  # each figure's caption
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._cell: list[str] | None = None
        self._heading = ""
        self._in_figure = self._figure_svg = False
        self._caption: list[str] | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append({"heading": self._heading, "headers": [], "rows": []})
        elif tag == "tr" and self.tables:
            self._row: list[str] = []
        elif tag in ("th", "td"):
            self._cell = []
        elif tag == "figure":
            self._in_figure, self._figure_svg = True, False
        elif tag == "svg" and self._in_figure:
            self._figure_svg = True
        elif tag == "figcaption":
            self._caption = []
        elif tag in ("h2", "h3"):
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell).strip()
            table = self.tables[-1]
            (table["headers"] if tag == "th" else self._row).append(text)  # type: ignore[union-attr]
            self._cell = None
        elif tag == "tr" and self.tables and self._row:
            self.tables[-1]["rows"].append(self._row)  # type: ignore[union-attr]
        elif tag == "figcaption" and self._caption is not None:
            if self._figure_svg:
                self.figures.append("".join(self._caption))
            self._caption = None
        elif tag in ("h2", "h3"):
            self._heading = "".join(self._text).strip()

    def handle_data(self, data: str) -> None:
        for sink in (self._cell, self._caption, self._text):
            if sink is not None:
                sink.append(data)

    def table(self, heading: str) -> dict[str, list[list[str]] | list[str] | str]:
        return next(t for t in self.tables if t["heading"] == heading)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_dataset(tmp_path_factory.mktemp("page") / "data")


def render(data_dir: Path, page: Path, *args: str) -> str:
    result = CliRunner().invoke(report_command, ["--data-dir", str(data_dir), "--html", str(page), *args])
    assert result.exit_code == 0, result.output
    return page.read_text()


def test_the_page_has_real_tables_verdicts_and_plots(dataset: Dataset, tmp_path: Path) -> None:
    text = render(dataset.root, tmp_path / "report.html")
    page = Page(text)
    quality = page.table("Quality against the truth (100 requests with a truth)")
    assert quality["headers"] == ["Model", "n", "Accuracy (95% CI)", "Macro F1 (95% CI)", "Log-loss (95% CI)",
                                  "ROC AUC (95% CI)", "vs champion"]
    rows = {row[0]: row for row in quality["rows"]}  # type: ignore[union-attr]
    assert rows["logreg:1"][2].startswith("100.0% (") and rows["logreg:1"][-1] == "better"
    assert rows["gbm:3"][2] == "88.9% (80.7% to 93.9%)" and rows["gbm:3"][-1] == "champion"
    numbers = page.table("Quality against the truth (40 requests with a truth)")
    assert numbers["headers"][:5] == ["Model", "n", "MAE (95% CI)", "RMSE (95% CI)", "R² (95% CI)"]
    models = [t for t in page.tables if t["heading"] == "Models"]
    assert len(models) == 2 and models[1]["headers"][:3] == ["Model", "Role (scores)", "Requests"]
    per_class = [t for t in page.tables if t["headers"][:2] == ["Model", "Class"]]
    assert per_class and len(per_class[0]["rows"]) == 4 * 3  # 4 models, 3 classes
    assert "logreg:1 beats the champion gbm:3 by 11.1 points of accuracy" in text
    for caption in ("Confusion matrices against the truth", "Each model's prediction against the truth",
                    "How far each model's predictions are from the truth", "Against the truth, per time bucket",
                    "Share of each model's scores that reached the rendezvous", "Agreement with the champion's",
                    "Quantiles 1% to 99%", "How often each model gives each label"):
        assert any(f.startswith(caption) for f in page.figures), caption
    assert not [a for tag, a in page.tags if tag in ("script", "link", "img", "iframe") or
                str(a.get("src", "")).startswith("http") or str(a.get("href", "")).startswith("http")]


def test_a_constant_canary_gets_a_note_not_a_flat_q_q_plot(tmp_path: Path) -> None:
    root = tmp_path / "data"
    with (LogWriter(root / "requests", "rvz.v1.RequestEnvelope", fsync=False) as requests,
          LogWriter(root / "scores", "rvz.v1.ScoreRecord", fsync=False) as scores,
          LogWriter(root / "results", "rvz.v1.ResultEnvelope", fsync=False) as results):
        logs = Logs(requests, scores, results)
        for i in range(20):
            at = 1_760_000_000_000_000_000 + i * 1_000_000_000
            rid = logs.request("flat", i, at)
            logs.score(rid, "flat", ("m", "1", "champion"), float(i), at, 3)
            logs.score(rid, "flat", ("c", "1", "canary"), 0.5, at, 3)
            logs.result(rid, "flat", at, ("m", "1", "champion"), float(i))
    page = Page(render(root, tmp_path / "flat.html"))
    assert not any(f.startswith("Quantiles 1% to 99%") for f in page.figures)
    assert "every score of the canary c:1 is 0.5, so a Q-Q plot against it cannot show anything" in \
        (tmp_path / "flat.html").read_text()
