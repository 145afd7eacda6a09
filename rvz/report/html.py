"""The HTML page of `rvz report`: the rich tables and matplotlib plots, inlined as SVG.

The page fetches nothing: the tables are rich's own HTML export with inline styles, and every plot is
an inline <svg> drawn by matplotlib's Figure API (no pyplot, so no GUI backend and no global state).
Plots are drawn from quantiles and buckets, never from every sample, so the page stays small for logs of
millions of records.
"""

from __future__ import annotations

import html
import io
from datetime import UTC, datetime
from string import Template
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from rich.console import Console
from scipy import stats

from rvz.config import Window
from rvz.report.stats import ModelStats, UseCaseReport
from rvz.report.table import model_name, use_case_tables

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

CDF_POINTS = 400
QQ_POINTS = 99
MAX_BUCKETS = 48
MAX_LABELS = 12
FIG_SIZE = (6.6, 4.4)
TABLE_WIDTH = 190
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text (searchable, selectable, small), drawn in the viewer's font
    "font.family": "sans-serif",
    "date.converter": "concise",  # short date ticks on the agreement-over-time axis
}

_PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>rvz report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #555; margin-top: 0; }
pre.table { font-size: 12px; line-height: 1.25; overflow-x: auto; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; border: 1px solid #ddd; padding: 0.5rem; }
figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.9rem; color: #444; max-width: 36rem; }
.definitions { white-space: pre-wrap; font-size: 0.85rem; color: #444; }
</style>
</head>
<body>
<h1>rvz report</h1>
<p class="meta">$header. Generated $generated.</p>
$sections
<h2>How the figures are computed</h2>
<p class="definitions">$definitions</p>
</body>
</html>
""")


def render_page(reports: list[UseCaseReport], schedule: tuple[Window, ...], header: str, definitions: str) -> str:
    with rc_context(STYLE):
        sections = "\n".join(_section(r, schedule) for r in reports) or "<p>No requests, scores or results.</p>"
    return _PAGE.substitute(
        header=html.escape(header), sections=sections,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        definitions=html.escape(definitions),
    )


def _section(report: UseCaseReport, schedule: tuple[Window, ...]) -> str:
    figures = [_latency_cdf(report, schedule), _qq(report), *_agreement_over_time(report), _label_bars(report)]
    drawn = "\n".join(f for f in figures if f)
    return (f"<section>\n<h2>Use case {html.escape(report.use_case)}</h2>\n{_tables(report)}\n"
            f'<div class="figures">\n{drawn}\n</div>\n</section>')


def _tables(report: UseCaseReport) -> str:
    console = Console(record=True, file=io.StringIO(), width=TABLE_WIDTH, force_terminal=True,
                      color_system="truecolor")
    for table in use_case_tables(report):
        console.print(table)
    return console.export_html(inline_styles=True, code_format='<pre class="table"><code>{code}</code></pre>')


def _figure(fig: Figure, caption: str) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML prolog and doctype, which are not allowed inside HTML
    return f"<figure>\n{svg}\n<figcaption>{html.escape(caption)}</figcaption>\n</figure>"


def _axes(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIG_SIZE, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    return fig, ax


def _legend(ax: Axes) -> None:
    # Below the axes: inside, it hides lines or bars whatever corner it picks; beside, long names squeeze the plot.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)


def _color(report: UseCaseReport, m: ModelStats) -> str:
    return f"C{report.models.index(m) % 10}"  # one colour per model across all plots of a use case


def _latency_cdf(report: UseCaseReport, schedule: tuple[Window, ...]) -> str | None:
    drawn = [m for m in report.models if m.series.latency_ms.size]
    if not drawn:
        return None
    fig, ax = _axes(f"{report.use_case}: latency CDF")
    p = np.linspace(0.0, 1.0, CDF_POINTS)
    for m in drawn:
        replayed = m.report.replayed
        ax.plot(np.quantile(m.series.latency_ms, p), 100 * p, color=_color(report, m), linestyle="--" if replayed
                else "-", label=model_name(m.report) + (", compute time" if replayed else ""))
    for i, window in enumerate(schedule):
        ax.axvline(window.until_ms, color="grey", linestyle=":", linewidth=1,
                   label="schedule window ends" if i == 0 else None)
    lowest = min(float(m.series.latency_ms[0]) for m in drawn)
    highest = max(float(m.series.latency_ms[-1]) for m in drawn)
    if lowest > 0 and highest / lowest > 20:
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("% of scores at or below")
    _legend(ax)
    return _figure(fig, "Share of each model's scores that reached the rendezvous within a given time after the "
                        "request (replayed models: compute time). Dotted lines: ends of the schedule windows.")


def _qq(report: UseCaseReport) -> str | None:
    canary = next((m for m in report.models if not m.report.replayed and
                   f"{m.report.name}:{m.report.version}" == report.canary), None)
    if canary is None or not canary.series.numbers.size:
        return None
    drawn = [m for m in report.models if m is not canary and m.series.numbers.size]
    if not drawn:
        return None
    fig, ax = _axes(f"{report.use_case}: score Q-Q vs canary {report.canary}")
    p = np.linspace(0.01, 0.99, QQ_POINTS)
    x = np.quantile(canary.series.numbers, p)
    ends = [float(x[0]), float(x[-1])]
    for m in drawn:
        y = np.quantile(m.series.numbers, p)
        ends += [float(y[0]), float(y[-1])]
        ax.plot(x, y, marker=".", markersize=4, linewidth=0.8, color=_color(report, m), label=model_name(m.report))
    ax.plot([min(ends), max(ends)], [min(ends), max(ends)], color="grey", linestyle="--", linewidth=1,
            label="same distribution")
    ax.set_xlabel(f"canary {report.canary} quantile")
    ax.set_ylabel("model quantile")
    _legend(ax)
    return _figure(fig, "Quantiles 1% to 99% of each model's scores against the canary's: on the diagonal, the "
                        "same distribution. For classifiers the score is the top class probability.")


def _agreement_over_time(report: UseCaseReport) -> list[str]:
    if report.first_ns is None or report.last_ns is None:
        return []
    figures = []
    for kind, ylabel in (("label", "% same label"), ("number", "mean |difference|")):
        drawn = [m for m in report.models if m.report.agreement and m.report.agreement.kind == kind]
        if not drawn:
            continue
        pairs = max(m.series.agreement.size for m in drawn)
        buckets = int(np.clip(np.sqrt(pairs), 1, MAX_BUCKETS))
        edges = np.linspace(report.first_ns, report.last_ns + 1, buckets + 1)
        centres = ((edges[:-1] + edges[1:]) / 2).astype("datetime64[ns]")
        fig, ax = _axes(f"{report.use_case}: agreement over time (by request time, UTC; {buckets} buckets)")
        for m in drawn:
            means = stats.binned_statistic(m.series.agreement_ns, m.series.agreement, "mean", bins=edges).statistic
            reference = "what was answered" if m.report.replayed else "champion"
            ax.plot(centres, means, marker="o", markersize=3, color=_color(report, m),
                    label=f"{model_name(m.report)} vs {reference}")
        ax.set_ylabel(ylabel)
        _legend(ax)
        figures.append(_figure(fig, f"Agreement with the champion's score of the same request ({ylabel}, per time "
                                    "bucket); replayed models against what the caller was answered."))
    return figures


def _label_bars(report: UseCaseReport) -> str | None:
    drawn = [m for m in report.models if m.report.distribution.label_pct]
    if not drawn:
        return None
    totals: dict[str, float] = {}
    for m in drawn:
        for label, share in (m.report.distribution.label_pct or {}).items():
            totals[label] = totals.get(label, 0.0) + share
    labels = sorted(totals, key=lambda label: -totals[label])[:MAX_LABELS]
    fig, ax = _axes(f"{report.use_case}: label frequencies")
    height = 0.8 / len(drawn)
    for i, m in enumerate(drawn):
        pct = m.report.distribution.label_pct or {}
        canary = f"{m.report.name}:{m.report.version}" == report.canary and not m.report.replayed
        ax.barh(np.arange(len(labels)) + i * height, [pct.get(label, 0.0) for label in labels], height=height,
                color=_color(report, m), hatch="//" if canary else None,
                label=model_name(m.report) + (" (canary)" if canary else ""))
    ax.set_yticks(np.arange(len(labels)) + 0.4 - height / 2, labels)
    ax.invert_yaxis()
    ax.set_xlabel("% of the model's labels")
    _legend(ax)
    return _figure(fig, "How often each model gives each label; the canary (hatched) is the reference.")
