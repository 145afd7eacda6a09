"""rvz.compare.quality against scikit-learn and scipy computed directly, on known samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics

from rvz.compare import quality

pytestmark = pytest.mark.timeout(60)
RNG = np.random.default_rng(7)
N = 600
TRUTH = RNG.integers(0, 3, N)
NAMES = ["a", "b", "c"]


def noisy(labels: np.ndarray, keep: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(labels.size) < keep, labels, rng.integers(0, 3, labels.size))


def probabilities(labels: np.ndarray) -> np.ndarray:
    p = np.random.default_rng(3).dirichlet([1, 1, 1], labels.size)
    p[np.arange(labels.size), labels] += 1
    return p / p.sum(axis=1, keepdims=True)


def test_label_quality_matches_scikit_learn() -> None:
    predicted, p = noisy(TRUTH, 0.8, 1), probabilities(TRUTH)
    q = quality.label_quality(TRUTH, predicted, NAMES, p)
    assert q.n == N and q.labels == NAMES
    assert q.accuracy.value == pytest.approx(metrics.accuracy_score(TRUTH, predicted))
    assert q.accuracy.low < q.accuracy.value < q.accuracy.high
    precision, recall, f1, support = metrics.precision_recall_fscore_support(TRUTH, predicted, labels=[0, 1, 2])
    for i, c in enumerate(q.classes):
        assert (c.label, c.support) == (NAMES[i], support[i])
        assert (c.precision.value, c.recall.value, c.f1.value) == pytest.approx((precision[i], recall[i], f1[i]))
        assert c.f1.low <= c.f1.value <= c.f1.high
    assert q.macro_f1.value == pytest.approx(metrics.f1_score(TRUTH, predicted, average="macro"))
    assert q.log_loss.value == pytest.approx(metrics.log_loss(TRUTH, p))
    assert q.roc_auc.value == pytest.approx(metrics.roc_auc_score(TRUTH, p, multi_class="ovr"))
    assert q.roc_auc.low <= q.roc_auc.value <= q.roc_auc.high
    assert q.confusion == metrics.confusion_matrix(TRUTH, predicted).tolist()


def test_rows_without_probabilities_are_left_out_of_log_loss() -> None:
    p = probabilities(TRUTH)
    p[::2] = np.nan
    q = quality.label_quality(TRUTH, TRUTH, NAMES, p)
    assert q.probabilities_n == N // 2
    assert q.log_loss.value == pytest.approx(metrics.log_loss(TRUTH[1::2], p[1::2], labels=[0, 1, 2]))
    assert quality.label_quality(TRUTH, TRUTH, NAMES).log_loss is None


def test_truths_of_one_class_give_log_loss_over_every_class_and_no_auc() -> None:
    """A week of truths may all be one class (found by feeding the demo's answers back as truths)."""
    truth = np.zeros(50, dtype=np.int64)
    p = probabilities(truth)
    q = quality.label_quality(truth, truth, NAMES, p)
    assert q.log_loss is not None
    assert q.log_loss.value == pytest.approx(metrics.log_loss(truth, p, labels=[0, 1, 2]))
    assert q.roc_auc is None  # ranking one class against the others needs both


def test_number_quality_matches_scikit_learn() -> None:
    truth = RNG.normal(100, 20, N)
    predicted = truth + RNG.normal(0, 5, N)
    q = quality.number_quality(truth, predicted)
    assert q.mae.value == pytest.approx(metrics.mean_absolute_error(truth, predicted))
    assert q.rmse.value == pytest.approx(np.sqrt(metrics.mean_squared_error(truth, predicted)))
    assert q.r2.value == pytest.approx(metrics.r2_score(truth, predicted))
    for e in (q.mae, q.rmse, q.r2):
        assert e.low < e.value < e.high
    assert quality.number_quality(np.ones(5), np.ones(5)).r2 is None  # R² of a constant truth is undefined


def test_wilson_interval() -> None:
    e = quality.wilson(7, 20)
    assert (e.value, e.low, e.high) == pytest.approx((0.35, 0.1812, 0.5671), abs=1e-4)


def test_mcnemar_on_the_discordant_pairs() -> None:
    champion, better = noisy(TRUTH, 0.7, 2), noisy(TRUTH, 0.9, 4)
    c = quality.compare_labels("new:1", "old:1", TRUTH, better, champion)
    gained = np.count_nonzero((better == TRUTH) & (champion != TRUTH))
    lost = np.count_nonzero((better != TRUTH) & (champion == TRUTH))
    assert c.p_value == pytest.approx(stats.binomtest(gained, gained + lost).pvalue)
    assert c.delta.value == pytest.approx((gained - lost) / N)
    assert c.verdict == "better" and c.n == N and c.delta.low > 0
    assert c.sentence().startswith(f"new:1 beats the champion old:1 by {100 * (gained - lost) / N:.1f} points of "
                                   "accuracy (95% CI ")
    assert c.sentence().endswith(f"p < 0.001, n = {N} (McNemar exact)")
    assert quality.compare_labels("old:1", "new:1", TRUTH, champion, better).verdict == "worse"
    same = quality.compare_labels("twin:1", "old:1", TRUTH, champion, champion)
    assert (same.verdict, same.p_value) == ("no significant difference", 1.0)


def test_paired_bootstrap_of_the_error_saved() -> None:
    truth = RNG.normal(0, 1, N)
    champion, better = truth + RNG.normal(0, 1.0, N), truth + RNG.normal(0, 0.5, N)
    c = quality.compare_numbers("new:1", "old:1", truth, better, champion)
    saved = np.abs(champion - truth) - np.abs(better - truth)
    assert c.delta.value == pytest.approx(saved.mean()) and c.verdict == "better" and c.p_value < 0.01
    assert "of MAE" in c.sentence() and "(paired bootstrap)" in c.sentence()
    assert quality.compare_numbers("old:1", "new:1", truth, champion, better).verdict == "worse"
    close = quality.compare_numbers("a:1", "b:1", truth, champion, champion + RNG.normal(0, 0.01, N))
    assert close.verdict == "no significant difference" and close.p_value > 0.05


def test_bootstraps_are_reproducible_and_bounded() -> None:
    truth = RNG.normal(size=50)
    first, again = (quality.number_quality(truth, truth + 1 + RNG.normal(size=50) * 0) for _ in range(2))
    assert first == again
    assert quality.resamples(100) == quality.RESAMPLES
    assert quality.resamples(10**8) == quality.MIN_RESAMPLES
