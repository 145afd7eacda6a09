"""Each model of a use case judged against the truth, and against the champion on the same requests.

Joins the loaded arrays by request (a model's last score of a request counts) and hands them to
``rvz.compare.quality``. Every model that scored the requests is judged, replayed ones included; the
champion is the model that was champion for the use case's latest request.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rvz.compare.quality import (
    Comparison,
    LabelQuality,
    NumberQuality,
    compare_labels,
    compare_numbers,
    label_quality,
    number_quality,
)
from rvz.report.arrays import ERROR, F64, I64, NO_LABEL, ModelArrays
from rvz.report.data import LogData

# Points of truth against prediction kept per model for the plots.
SCATTER_POINTS = 2000


@dataclass(frozen=True)
class Judgement:
    """A model against the truth: ``quality`` over the ``n`` requests it scored that have a truth."""

    n: int
    quality: LabelQuality | NumberQuality | None
    vs_champion: Comparison | None
    truth: F64 = field(default_factory=lambda: np.empty(0))  # a sample, for the plots (numbers)
    predicted: F64 = field(default_factory=lambda: np.empty(0))
    # Every judged request's time and how the model did on it (100 if right, or its absolute error).
    at_ns: I64 = field(default_factory=lambda: np.empty(0, np.int64))
    outcome: F64 = field(default_factory=lambda: np.empty(0))


NOT_JUDGED = Judgement(0, None, None)


def champion_of(data: LogData, use_case: str, models: list[ModelArrays]) -> ModelArrays | None:
    """The model that was champion for the latest request of the use case that had one."""
    rows = np.flatnonzero((data.use_case_code == data.use_cases.index(use_case)) & (data.champion_model >= 0)) \
        if use_case in data.use_cases else np.empty(0, np.int64)
    if not rows.size:
        return None
    latest = rows[np.argmax(data.received_ns[rows])]
    code = int(data.champion_model[latest])
    return next((m for m in models if m.code == code), None)


def can_judge() -> bool:
    """Is scikit-learn (the report extra) installed? Without it no model is judged."""
    return importlib.util.find_spec("sklearn") is not None


def judge(data: LogData, models: list[ModelArrays], kind: Literal["label", "number"] | None,
          champion: ModelArrays | None) -> dict[int, Judgement]:
    """A judgement per model code; a use case without truths, or whose outputs are neither labels nor
    numbers, has none, and so has every use case without scikit-learn."""
    if kind is None or not can_judge():
        return {}
    predictions = {m.code: _by_row(data, m, kind) for m in models}
    reference = predictions.get(champion.code) if champion is not None else None
    judged = {}
    for m in models:
        judged[m.code] = _judge(data, m, kind, predictions[m.code], champion, reference)
    return judged


def _by_row(data: LogData, m: ModelArrays, kind: str) -> I64:
    """The index of the model's last successful, readable score of each request (-1: none)."""
    readable = (m.label != NO_LABEL) if kind == "label" else np.isfinite(m.number)
    chosen = np.flatnonzero(((m.flags & ERROR) == 0) & (m.row >= 0) & readable)
    by_row = np.full(data.received_ns.size, -1, np.int64)
    by_row[m.row[chosen]] = chosen
    return by_row


def _judge(data: LogData, m: ModelArrays, kind: str, mine: I64, champion: ModelArrays | None,
           theirs: I64 | None) -> Judgement:
    known = _truth_known(data, kind)
    rows = np.flatnonzero(known & (mine >= 0))
    if not rows.size:
        return NOT_JUDGED
    versus = None
    if champion is not None and theirs is not None and champion is not m:
        paired = rows[theirs[rows] >= 0]
        if paired.size:
            versus = _compare(data, m, champion, kind, paired, mine, theirs)
    at_ns = data.received_ns[rows]
    if kind == "label":
        probabilities, names = _probabilities(data, m, mine[rows])
        truth_labels, labels = data.truth_label[rows], m.label[mine[rows]]
        return Judgement(rows.size, label_quality(truth_labels, labels, names, probabilities), versus,
                         at_ns=at_ns, outcome=100.0 * (truth_labels == labels))
    truth, predicted = data.truth_number[rows], m.number[mine[rows]]
    sample = np.random.default_rng(0).permutation(rows.size)[:SCATTER_POINTS]
    return Judgement(rows.size, number_quality(truth, predicted), versus, truth[sample], predicted[sample],
                     at_ns, np.abs(predicted - truth))


def _truth_known(data: LogData, kind: str) -> np.ndarray:
    return (data.truth_label != NO_LABEL) if kind == "label" else np.isfinite(data.truth_number)


def _compare(data: LogData, m: ModelArrays, champion: ModelArrays, kind: str, rows: I64, mine: I64,
             theirs: I64) -> Comparison:
    name, champion_name = _name(m), _name(champion)
    if kind == "label":
        return compare_labels(name, champion_name, data.truth_label[rows], m.label[mine[rows]],
                              champion.label[theirs[rows]])
    return compare_numbers(name, champion_name, data.truth_number[rows], m.number[mine[rows]],
                           champion.number[theirs[rows]])


def _name(m: ModelArrays) -> str:
    return f"{m.key.name}:{m.key.version}" + (" (replayed)" if m.key.replayed else "")


def _probabilities(data: LogData, m: ModelArrays, scores: I64) -> tuple[F64 | None, list[str]]:
    """The class probabilities of ``scores`` as a matrix over every label (NaN rows: none given)."""
    names = data.labels
    if not m.probability.size:
        return None, names
    position = np.full(m.row.size, -1, np.int64)
    position[scores] = np.arange(scores.size)
    at = position[m.probability_of]
    given = at >= 0
    matrix = np.zeros((scores.size, len(names)))
    matrix[at[given], m.probability_label[given]] = m.probability[given]
    has = np.zeros(scores.size, np.bool_)
    has[at[given]] = True
    matrix[~has] = np.nan
    return matrix, names
