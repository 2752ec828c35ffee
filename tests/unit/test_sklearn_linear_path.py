"""Linear scikit-learn models answer through numpy with scikit-learn's own numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from models.formats.sklearn_adapter import _linear_path

RNG = np.random.default_rng(3)
X = RNG.normal(size=(200, 4)) * [1, 10, 100, 0.1]
LABELS = (X @ [1.0, -0.1, 0.01, 5.0] + RNG.normal(size=200) > 0).astype(int)
TARGETS = X @ [0.5, 0.2, -0.01, 3.0] + 1.0


@pytest.mark.parametrize(
    ("model", "y", "binary"),
    [
        (make_pipeline(StandardScaler(), LogisticRegression()), LABELS, True),
        (LogisticRegression(max_iter=1000), LABELS, True),
        (make_pipeline(StandardScaler(with_mean=False), Ridge()), TARGETS, False),
        (LinearRegression(), TARGETS, False),
    ],
)
def test_linear_models_give_scikit_learns_answers(
    model: object, y: np.ndarray, binary: bool
) -> None:
    model.fit(X, y)  # type: ignore[attr-defined]
    direct = _linear_path(model, binary, 4)
    assert direct is not None
    rows = RNG.normal(size=(50, 4)) * 5
    expected = model.predict_proba(rows)[:, 1] if binary else model.predict(rows)  # type: ignore[attr-defined]
    assert direct(rows) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert direct(rows[:1]).shape == (1,)


def test_other_models_keep_scikit_learns_own_path() -> None:
    tree = DecisionTreeClassifier().fit(X, LABELS)
    assert _linear_path(tree, True, 4) is None
    multiclass = LogisticRegression(max_iter=1000).fit(X, LABELS + (X[:, 0] > 1))
    assert _linear_path(multiclass, False, 4) is None
    two_steps = make_pipeline(StandardScaler(), StandardScaler(), LogisticRegression())
    assert _linear_path(two_steps.fit(X, LABELS), True, 4) is None
