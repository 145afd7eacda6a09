"""rvz.distances: the live drift figures, checked against scipy's own."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from rvz.compare.distances import js_distance, ks_statistic


@pytest.mark.parametrize("seed", range(20))
def test_ks_statistic_is_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, rng.integers(1, 400))
    b = rng.normal(rng.uniform(-1, 1), rng.uniform(0.5, 2), rng.integers(1, 400))
    if seed % 4 == 0:  # ties, as rounded scores have
        a, b = np.round(a, 1), np.round(b, 1)
    assert ks_statistic(a.tolist(), b.tolist()) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_statistic_bounds() -> None:
    assert ks_statistic([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0
    assert ks_statistic([1.0, 2.0], [5.0, 6.0]) == 1.0
    with pytest.raises(ValueError, match="at least one value"):
        ks_statistic([], [1.0])


@pytest.mark.parametrize("seed", range(20))
def test_js_distance_is_scipys(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    p, q = rng.integers(0, 50, n), rng.integers(0, 50, n)
    p[0] += 1  # at least one count on each side
    q[-1] += 1
    assert js_distance(p.tolist(), q.tolist()) == pytest.approx(distance.jensenshannon(p, q, base=2), abs=1e-12)


def test_js_distance_bounds() -> None:
    assert js_distance([3, 1], [6, 2]) == 0.0  # same frequencies
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint labels
    with pytest.raises(ValueError, match="same length"):
        js_distance([1, 2], [1])
    with pytest.raises(ValueError, match="non-empty"):
        js_distance([0, 0], [1, 1])
