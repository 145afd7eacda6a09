"""The demo use case: iris species from flower measurements.

Models are trained at start-up on the iris dataset that ships inside
scikit-learn (no download). Features, all numbers in centimetres:
``sepal_length``, ``sepal_width``, ``petal_length``, ``petal_width``.
Entries: ``rvz.demo:Champion``, ``rvz.demo:Challenger``, ``rvz.demo:Canary``
(classes: rvz instantiates them once per worker). Every model returns
``{"label": species, "probabilities": {species: p}}``.

- champion: gradient boosting;
- challenger: logistic regression;
- canary: fixed thresholds that never change, the stable baseline for drift;
- the decoy needs no code: it archives the input stream.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any, ClassVar

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
# Entries that need scikit-learn (the demo extra); the canary does not.
SKLEARN_ENTRIES = ("rvz.demo:Champion", "rvz.demo:Challenger")
SPECIES = ("setosa", "versicolor", "virginica")


@cache
def _dataset() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


class SklearnModel:
    """Wraps a fitted scikit-learn classifier in rvz's calling convention."""

    features: ClassVar[dict[str, str]] = {name: "number" for name in FEATURES}

    def __init__(self, estimator: Any) -> None:
        x, y = _dataset()
        self.estimator = estimator.fit(x, y)

    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        return self.predict_batch([features])[0]

    def predict_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = [[float(features[name]) for name in FEATURES] for features in batch]
        return [_answer(probabilities) for probabilities in self.estimator.predict_proba(rows)]


def _answer(probabilities: Any) -> dict[str, Any]:
    best = max(range(len(SPECIES)), key=lambda i: probabilities[i])
    rounded = {s: round(float(p), 4) for s, p in zip(SPECIES, probabilities, strict=True)}
    return {"label": SPECIES[best], "probabilities": rounded}


class Champion(SklearnModel):
    """Gradient-boosted trees."""

    def __init__(self) -> None:
        from sklearn.ensemble import GradientBoostingClassifier

        super().__init__(GradientBoostingClassifier(n_estimators=50, max_depth=2, random_state=0))


class Challenger(SklearnModel):
    """Multinomial logistic regression."""

    def __init__(self) -> None:
        from sklearn.linear_model import LogisticRegression

        super().__init__(LogisticRegression(max_iter=500))


class Canary:
    """Fixed petal thresholds (a classic one-level rule set): never retrained, so it never drifts."""

    features: ClassVar[dict[str, str]] = {name: "number" for name in FEATURES}

    def predict(self, features: dict[str, Any]) -> dict[str, Any]:
        petal_length, petal_width = float(features["petal_length"]), float(features["petal_width"])
        if petal_length < 2.45:
            label = "setosa"
        elif petal_width < 1.75:
            label = "versicolor"
        else:
            label = "virginica"
        return {"label": label, "probabilities": {s: float(s == label) for s in SPECIES}}


def example_features(rng: random.Random | None = None) -> dict[str, float]:
    """A real row of the dataset, as ``rvz score --example`` sends it."""
    x, _ = _dataset()
    row = x[(rng or random.Random()).randrange(len(x))]
    return {name: float(value) for name, value in zip(FEATURES, row, strict=True)}
