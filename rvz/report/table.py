"""The tables of `rvz report`, built with rich: printed to the terminal and exported into the HTML page."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table

from rvz.compare.quality import Estimate, LabelQuality, NumberQuality
from rvz.report.stats import QUANTILES, Agreement, Distribution, ModelReport, Percentiles, UseCaseReport

NA = "—"
LABELS_SHOWN = 4  # most frequent labels shown in the distribution table; --json has them all
MODEL_HEADERS = ("Model", "Role (scores)", "Requests", "Scores", "Errors", "After answer", "Latency ms p50/p95/p99",
                 "Compute ms p50/p95/p99", "On time (window)", "Chosen", "Agreement")
LABEL_HEADERS = ("Model", "n", "Accuracy (95% CI)", "Macro F1 (95% CI)", "Log-loss (95% CI)", "ROC AUC (95% CI)",
                 "vs champion")
NUMBER_HEADERS = ("Model", "n", "MAE (95% CI)", "RMSE (95% CI)", "R² (95% CI)", "vs champion")


def use_case_tables(report: UseCaseReport) -> list[Table]:
    tables = [models_table(report)]
    if report.truths:
        tables.append(quality_table(report))
    return [*tables, distribution_table(report)]


def model_rows(report: UseCaseReport) -> list[list[str]]:
    """The cells of the models table, one row per model (the HTML page shows the same)."""
    rows = []
    for stats in report.models:
        m = stats.report
        rows.append([model_name(m), roles_text(m), str(m.requests_seen), str(m.scores), _errors(m), str(m.late),
                     _percentiles(m.latency_ms), _percentiles(m.compute_ms), on_time_text(m),
                     NA if m.times_chosen is None else str(m.times_chosen), agreement_text(m.agreement)])
    return rows


def models_table(report: UseCaseReport) -> Table:
    table = Table(title=title(report), caption=caption(report), title_justify="left", caption_justify="left")
    for header in MODEL_HEADERS:
        table.add_column(header, justify="left" if header in ("Model", "Role (scores)") else "right")
    for row in model_rows(report):
        table.add_row(*row)
    return table


def quality_rows(report: UseCaseReport) -> tuple[tuple[str, ...], list[list[str]]]:
    """The headers and cells of the quality table: each model against the truth, then the champion."""
    judged = [s.report for s in report.models if s.report.quality is not None]
    labels = any(isinstance(m.quality, LabelQuality) for m in judged)
    rows = []
    for m in judged:
        q = m.quality
        versus = m.vs_champion.verdict if m.vs_champion else ("champion" if report.champion ==
                                                                 f"{m.name}:{m.version}" and not m.replayed else NA)
        if isinstance(q, LabelQuality):
            rows.append([model_name(m), f"{q.n:,}", estimate_text(q.accuracy, percent=True),
                         estimate_text(q.macro_f1), estimate_text(q.log_loss), estimate_text(q.roc_auc), versus])
        elif isinstance(q, NumberQuality):
            rows.append([model_name(m), f"{q.n:,}", estimate_text(q.mae), estimate_text(q.rmse),
                         estimate_text(q.r2), versus])
    return (LABEL_HEADERS if labels else NUMBER_HEADERS), rows


def quality_table(report: UseCaseReport) -> Table:
    table = Table(title=f"{report.use_case}: quality against the truth ({report.truths:,} requests with a truth)",
                  caption=_comparisons(report), title_justify="left", caption_justify="left")
    headers, rows = quality_rows(report)
    for header in headers:
        table.add_column(header, justify="left" if header in ("Model", "vs champion") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def comparison_sentences(report: UseCaseReport) -> list[str]:
    return [s.report.vs_champion.sentence() for s in report.models if s.report.vs_champion is not None]


def _comparisons(report: UseCaseReport) -> str:
    return "\n".join(comparison_sentences(report))


def estimate_text(e: Estimate | None, percent: bool = False) -> str:
    if e is None:
        return NA
    form = "{:.1f}%" if percent else "{:.3g}"
    scale = 100 if percent else 1
    value = form.format(scale * e.value)
    if e.low is None or e.high is None:
        return value
    return f"{value} ({form.format(scale * e.low)} to {form.format(scale * e.high)})"


def roles_text(m: ModelReport) -> str:
    if len(m.role_scores) <= 1:
        return m.role
    return ", ".join(f"{role} {count:,}" for role, count in m.role_scores.items())


DISTRIBUTION_HEADERS = ("Model", *(f"q{q}" for q in QUANTILES), "Labels", "Divergence")


def distribution_rows(report: UseCaseReport) -> list[list[str]]:
    rows = []
    for stats in report.models:
        d = stats.report.distribution
        quantiles = [NA] * len(QUANTILES) if d.quantiles is None else [f"{v:.4g}" for v in d.quantiles.values()]
        rows.append([model_name(stats.report), *quantiles, _labels(d), divergence_text(d)])
    return rows


def distribution_title(report: UseCaseReport) -> str:
    reference = f"canary {report.canary}" if report.canary else "no canary"
    return f"{report.use_case}: score distribution vs {reference}"


def distribution_table(report: UseCaseReport) -> Table:
    table = Table(title=distribution_title(report), title_justify="left")
    for header in DISTRIBUTION_HEADERS:
        table.add_column(header, justify="left" if header in ("Model", "Labels") else "right")
    for row in distribution_rows(report):
        table.add_row(*row)
    return table


def model_name(m: ModelReport) -> str:
    return f"{m.name}:{m.version}" + (" (replayed)" if m.replayed else "")


def agreement_text(a: Agreement | None) -> str:
    if a is None:
        return NA
    vs = "answered" if a.reference == "answered" else "champ"
    if a.kind == "label":
        return f"{a.same_label_pct:.1f}% same vs {vs} (n={a.pairs})"
    r = NA if a.pearson_r is None else f"{a.pearson_r:.3f}"
    return f"MAD {a.mean_abs_diff:.4g}, r {r} vs {vs} (n={a.pairs})"


def divergence_text(d: Distribution) -> str:
    if d.divergence is None:
        return NA
    name = "KS" if d.divergence_metric == "ks" else "JS"
    return f"{name} {d.divergence:.3f}"


def format_ns(ns: int | None) -> str:
    if ns is None:
        return NA
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def title(report: UseCaseReport) -> str:
    o = report.outcomes
    return (f"use case {report.use_case}: {report.requests} requests "
            f"({format_ns(report.first_ns)} to {format_ns(report.last_ns)}); results: "
            f"{o.get('answered', 0)} answered by a model, {o.get('default', 0)} default, "
            f"{o.get('timeout', 0)} timed out, {o.get('failed', 0)} failed")


def caption(report: UseCaseReport) -> str:
    text = ("Latency: score arrival at the rendezvous minus request arrival (replayed: compute time). "
            "On time: arrived within the first window accepting the model's role at the time, in the policy "
            "that decided the request. After answer: arrived once the request was answered (or timed out): "
            "logged for comparison only. Agreement: with the champion's score of the same request (replayed: "
            "with what was answered).")
    return text if report.models else ""


def _errors(m: ModelReport) -> str:
    if m.error_rate is None:
        return str(m.errors)
    return f"{m.errors} ({100 * m.error_rate:.1f}%)"


def _percentiles(p: Percentiles | None) -> str:
    return NA if p is None else f"{p.p50:.1f} / {p.p95:.1f} / {p.p99:.1f}"


def on_time_text(m: ModelReport) -> str:
    if m.on_time_pct is None:
        return NA
    if len(m.on_time_windows) <= 1:
        return f"{m.on_time_pct:.1f}% <{m.window_ms:g} ms"
    parts = ", ".join(f"{w.on_time_pct:.0f}% of {w.scores:,} <{w.window_ms:g}" for w in m.on_time_windows)
    return f"{m.on_time_pct:.1f}% ({parts} ms)"


def _labels(d: Distribution) -> str:
    if not d.label_pct:
        return NA
    top = sorted(d.label_pct.items(), key=lambda item: -item[1])[:LABELS_SHOWN]
    more = len(d.label_pct) - len(top)
    return ", ".join(f"{label} {pct:.0f}%" for label, pct in top) + (f", +{more}" if more > 0 else "")
