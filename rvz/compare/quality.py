"""How right each model is against the truth, and whether one is better than the champion.

Pure functions on numpy arrays aligned by request (no logs, no I/O). The metrics are scikit-learn's;
intervals are Wilson's for proportions (scipy) and percentile bootstraps (numpy) for the rest; the
paired tests are McNemar's exact test for labels (a binomial test on the discordant pairs, scipy) and
a paired bootstrap of the difference in absolute error for numbers. Every interval is 95%, and every
bootstrap draws from a fixed seed, so a report computed twice from the same logs says the same thing.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.integer[Any]]
CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
SEED = 20240501
RESAMPLES = 1000
# A bootstrap draws at most this many values in all (resamples x n): past it, fewer resamples.
MAX_DRAWS = 20_000_000
MIN_RESAMPLES = 100


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval (None when it cannot be computed, e.g. from one value)."""

    value: float
    low: float | None
    high: float | None


@dataclass(frozen=True)
class ClassQuality:
    label: str
    support: int  # requests whose truth is this label
    precision: Estimate | None  # None: the model never said this label
    recall: Estimate | None
    f1: Estimate | None


@dataclass(frozen=True)
class LabelQuality:
    n: int
    accuracy: Estimate
    macro_f1: Estimate  # the mean of the classes' F1
    classes: list[ClassQuality]
    log_loss: Estimate | None  # where outputs carry probabilities
    roc_auc: Estimate | None
    probabilities_n: int  # requests whose output carried probabilities
    # confusion[i][j]: requests whose truth is labels[i] that the model labelled labels[j].
    labels: list[str]
    confusion: list[list[int]]


@dataclass(frozen=True)
class NumberQuality:
    n: int
    mae: Estimate
    rmse: Estimate
    r2: Estimate | None  # None: the truths are all the same number


Verdict = Literal["better", "worse", "no significant difference"]


@dataclass(frozen=True)
class Comparison:
    """A model against the champion on the same requests: ``delta`` > 0 means the model is better
    (accuracy points gained, or absolute error saved)."""

    model: str
    champion: str
    metric: Literal["accuracy", "MAE"]
    n: int
    delta: Estimate
    p_value: float
    test: str
    verdict: Verdict

    def sentence(self) -> str:
        interval = _interval(self.delta, self.metric)
        figures = f"(95% CI {interval}), {p_text(self.p_value)}, n = {self.n:,} ({self.test})"
        amount = _amount(abs(self.delta.value), self.metric)
        if self.verdict == "better":
            return f"{self.model} beats the champion {self.champion} by {amount} {figures}"
        if self.verdict == "worse":
            return f"{self.model} is worse than the champion {self.champion} by {amount} {figures}"
        signed = _amount(self.delta.value, self.metric, signed=True)
        return (f"{self.model} is not significantly different from the champion {self.champion}: "
                f"{signed} {figures}")


def _amount(value: float, metric: str, signed: bool = False) -> str:
    sign = "+" if signed and value > 0 else ""
    if metric == "accuracy":
        return f"{sign}{100 * value:.1f} points of accuracy"
    return f"{sign}{value:.4g} of MAE"


def _interval(e: Estimate, metric: str) -> str:
    if e.low is None or e.high is None:
        return "n/a"
    if metric == "accuracy":
        return f"{100 * e.low:.1f} to {100 * e.high:.1f}"
    return f"{e.low:.4g} to {e.high:.4g}"


def p_text(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


# --- intervals ------------------------------------------------------------------------------------


def wilson(successes: int, n: int) -> Estimate:
    """A proportion with Wilson's score interval."""
    interval = stats.binomtest(successes, n).proportion_ci(CONFIDENCE, method="wilson")
    return Estimate(successes / n, float(interval.low), float(interval.high))


def resamples(n: int, wanted: int = RESAMPLES) -> int:
    """How many bootstrap resamples of ``n`` values to draw: ``wanted``, fewer for a very large n."""
    return max(MIN_RESAMPLES, min(wanted, MAX_DRAWS // max(n, 1)))


def bootstrap(statistic: Callable[[I64], float], n: int, value: float, wanted: int = RESAMPLES) -> Estimate:
    """``value`` with the percentile interval of ``statistic`` over resamples of the indices 0..n-1
    (drawn with replacement); no interval below two values or when every resample fails."""
    if n < 2:
        return Estimate(value, None, None)
    rng = np.random.default_rng(SEED)
    draws = np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples(n, wanted))])
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return Estimate(value, None, None)
    low, high = np.quantile(draws, [ALPHA / 2, 1 - ALPHA / 2])
    return Estimate(value, float(low), float(high))


def mean_bootstrap(values: F64) -> tuple[Estimate, F64]:
    """The mean with its bootstrap interval, and the resampled means (vectorised, in chunks)."""
    n = values.size
    rng = np.random.default_rng(SEED)
    count = resamples(n)
    chunk = max(1, MAX_DRAWS // 10 // max(n, 1))
    means = np.concatenate([values[rng.integers(0, n, (min(chunk, count - done), n))].mean(axis=1)
                            for done in range(0, count, chunk)])
    low, high = np.quantile(means, [ALPHA / 2, 1 - ALPHA / 2])
    return Estimate(float(values.mean()), float(low), float(high)), means


# --- labels ---------------------------------------------------------------------------------------


def label_quality(truth: I64, predicted: I64, names: list[str], probabilities: F64 | None = None) -> LabelQuality:
    """Quality of ``predicted`` label codes against ``truth`` codes (indices into ``names``), both of
    length n >= 1. ``probabilities`` (n x len(names), NaN rows where an output carried none) gives
    log-loss and ROC AUC over the requests that have them."""
    n = truth.size
    present = np.union1d(truth, predicted)
    t, p = np.searchsorted(present, truth), np.searchsorted(present, predicted)
    k = present.size  # scikit-learn's confusion_matrix, without its warning when every label is one class
    confusion = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    f1, macro_f1 = _f1_intervals(t, p, present.size)
    classes = [_class_quality(confusion, i, names[code], f1[i]) for i, code in enumerate(present)]
    log_loss, roc_auc, with_probabilities = _probability_scores(truth, probabilities)
    return LabelQuality(n, wilson(int(np.trace(confusion)), n), macro_f1, classes, log_loss, roc_auc,
                        with_probabilities, [names[code] for code in present], confusion.tolist())


def _class_quality(confusion: I64, i: int, label: str, f1: Estimate | None) -> ClassQuality:
    true_positive = int(confusion[i, i])
    said, support = int(confusion[:, i].sum()), int(confusion[i, :].sum())
    precision = wilson(true_positive, said) if said else None
    recall = wilson(true_positive, support) if support else None
    return ClassQuality(label, support, precision, recall, f1 if precision and recall else None)


def _f1_scores(truth: I64, predicted: I64, k: int) -> F64:
    """Each class's F1 (NaN for a class neither said nor true), from one bincount."""
    confusion = np.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)
    total = confusion.sum(axis=0) + confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * np.diag(confusion) / total, np.nan)


def _f1_intervals(truth: I64, predicted: I64, k: int) -> tuple[list[Estimate | None], Estimate]:
    """Every class's F1, and their mean (macro F1), with bootstrap intervals from the same resamples."""
    values = _f1_scores(truth, predicted, k)
    macro = float(np.nanmean(values))
    n = truth.size
    if n < 2:
        return [Estimate(float(v), None, None) for v in values], Estimate(macro, None, None)
    rng = np.random.default_rng(SEED)
    draws = np.empty((resamples(n), k))
    for row in range(draws.shape[0]):
        idx = rng.integers(0, n, n)
        draws[row] = _f1_scores(truth[idx], predicted[idx], k)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from a resample has no F1 there
        low, high = np.nanquantile(draws, [ALPHA / 2, 1 - ALPHA / 2], axis=0)
        macro_low, macro_high = np.nanquantile(np.nanmean(draws, axis=1), [ALPHA / 2, 1 - ALPHA / 2])
    per_class: list[Estimate | None] = [Estimate(float(v), float(lo), float(hi))
                                        for v, lo, hi in zip(values, low, high, strict=True)]
    return per_class, Estimate(macro, float(macro_low), float(macro_high))


def _probability_scores(truth: I64, probabilities: F64 | None) -> tuple[Estimate | None, Estimate | None, int]:
    if probabilities is None:
        return None, None, 0
    has = np.isfinite(probabilities).all(axis=1) & (np.nan_to_num(probabilities).sum(axis=1) > 0)
    rows = int(np.count_nonzero(has))
    if rows < 2:
        return None, None, rows
    y, p = truth[has], probabilities[has]
    # Point values from scikit-learn; the resamples use the same formulas in numpy (thousands of calls).
    from sklearn import metrics

    loss = None
    if p.shape[1] > 1:  # over every class the outputs know: a week of truths may all be one class
        every = np.clip(p, 1e-15, None)  # a class never given p is near 0, not impossible
        every /= every.sum(axis=1, keepdims=True)
        loss = bootstrap(lambda idx: _log_loss(y[idx], every[idx]), rows,
                         float(metrics.log_loss(y, every, labels=np.arange(every.shape[1]))))
    auc = None
    classes = np.unique(y)
    if classes.size > 1:  # AUC ranks truths of one class against the others: only the classes truths hold
        q = np.clip(p[:, classes], 1e-15, None)
        q /= q.sum(axis=1, keepdims=True)
        z = np.searchsorted(classes, y)
        value = (metrics.roc_auc_score(z == 1, q[:, 1]) if classes.size == 2 else
                 metrics.roc_auc_score(z, q, multi_class="ovr", labels=np.arange(classes.size)))
        auc = bootstrap(lambda idx: _roc_auc(z[idx], q[idx]), rows, float(value), wanted=200)
    return loss, auc, rows


def _log_loss(y: I64, p: F64) -> float:
    return float(-np.mean(np.log(p[np.arange(y.size), y])))


def _roc_auc(y: I64, p: F64) -> float:
    """One-vs-rest ROC AUC, macro-averaged over the classes (scikit-learn's ``multi_class="ovr"``; for
    two classes, the second's), by the rank-sum formula; NaN when a resample has a single class."""
    present = np.unique(y)
    if present.size < 2:
        return math.nan
    positives = present[1:] if p.shape[1] == 2 else present
    return float(np.mean([_rank_auc(y == c, p[:, c]) for c in positives]))


def _rank_auc(positive: npt.NDArray[np.bool_], score: F64) -> float:
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    ranks = stats.rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def compare_labels(model: str, champion: str, truth: I64, mine: I64, theirs: I64) -> Comparison:
    """McNemar's exact test on the requests both labelled, and the accuracy gained with an exact
    interval from the same discordant pairs (Clopper-Pearson on the share the model won, given how many
    there are), so the interval and the test agree."""
    right, champion_right = truth == mine, truth == theirs
    gained = int(np.count_nonzero(right & ~champion_right))
    lost = int(np.count_nonzero(~right & champion_right))
    discordant, n = gained + lost, truth.size
    if not discordant:
        delta = Estimate(0.0, None, None)
        p_value = 1.0
    else:
        test = stats.binomtest(gained, discordant)
        won = test.proportion_ci(CONFIDENCE, method="exact")
        share = discordant / n
        delta = Estimate((gained - lost) / n, share * (2 * float(won.low) - 1), share * (2 * float(won.high) - 1))
        p_value = float(test.pvalue)
    return Comparison(model, champion, "accuracy", n, delta, p_value, "McNemar exact", _verdict(delta, p_value))


# --- numbers --------------------------------------------------------------------------------------


def number_quality(truth: F64, predicted: F64) -> NumberQuality:
    """MAE, RMSE and R² of ``predicted`` against ``truth`` (both of length n >= 1), with intervals."""
    from sklearn import metrics

    n = truth.size
    errors = predicted - truth
    mae, _ = mean_bootstrap(np.abs(errors))
    squared, _ = mean_bootstrap(errors**2)
    rmse = Estimate(math.sqrt(squared.value), _sqrt(squared.low), _sqrt(squared.high))
    r2 = None
    if n >= 2 and np.ptp(truth) > 0:
        r2 = bootstrap(lambda idx: _r2(truth[idx], predicted[idx]), n,
                       float(metrics.r2_score(truth, predicted)))
    return NumberQuality(n, mae, rmse, r2)


def _sqrt(value: float | None) -> float | None:
    return None if value is None else math.sqrt(value)


def _r2(truth: F64, predicted: F64) -> float:
    spread = np.sum((truth - truth.mean()) ** 2)
    return float(1 - np.sum((truth - predicted) ** 2) / spread) if spread else math.nan


def compare_numbers(model: str, champion: str, truth: F64, mine: F64, theirs: F64) -> Comparison:
    """Paired bootstrap of the absolute error the model saves over the champion, request by request;
    the p-value is the share of resampled means, centred on 0, at least as far from 0 as the mean."""
    saved = np.abs(theirs - truth) - np.abs(mine - truth)
    delta, means = mean_bootstrap(saved)
    if saved.size < 2 or not np.ptp(saved):
        p_value = 1.0 if delta.value == 0 else 0.0
    else:
        p_value = float(np.mean(np.abs(means - delta.value) >= abs(delta.value)))
    return Comparison(model, champion, "MAE", truth.size, delta, max(p_value, 1 / (means.size + 1)),
                      "paired bootstrap", _verdict(delta, p_value))


def _verdict(delta: Estimate, p_value: float) -> Verdict:
    if p_value >= ALPHA or delta.low is None or delta.high is None:
        return "no significant difference"
    if delta.low > 0:
        return "better"
    if delta.high < 0:
        return "worse"
    return "no significant difference"
