"""The HTML page of `rvz report`: the verdicts, HTML tables of every figure, and the plots (inline SVG).

The page fetches nothing (no script, stylesheet, font or image from elsewhere), so it can be mailed,
archived and opened years later. Its tables hold the same cells as the terminal's (``rvz.report.table``);
the plots are ``rvz.report.plots``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from string import Template

from matplotlib import rc_context

from rvz.compare.quality import LabelQuality
from rvz.config import Window
from rvz.report.plots import STYLE, figures
from rvz.report.stats import UseCaseReport
from rvz.report.table import (
    DISTRIBUTION_HEADERS,
    MODEL_HEADERS,
    caption,
    comparison_sentences,
    distribution_rows,
    distribution_title,
    estimate_text,
    model_name,
    model_rows,
    quality_rows,
    title,
)

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rvz report</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2330; background: #fff; }
main { max-width: 1360px; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { margin: 0 0 0.25rem; font-size: 1.6rem; }
h2 { margin: 2.2rem 0 0.4rem; font-size: 1.3rem; border-bottom: 2px solid #d6dbe4; padding-bottom: 0.2rem; }
h3 { margin: 1.4rem 0 0.4rem; font-size: 1.05rem; }
.meta, .summary { color: #4a5263; margin: 0.2rem 0; }
.verdicts { background: #f3f6fb; border-left: 4px solid #3b6fd4; padding: 0.6rem 1rem; margin: 0.8rem 0; }
.verdicts li { margin: 0.25rem 0; }
.better { color: #17703a; } .worse { color: #b3261e; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.3rem 0 0.6rem; }
caption { caption-side: bottom; text-align: left; color: #4a5263; font-size: 0.8rem; padding-top: 0.3rem; }
th, td { border-bottom: 1px solid #e3e7ee; padding: 0.3rem 0.55rem; text-align: right; vertical-align: top; }
th { background: #f3f5f9; font-weight: 600; }
td { white-space: nowrap; }
th:first-child, td:first-child, td.text, th.text { text-align: left; }
td.text { white-space: normal; min-width: 8rem; }
td:first-child { font-weight: 500; }
tbody tr:hover { background: #fafbfd; }
details { margin: 0.3rem 0 0.8rem; } summary { cursor: pointer; color: #3b6fd4; }
.notes li { margin: 0.2rem 0; color: #4a5263; }
.figures { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 1rem; }
@media (max-width: 900px) { .figures { grid-template-columns: minmax(0, 1fr); } }
figure { margin: 0; border: 1px solid #e3e7ee; border-radius: 6px; padding: 0.6rem; background: #fff; }
figure.wide { grid-column: 1 / -1; }
figure svg { width: 100%; height: auto; }
figcaption { font-size: 0.8rem; color: #4a5263; margin-top: 0.3rem; }
.definitions { font-size: 0.85rem; color: #4a5263; max-width: 60rem; } .definitions li { margin: 0.3rem 0; }
</style>
</head>
<body>
<main>
<h1>rvz report</h1>
<p class="meta">$header. Generated $generated.</p>
$sections
<h2>How the figures are computed</h2>
<ul class="definitions">$definitions</ul>
</main>
</body>
</html>
""")


def render_page(reports: list[UseCaseReport], schedule: tuple[Window, ...], header: str, definitions: str) -> str:
    with rc_context(STYLE):
        sections = "\n".join(_section(r, schedule) for r in reports) or "<p>No requests, scores or results.</p>"
    return _PAGE.substitute(
        header=html.escape(header), sections=sections,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        definitions="".join(f"<li>{_e(item)}</li>" for item in _items(definitions)),
    )


def _items(text: str) -> list[str]:
    """The "- " items of a text wrapped for the terminal, each on one line."""
    return [" ".join(item.split()) for item in text.removeprefix("- ").split("\n- ")]


def _section(report: UseCaseReport, schedule: tuple[Window, ...]) -> str:
    drawn = figures(report, schedule)
    parts = [f"<section>\n<h2>Use case {_e(report.use_case)}</h2>", f'<p class="summary">{_e(title(report))}</p>',
             _verdicts(report), _quality(report),
             _table(MODEL_HEADERS, model_rows(report), "Models", caption(report), text_columns=(1, 8, 10)),
             _table(DISTRIBUTION_HEADERS, distribution_rows(report), _cap(distribution_title(report)))]
    notes = [*report.notes, *drawn.notes]
    parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    figure_html = [_figure(svg, text, wide=i == 0 and "Confusion" in text) for i, (svg, text) in
                   enumerate(drawn.drawn)]
    parts.append('<div class="figures">\n' + "\n".join(figure_html) + "\n</div>\n</section>")
    return "\n".join(part for part in parts if part)


def _verdicts(report: UseCaseReport) -> str:
    sentences = comparison_sentences(report)
    if not sentences:
        return ""
    items = []
    for stats in report.models:
        versus = stats.report.vs_champion
        if versus is not None:
            css = {"better": "better", "worse": "worse"}.get(versus.verdict, "")
            items.append(f'<li class="{css}">{_e(versus.sentence())}</li>')
    return (f'<div class="verdicts"><strong>Which model is better, against the truth of {report.truths:,} '
            f"requests:</strong><ul>{''.join(items)}</ul></div>")


def _quality(report: UseCaseReport) -> str:
    headers, rows = quality_rows(report)
    if not rows:
        return ""
    table = _table(headers, rows, f"Quality against the truth ({report.truths:,} requests with a truth)",
                   "Intervals are 95%. vs champion: the paired test on the requests both scored (see above).")
    return table + _classes(report)


def _classes(report: UseCaseReport) -> str:
    labelled = [s.report for s in report.models if isinstance(s.report.quality, LabelQuality)]
    if not labelled:
        return ""
    rows = []
    for m in labelled:
        assert isinstance(m.quality, LabelQuality)
        for c in m.quality.classes:
            rows.append([model_name(m), c.label, f"{c.support:,}", estimate_text(c.precision),
                         estimate_text(c.recall), estimate_text(c.f1)])
    table = _table(("Model", "Class", "Truths", "Precision (95% CI)", "Recall (95% CI)", "F1 (95% CI)"), rows, "",
                   "Support: requests whose truth is the class. Precision and recall: Wilson intervals; F1: "
                   "bootstrap.", text_columns=(1,))
    return f"<details><summary>Per-class precision, recall and F1</summary>{table}</details>"


def _table(headers: Sequence[str], rows: list[list[str]], heading: str, note: str = "",
           text_columns: Sequence[int] = ()) -> str:
    head = "".join(f'<th{_text_class(i, text_columns)} scope="col">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(f"<td{_text_class(i, text_columns)}>{_e(cell)}</td>"
                                      for i, cell in enumerate(row)) + "</tr>" for row in rows)
    caption_html = f"<caption>{_e(note)}</caption>" if note else ""
    title_html = f"<h3>{_e(heading)}</h3>" if heading else ""
    return (f'{title_html}<div class="scroll"><table>{caption_html}<thead><tr>{head}</tr></thead>'
            f"<tbody>\n{body}\n</tbody></table></div>")


def _text_class(index: int, text_columns: Sequence[int]) -> str:
    return ' class="text"' if index in text_columns else ""


def _figure(svg: str, text: str, wide: bool) -> str:
    css = ' class="wide"' if wide else ""
    return f"<figure{css}>\n{svg}\n<figcaption>{_e(text)}</figcaption>\n</figure>"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _e(text: str) -> str:
    return html.escape(text, quote=False)
