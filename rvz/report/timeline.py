"""What happened to a use case over time, and what the report could not say.

``markers``: the policy changes and promotions its requests saw, at the first request each one
decided (the version in each result, the champion's name in each score). ``notes``: every output
that could not be compared and why, and what is missing for the figures to say more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from rvz.report.arrays import Bools, ModelArrays
from rvz.report.data import LogData
from rvz.report.judged import can_judge

if TYPE_CHECKING:
    from rvz.report.stats import UseCaseReport


@dataclass(frozen=True)
class Marker:
    at_ns: int
    kind: Literal["policy", "promotion"]
    text: str


def markers(data: LogData, use_case: str, rows: Bools, models: list[ModelArrays]) -> list[Marker]:
    """Policy versions and champions changing, in request order."""
    order = np.flatnonzero(rows)
    order = order[np.argsort(data.received_ns[order], kind="stable")]
    names = {m.code: f"{m.key.name}:{m.key.version}" for m in models}
    found = _changes(data, order, data.policy_version, "policy", lambda v: f"policy v{v}")
    found += _changes(data, order, data.champion_model, "promotion",
                      lambda code: f"{names.get(code, '?')} is champion")
    return sorted(found, key=lambda marker: marker.at_ns)


def _changes(data: LogData, order: np.ndarray, values: np.ndarray, kind: Literal["policy", "promotion"],
             describe: Callable[[int], str]) -> list[Marker]:
    """A marker wherever ``values`` (per request, <= 0 or -1 unknown) differs from the last known one."""
    known = order[values[order] > (0 if kind == "policy" else -1)]
    if known.size < 2:
        return []
    seen = values[known]
    changed = np.flatnonzero(seen[1:] != seen[:-1]) + 1
    return [Marker(int(data.received_ns[known[i]]), kind, describe(int(seen[i]))) for i in changed]


def notes(data: LogData, report: UseCaseReport) -> list[str]:
    """Sentences for the reader of ``report``: what was not compared, not judged or not known."""
    found = [f"Outputs: {report.outputs}."]
    spec_declared = not report.outputs.startswith("not declared")
    for stats in report.models:
        m = stats.report
        if m.not_compared:
            found.append(_not_compared(report.use_case, f"{m.name}:{m.version}", m.not_compared,
                                       m.scores - m.errors, m.not_compared_shape or "", spec_declared))
    missing = sorted(v for u, v in data.history.missing if u == report.use_case)
    if missing:
        found.append(f"Policy version(s) {', '.join(map(str, missing))} are not in the policy history (DATA_DIR/"
                     "policies): the on-time figures of their requests use the schedule of --config.")
    if not report.truths:
        found.append("No truth is recorded for these requests: record them with `rvz feedback import FILE` "
                     "(request_id,truth) to see which model is right.")
    elif not can_judge():
        found.append("Truths are recorded, but judging the models by them needs scikit-learn, which is not "
                     "installed: pip install 'rvz[report]'.")
    elif report.champion is None:
        found.append("No champion scored these requests: each model is judged alone, none against a champion.")
    return found


def _not_compared(use_case: str, model: str, count: int, outputs: int, shape: str, declared: bool) -> str:
    what = f"{model}: {count:,} of {outputs:,} outputs were not compared ({shape}"
    if declared:
        return what + ", without the declared field): check [[use_cases]] output in the config."
    return (what + ": neither a label nor a number by the conventional shapes): declare the field, e.g. "
            f'[[use_cases]] name = "{use_case}", output = "FIELD", kind = "number" (or "label") in the config, '
            "or once with rvz report --output FIELD --output-kind number.")
