"""The two drift figures the rendezvous computes live, with numpy alone.

scipy has both (``stats.ks_2samp``, ``spatial.distance.jensenshannon``), and `rvz report`
uses it, but importing it costs the rendezvous memory and start-up time (docs/performance.md)
for two short formulas. These give the same figures (tests compare them with scipy's).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs, in [0, 1]."""
    xs, ys = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if not len(xs) or not len(ys):
        raise ValueError("both samples need at least one value")
    points = np.concatenate([xs, ys])
    cdf_x = np.searchsorted(xs, points, side="right") / len(xs)
    cdf_y = np.searchsorted(ys, points, side="right") / len(ys)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2) between two frequency vectors over the same labels, in [0, 1]."""
    pa, qa = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if pa.shape != qa.shape or not pa.sum() or not qa.sum():
        raise ValueError("two non-empty frequency vectors of the same length are needed")
    pa, qa = pa / pa.sum(), qa / qa.sum()
    m = (pa + qa) / 2
    divergence = (_relative_entropy(pa, m) + _relative_entropy(qa, m)) / 2 / np.log(2)
    # Rounding can leave -1e-17 for identical distributions: that is 0.
    return float(np.sqrt(max(divergence, 0.0)))


def _relative_entropy(p: np.ndarray, m: np.ndarray) -> float:
    present = p > 0  # 0 * log(0 / m) is 0; m > 0 wherever p > 0
    return float(np.sum(p[present] * np.log(p[present] / m[present])))
