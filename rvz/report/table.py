"""The tables of `rvz report`, built with rich: printed to the terminal and exported into the HTML page."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.table import Table

from rvz.report.stats import QUANTILES, Agreement, Distribution, ModelReport, Percentiles, UseCaseReport

NA = "—"
LABELS_SHOWN = 4  # most frequent labels shown in the distribution table; --json has them all


def use_case_tables(report: UseCaseReport) -> list[Table]:
    return [models_table(report), distribution_table(report)]


def models_table(report: UseCaseReport) -> Table:
    table = Table(title=_title(report), caption=_caption(report), title_justify="left", caption_justify="left")
    for header in ("Model", "Role", "Requests", "Scores", "Errors", "Late"):
        table.add_column(header, justify="left" if header in ("Model", "Role") else "right")
    for header in ("Latency ms p50/p95/p99", "Compute ms p50/p95/p99", "On time", "Chosen", "Agreement"):
        table.add_column(header, justify="right")
    for stats in report.models:
        m = stats.report
        table.add_row(
            model_name(m), m.role, str(m.requests_seen), str(m.scores), _errors(m), str(m.late),
            _percentiles(m.latency_ms), _percentiles(m.compute_ms), _on_time(m),
            NA if m.times_chosen is None else str(m.times_chosen), agreement_text(m.agreement),
        )
    return table


def distribution_table(report: UseCaseReport) -> Table:
    reference = f"canary {report.canary}" if report.canary else "no canary"
    table = Table(title=f"{report.use_case}: score distribution vs {reference}", title_justify="left")
    table.add_column("Model")
    for q in QUANTILES:
        table.add_column(f"q{q}", justify="right")
    table.add_column("Labels")
    table.add_column("Divergence", justify="right")
    for stats in report.models:
        d = stats.report.distribution
        quantiles = [NA] * len(QUANTILES) if d.quantiles is None else [f"{v:.4g}" for v in d.quantiles.values()]
        table.add_row(model_name(stats.report), *quantiles, _labels(d), divergence_text(d))
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


def _title(report: UseCaseReport) -> str:
    o = report.outcomes
    return (f"use case {report.use_case}: {report.requests} requests "
            f"({format_ns(report.first_ns)} to {format_ns(report.last_ns)}); results: "
            f"{o.get('answered', 0)} answered by a model, {o.get('default', 0)} default, "
            f"{o.get('timeout', 0)} timed out, {o.get('failed', 0)} failed")


def _caption(report: UseCaseReport) -> str:
    text = ("Latency: score arrival at the rendezvous minus request arrival (replayed: compute time). "
            "On time: arrived within the model's schedule window. Agreement: with the champion's score of "
            "the same request (replayed: with what was answered).")
    return text if report.models else ""


def _errors(m: ModelReport) -> str:
    if m.error_rate is None:
        return str(m.errors)
    return f"{m.errors} ({100 * m.error_rate:.1f}%)"


def _percentiles(p: Percentiles | None) -> str:
    return NA if p is None else f"{p.p50:.1f} / {p.p95:.1f} / {p.p99:.1f}"


def _on_time(m: ModelReport) -> str:
    if m.on_time_pct is None:
        return NA
    return f"{m.on_time_pct:.1f}% <{m.window_ms:g} ms"


def _labels(d: Distribution) -> str:
    if not d.label_pct:
        return NA
    top = sorted(d.label_pct.items(), key=lambda item: -item[1])[:LABELS_SHOWN]
    more = len(d.label_pct) - len(top)
    return ", ".join(f"{label} {pct:.0f}%" for label, pct in top) + (f", +{more}" if more > 0 else "")
