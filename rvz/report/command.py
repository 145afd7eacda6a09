"""`rvz report` (the click command is ``rvz.cli.report``): how every model of every use case did, read
from the request, scores and results logs.

``run_report`` reads the logs once (``rvz.report.data``), computes the figures (``rvz.report.stats``)
and prints one rich table per use case (``rvz.report.table``), JSON with ``as_json``, and a
self-contained HTML page with plots with ``html_path`` (``rvz.report.html``, which needs matplotlib:
the report extra). This module imports none of them (nor numpy, scipy, rich or matplotlib) until a
report runs, so registering the command does not slow down every other `rvz` command.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rvz.config import Config, Window

if TYPE_CHECKING:
    from rvz.compare.outputs import OutputSpec
    from rvz.report.data import Filter, LogData
    from rvz.report.stats import UseCaseReport

PIPE_WIDTH = 200  # tables are wide; when not on a terminal, do not squeeze them into 80 columns

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9,
            "w": 7 * 86400 * 10**9}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

DEFINITIONS = """\
- Latency: for live scores, arrival latency = when the rendezvous received
  the score minus when the frontend received the request; replayed scores
  were not timed against a live request, so theirs is compute time (finished
  - started). Percentiles are over successful scores whose request is known.
- On time: successful live scores that arrived before the end of the first
  schedule window that accepts the role the model had then, or its name, in
  the policy that decided the request (its version is in the result; the
  schedules of later versions in DATA_DIR/policies, version 1 from --config);
  n/a when no window does. Role (scores): how many scores it sent in each role.
- After answer: scores that arrived once their request was answered (by
  another model, or timed out): logged for comparison, never an answer.
- Agreement: live models are compared with the champion's score of the same
  request, replayed models with what the caller was answered at the time. A
  model whose outputs are mostly labels is compared by % same label, one
  whose outputs are mostly numbers by mean absolute difference (MAD) and
  Pearson r.
- Outputs: as [[use_cases]] in the config declares (output, kind,
  probabilities), or rvz report --output/--output-kind. Undeclared, a label is
  a string or bool output, or a dict's "label"; a number is a number output,
  or a dict's "score", "value" or "prediction" (first found), or else the
  largest of its "probabilities". Outputs that give neither are not compared,
  and the report names them.
- Quality: against the truths of `rvz feedback import` (the last truth of a
  request wins), over the requests the model scored that have one. Labels:
  accuracy and per-class precision and recall (Wilson 95% intervals), F1 and
  macro F1, log-loss and one-vs-rest ROC AUC where outputs carry
  probabilities (bootstrap 95% intervals). Numbers: MAE, RMSE and R²
  (bootstrap 95% intervals).
- vs champion: each model against the champion of the latest request, on
  the requests both scored that have a truth. Labels: McNemar's exact test on
  the requests one got right and the other wrong, and the accuracy gained
  (an exact interval from the same pairs). Numbers: the absolute error saved per request, by a
  paired bootstrap. "Beats" when p < 0.05 and the interval is above 0.
- Distribution: quantiles of the model's numbers; divergence from the
  canary's distribution is the two-sample Kolmogorov-Smirnov statistic (KS)
  for numbers and the Jensen-Shannon distance (JS, base 2: 0 = same label
  frequencies, 1 = disjoint) for labels.
"""


def parse_time(text: str, now_ns: int) -> int:
    """Unix ns of an ISO-8601 time (naive = local time) or of a duration before now ("30m", "1h30m", "2d")."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if parts and "".join(number + unit for number, unit in parts) == text:
        return now_ns - sum(round(float(number) * _UNIT_NS[unit]) for number, unit in parts)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO-8601 time (e.g. 2024-05-01T10:00:00Z) "
                         "nor a duration before now (e.g. 30m, 1h, 2d)") from None
    return (moment.astimezone() - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass(frozen=True)
class ReportOptions:
    data_dir: Path
    schedule: tuple[Window, ...]
    keep: Filter
    html_path: Path | None = None
    as_json: bool = False
    # How each use case's outputs are read (declared in the config, or given once on the command line).
    outputs: dict[str, OutputSpec] | None = None


def output_specs(config: Config, given: OutputSpec | None, use_case: str | None) -> dict[str, OutputSpec]:
    """The [[use_cases]] declarations of ``config``; ``given`` (rvz report --output) wins, for ``use_case``
    or, when None, for every use case (``"*"``)."""
    from rvz.compare.outputs import OutputSpec

    specs = {u.name: OutputSpec.declared_by(u, f"[[use_cases]] of {config.source}") for u in config.use_cases}
    if given is not None:
        specs[use_case or "*"] = given
    return specs


def run_report(options: ReportOptions) -> None:
    """Read the logs, print the report, write the page; raises ``LogError`` or ``OSError`` if it cannot."""
    from rvz.report.data import load
    from rvz.report.history import read_history
    from rvz.report.stats import summarize

    history = read_history(options.data_dir, options.schedule)
    outputs = dict(options.outputs or {})
    every = outputs.pop("*", None)  # given on the command line for every use case
    data = load(options.data_dir, history, options.keep, outputs, every)
    reports = summarize(data)
    if options.as_json:
        click.echo(json.dumps(report_json(reports, options, data), indent=2))
    else:
        _print_tables(reports, options, data)
    if options.html_path is not None:
        from rvz.report.html import render_page

        page = render_page(reports, options.schedule, _header(options, data), DEFINITIONS)
        options.html_path.write_text(page, encoding="utf-8")
        click.echo(f"rvz: wrote the HTML report to {options.html_path}", err=True)


def report_json(reports: list[UseCaseReport], options: ReportOptions, data: LogData) -> dict[str, Any]:
    keep = options.keep
    return {
        "data_dir": str(options.data_dir),
        "since": _iso(keep.since_ns), "until": _iso(keep.until_ns), "use_case": keep.use_case,
        "schedule": [{"until_ms": w.until_ms, "accept": list(w.accept)} for w in options.schedule],
        "truths": data.truths, "unmatched_truths": data.unmatched_truths,
        "use_cases": [{
            "use_case": r.use_case, "requests": r.requests, "outcomes": r.outcomes,
            "first_request": _iso(r.first_ns), "last_request": _iso(r.last_ns), "canary": r.canary,
            "outputs": r.outputs, "champion": r.champion, "truths": r.truths,
            "markers": [{"at": _iso(m.at_ns), "kind": m.kind, "text": m.text} for m in r.markers],
            "notes": r.notes,
            "models": [_model_json(m.report) for m in r.models],
        } for r in reports],
    }


def _model_json(report: Any) -> dict[str, Any]:
    document: dict[str, Any] = asdict(report)
    if report.vs_champion is not None:
        document["vs_champion"]["sentence"] = report.vs_champion.sentence()
    return document


def _iso(ns: int | None) -> str | None:
    return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC).isoformat()


def _header(options: ReportOptions, data: LogData | None = None) -> str:
    keep = options.keep
    scope = f"use case {keep.use_case}" if keep.use_case else "all use cases"
    if keep.since_ns is None and keep.until_ns is None:
        text = f"{options.data_dir}, {scope}, all requests"
    else:
        text = (f"{options.data_dir}, {scope}, requests received from {_iso(keep.since_ns) or 'the start'} "
                f"to {_iso(keep.until_ns) or 'the end'}")
    if data is not None and data.unmatched_truths:
        text += (f"; {data.unmatched_truths:,} truths name requests no request log holds (kept in the feedback "
                 "log, not compared)")
    return text


def _print_tables(reports: list[UseCaseReport], options: ReportOptions, data: LogData) -> None:
    from rich.console import Console

    from rvz.report.table import use_case_tables

    console = Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)
    if not reports:
        console.print(f"No requests, scores or results in {_header(options)}.")
    elif data.unmatched_truths:
        console.print(f"{data.unmatched_truths:,} truths name requests no request log holds: kept, not compared.")
    for report in reports:
        for table in use_case_tables(report):
            console.print(table)
            console.print()
        for note in report.notes:
            console.print(f"- {note}", highlight=False)
        console.print()
