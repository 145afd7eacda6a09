"""The plots of `rvz report --html`, drawn with matplotlib's Figure API into inline SVG.

No pyplot (no GUI backend, no global state). Plots are drawn from quantiles, buckets and samples,
never from every record, so the page stays small for logs of millions of records. A plot that could
not say anything is not drawn: ``Figures.notes`` says why instead.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib import dates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import stats

from rvz.compare.quality import LabelQuality
from rvz.config import Window
from rvz.report.stats import ModelStats, UseCaseReport
from rvz.report.table import model_name

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

CDF_POINTS = 400
QQ_POINTS = 99
MIN_BUCKETS, MAX_BUCKETS = 8, 40
PAIRS_PER_BUCKET = 15
MAX_LABELS = 12
MAX_CONFUSIONS = 4
FIG_SIZE = (6.4, 4.2)
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # text stays text (searchable, selectable, small), drawn in the viewer's font
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass
class Figures:
    """The SVG figures of one use case, each with its caption, and notes for the plots not drawn."""

    drawn: list[tuple[str, str]] = field(default_factory=list)  # (svg, caption)
    notes: list[str] = field(default_factory=list)

    def add(self, fig: Figure, caption: str) -> None:
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        svg = buffer.getvalue()
        self.drawn.append((svg[svg.index("<svg"):], caption))  # no XML prolog or doctype inside HTML


def figures(report: UseCaseReport, schedule: tuple[Window, ...]) -> Figures:
    out = Figures()
    _versus_champion(report, out)
    _quality_over_time(report, out)
    _latency_cdf(report, schedule, out)
    _agreement_over_time(report, out)
    _qq(report, out)
    _label_bars(report, out)
    return out


# --- shared ---------------------------------------------------------------------------------------


def _axes(title: str, size: tuple[float, float] = FIG_SIZE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    ax.set_title(title, fontsize="medium", loc="left")
    ax.grid(alpha=0.3)
    return fig, ax


def _legend(ax: Axes) -> None:
    # Below the axes: inside, it hides lines or bars whatever corner it picks; beside, long names squeeze the plot.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, frameon=False)


def _color(report: UseCaseReport, m: ModelStats) -> str:
    return f"C{report.models.index(m) % 10}"  # one colour per model across all plots of a use case


def _time_axis(ax: Axes, report: UseCaseReport) -> None:
    """Readable UTC date ticks, and a dashed line at each policy change and promotion."""
    locator = dates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    # Every tick a whole time (not "10" for ten seconds past the minute); the date goes in the offset.
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
        locator, formats=["%Y", "%b %d", "%b %d", "%H:%M", "%H:%M:%S", "%H:%M:%S.%f"],
        zero_formats=["", "%Y", "%b %d", "%b %d %H:%M", "%H:%M", "%H:%M:%S"]))
    ax.set_xlabel("request time (UTC)")
    for i, marker in enumerate(report.markers):
        at = np.datetime64(marker.at_ns, "ns")
        color = "tab:red" if marker.kind == "promotion" else "tab:purple"
        ax.axvline(at, color=color, linestyle="--", linewidth=1)  # type: ignore[arg-type]
        ax.annotate(marker.text, (at, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize="x-small",
                    va="top", ha="right", color=color, xytext=(-2, -2 - 12 * (i % 2)),
                    textcoords="offset points")


def _buckets(report: UseCaseReport, pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Time bucket edges over the use case's requests, and their centres as datetimes."""
    assert report.first_ns is not None and report.last_ns is not None
    count = int(np.clip(pairs // PAIRS_PER_BUCKET, MIN_BUCKETS, MAX_BUCKETS))
    # At least 1 ms per bucket: float64 resolves ~256 ns at today's epoch nanoseconds, and a use case of
    # one request (or one instant) would otherwise get buckets scipy cannot tell apart.
    span = max(report.last_ns + 1 - report.first_ns, count * 1_000_000)
    edges = np.linspace(report.first_ns, report.first_ns + span, count + 1)
    return edges, ((edges[:-1] + edges[1:]) / 2).astype("datetime64[ns]")


def _binned(at_ns: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.asarray(stats.binned_statistic(at_ns, values, "mean", bins=edges).statistic)


# --- against the truth ----------------------------------------------------------------------------


def _judged(report: UseCaseReport) -> list[ModelStats]:
    """Models with a quality figure, the champion first."""
    judged = [m for m in report.models if m.report.quality is not None]
    return sorted(judged, key=lambda m: model_name(m.report) != report.champion)


def _versus_champion(report: UseCaseReport, out: Figures) -> None:
    judged = _judged(report)
    if not judged:
        return
    if isinstance(judged[0].report.quality, LabelQuality):
        _confusions(report, judged[:MAX_CONFUSIONS], out)
    else:
        _scatter(report, judged, out)
        _residuals(report, judged, out)


def _confusions(report: UseCaseReport, judged: list[ModelStats], out: Figures) -> None:
    labels = sorted({label for m in judged for label in _quality(m).labels})
    if len(labels) > MAX_LABELS:
        out.notes.append(f"{report.use_case}: {len(labels)} labels are too many for readable confusion matrices; "
                         "the quality table has each class's precision, recall and F1.")
        return
    fig = Figure(figsize=(3.2 * len(judged) + 0.8, 3.6), layout="constrained")
    axes = fig.subplots(1, len(judged), squeeze=False)[0]
    for ax, m in zip(axes, judged, strict=True):
        q = _quality(m)
        matrix = _aligned(q, labels)
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, f"{count:,}", ha="center", va="center", fontsize="small",
                    color="white" if shares[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize="small")
        ax.set_yticks(range(len(labels)), labels if ax is axes[0] else [""] * len(labels), fontsize="small")
        role = "champion" if model_name(m.report) == report.champion else "vs champion"
        ax.set_title(f"{model_name(m.report)} ({role})\naccuracy {100 * q.accuracy.value:.1f}%, n={q.n:,}",
                     fontsize="small")
        ax.set_xlabel("model said")
    axes[0].set_ylabel("truth")
    out.add(fig, "Confusion matrices against the truth, champion first: rows are the true labels, columns what "
                 "the model said; counts, shaded by the share of each true label.")


def _quality(m: ModelStats) -> LabelQuality:
    quality = m.report.quality
    assert isinstance(quality, LabelQuality)
    return quality


def _aligned(q: LabelQuality, labels: Sequence[str]) -> np.ndarray:
    matrix = np.zeros((len(labels), len(labels)), np.int64)
    index = [labels.index(label) for label in q.labels]
    for i, row in enumerate(q.confusion):
        for j, count in enumerate(row):
            matrix[index[i], index[j]] = count
    return matrix


def _scatter(report: UseCaseReport, judged: list[ModelStats], out: Figures) -> None:
    fig, ax = _axes(f"{report.use_case}: prediction against the truth")
    ends: list[float] = []
    for m in judged:
        j = m.judgement
        ax.scatter(j.truth, j.predicted, s=6, alpha=0.5, color=_color(report, m), label=model_name(m.report))
        ends += [float(j.truth.min()), float(j.truth.max())]
    ax.plot([min(ends), max(ends)], [min(ends), max(ends)], color="grey", linestyle="--", linewidth=1,
            label="prediction = truth")
    ax.set_xlabel("truth")
    ax.set_ylabel("prediction")
    _legend(ax)
    out.add(fig, "Each model's prediction against the truth of the same request (a sample of at most 2,000 "
                 "per model): on the dashed line, exactly right.")


def _residuals(report: UseCaseReport, judged: list[ModelStats], out: Figures) -> None:
    fig, ax = _axes(f"{report.use_case}: errors (prediction - truth)")
    residuals = [m.judgement.predicted - m.judgement.truth for m in judged]
    edges: list[float] = np.histogram_bin_edges(np.concatenate(residuals), bins=30).tolist()
    if edges[0] == edges[-1]:
        out.notes.append(f"{report.use_case}: every error is {edges[0]:g}; no distribution of errors to draw.")
        return
    for m, r in zip(judged, residuals, strict=True):
        ax.hist(r, bins=edges, histtype="step", linewidth=1.5, color=_color(report, m), label=model_name(m.report))
    ax.axvline(0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("prediction - truth")
    ax.set_ylabel("requests")
    _legend(ax)
    out.add(fig, "How far each model's predictions are from the truth: narrower and centred on 0 is better.")


def _quality_over_time(report: UseCaseReport, out: Figures) -> None:
    judged = [m for m in _judged(report) if m.judgement.at_ns.size]
    if not judged or report.first_ns is None:
        return
    labels = isinstance(judged[0].report.quality, LabelQuality)
    edges, centres = _buckets(report, max(m.judgement.at_ns.size for m in judged))
    fig, ax = _axes(f"{report.use_case}: {'accuracy' if labels else 'mean absolute error'} over time")
    for m in judged:
        ax.plot(centres, _binned(m.judgement.at_ns, m.judgement.outcome, edges), marker="o", markersize=3,
                color=_color(report, m), label=model_name(m.report))
    ax.set_ylabel("% right" if labels else "mean |prediction - truth|")
    _time_axis(ax, report)
    _legend(ax)
    out.add(fig, "Against the truth, per time bucket of the requests; dashed lines mark policy changes and "
                 "promotions.")


# --- latency and agreement ------------------------------------------------------------------------


def _latency_cdf(report: UseCaseReport, schedule: tuple[Window, ...], out: Figures) -> None:
    drawn = [m for m in report.models if m.series.latency_ms.size]
    if not drawn:
        return
    fig, ax = _axes(f"{report.use_case}: latency CDF")
    p = np.linspace(0.0, 1.0, CDF_POINTS)
    for m in drawn:
        replayed = m.report.replayed
        ax.plot(np.quantile(m.series.latency_ms, p), 100 * p, color=_color(report, m), linestyle="--" if replayed
                else "-", label=model_name(m.report) + (", compute time" if replayed else ""))
    for i, window in enumerate(schedule):
        ax.axvline(window.until_ms, color="grey", linestyle=":", linewidth=1,
                   label="window ends (config's policy)" if i == 0 else None)
    lowest = min(float(m.series.latency_ms[0]) for m in drawn)
    highest = max(float(m.series.latency_ms[-1]) for m in drawn)
    if lowest > 0 and highest / lowest > 20:
        ax.set_xscale("log")
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("% of scores at or below")
    _legend(ax)
    out.add(fig, "Share of each model's scores that reached the rendezvous within a given time after the "
                 "request (replayed models: compute time). Dotted lines: the ends of the config's schedule windows.")


def _agreement_over_time(report: UseCaseReport, out: Figures) -> None:
    if report.first_ns is None:
        return
    for kind, ylabel in (("label", "% same label"), ("number", "mean |difference|")):
        drawn = [m for m in report.models if m.report.agreement and m.report.agreement.kind == kind]
        if not drawn:
            continue
        edges, centres = _buckets(report, max(m.series.agreement.size for m in drawn))
        fig, ax = _axes(f"{report.use_case}: agreement over time")
        for m in drawn:
            reference = "what was answered" if m.report.replayed else "champion"
            ax.plot(centres, _binned(m.series.agreement_ns, m.series.agreement, edges), marker="o", markersize=3,
                    color=_color(report, m), label=f"{model_name(m.report)} vs {reference}")
        ax.set_ylabel(ylabel)
        _time_axis(ax, report)
        _legend(ax)
        out.add(fig, f"Agreement with the champion's score of the same request ({ylabel}, per time bucket); "
                     "replayed models against what the caller was answered. Dashed lines: policy changes and "
                     "promotions.")


# --- drift against the canary ---------------------------------------------------------------------


def _qq(report: UseCaseReport, out: Figures) -> None:
    canary = next((m for m in report.models if not m.report.replayed and model_name(m.report) == report.canary),
                  None)
    if canary is None or not canary.series.numbers.size:
        return
    drawn = [m for m in report.models if m is not canary and m.series.numbers.size]
    if not drawn:
        return
    if not np.ptp(canary.series.numbers):
        out.notes.append(f"{report.use_case}: every score of the canary {report.canary} is "
                         f"{canary.series.numbers[0]:g}, so a Q-Q plot against it cannot show anything; the "
                         "label frequencies and the divergence column compare the models with it.")
        return
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
    out.add(fig, "Quantiles 1% to 99% of each model's scores against the canary's: on the diagonal, the "
                 "same distribution. For classifiers the score is the top class probability.")


def _label_bars(report: UseCaseReport, out: Figures) -> None:
    drawn = [m for m in report.models if m.report.distribution.label_pct]
    if not drawn:
        return
    totals: dict[str, float] = {}
    for m in drawn:
        for label, share in (m.report.distribution.label_pct or {}).items():
            totals[label] = totals.get(label, 0.0) + share
    labels = sorted(totals, key=lambda label: -totals[label])[:MAX_LABELS]
    fig, ax = _axes(f"{report.use_case}: label frequencies")
    height = 0.8 / len(drawn)
    for i, m in enumerate(drawn):
        pct = m.report.distribution.label_pct or {}
        canary = model_name(m.report) == report.canary and not m.report.replayed
        ax.barh(np.arange(len(labels)) + i * height, [pct.get(label, 0.0) for label in labels], height=height,
                color=_color(report, m), hatch="//" if canary else None,
                label=model_name(m.report) + (" (canary)" if canary else ""))
    ax.set_yticks(np.arange(len(labels)) + 0.4 - height / 2, labels)
    ax.invert_yaxis()
    ax.set_xlabel("% of the model's labels")
    _legend(ax)
    out.add(fig, "How often each model gives each label; the canary (hatched) is the reference for drift.")
