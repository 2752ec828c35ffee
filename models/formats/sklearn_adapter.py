"""scikit-learn models saved with joblib (``model.joblib``, optional ``features.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from models.base import ModelAdapter
from models.errors import ModelError
from models.formats._inputs import to_feature_matrix

__all__ = ["SklearnAdapter"]

_Scorer = Callable[[np.ndarray], np.ndarray]


def _linear_path(model: Any, binary_proba: bool, n_features: int) -> _Scorer | None:
    """The model as numpy, when it is a linear model (logistic or least squares),
    optionally after a ``StandardScaler``: the same numbers without scikit-learn's
    per-call machinery, which costs about 0.2 ms even for one row. Checked against
    scikit-learn on random rows before it is used; ``None`` for anything else."""
    steps = list(model.named_steps.values()) if isinstance(model, Pipeline) else [model]
    *prefix, last = steps
    if len(prefix) > 1 or (prefix and type(prefix[0]) is not StandardScaler):
        return None
    if type(last) not in (LogisticRegression, LinearRegression, Ridge):
        return None
    if isinstance(last, LogisticRegression) and not binary_proba:
        return None
    coef = np.asarray(last.coef_, dtype=np.float64).reshape(-1)
    if coef.shape != (n_features,):
        return None
    intercept = float(np.asarray(last.intercept_).reshape(-1)[0])
    mean, scale = np.zeros(n_features), np.ones(n_features)
    if prefix:
        scaler = prefix[0]
        if scaler.with_mean and scaler.mean_ is not None:
            mean = np.asarray(scaler.mean_, dtype=np.float64)
        if scaler.with_std and scaler.scale_ is not None:
            scale = np.asarray(scaler.scale_, dtype=np.float64)
    # Folded into one dot product: ((x - mean) / scale) . coef + b.
    weights = coef / scale
    bias = intercept - float(mean @ weights)
    logistic = isinstance(last, LogisticRegression)

    def direct(matrix: np.ndarray) -> np.ndarray:
        z: np.ndarray = np.asarray(matrix, dtype=np.float64) @ weights + bias
        if logistic:
            return np.asarray(1.0 / (1.0 + np.exp(-z)))
        return z

    probe = np.random.default_rng(0).normal(size=(64, n_features)) * 10
    with sklearn.config_context(assume_finite=True):
        expected = model.predict_proba(probe)[:, 1] if logistic else model.predict(probe)
    if not np.allclose(direct(probe), expected, rtol=1e-9, atol=1e-12):
        return None
    return direct


class SklearnAdapter(ModelAdapter):
    """A fitted estimator; classifiers answer the positive-class probability.

    ``features.json`` (``{"feature_names": [...]}``) lets callers send instances as
    objects keyed by feature name instead of positional lists.
    """

    format = "sklearn"
    primary_file = "model.joblib"

    def load(self) -> None:
        """Unpickle the estimator and read its feature names."""
        self._model: Any = joblib.load(self.directory / "model.joblib")
        if not (hasattr(self._model, "predict") or hasattr(self._model, "predict_proba")):
            kind = type(self._model).__name__
            hint = (
                " A fitted decomposition is a matrix factorisation: publish its user factors "
                "(its transform of the user x item matrix) and item factors (components_.T) "
                "with ids.json in the `factors` format (README 'Bring your own model')."
                if hasattr(self._model, "components_")
                else ""
            )
            raise ModelError(
                f"model {self.name!r}: {kind} has no predict or predict_proba: the sklearn "
                f"format serves estimators that predict from feature rows.{hint}"
            )
        features_path = self.directory / "features.json"
        names: list[str] | None = None
        if features_path.is_file():
            names = list(json.loads(features_path.read_text(encoding="utf-8"))["feature_names"])
        self.feature_names = names
        n_features = getattr(self._model, "n_features_in_", None)
        if n_features is None:
            if names is None:
                raise ModelError(f"model {self.name!r}: cannot tell how many features it takes")
            n_features = len(names)
        self.n_features = int(n_features)
        proba = hasattr(self._model, "predict_proba")
        self._binary_proba = proba and len(getattr(self._model, "classes_", [])) == 2
        self._direct = _linear_path(self._model, self._binary_proba, self.n_features)

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """One prediction per row: P(positive) for binary classifiers, else ``predict``."""
        matrix = to_feature_matrix(instances, self.n_features, self.feature_names)
        if len(matrix) == 0:
            return []
        return [v.item() if hasattr(v, "item") else v for v in self._run(matrix)]

    def predict_array(self, matrix: np.ndarray) -> np.ndarray:
        """As the base class, but one vectorised call with no per-value checks."""
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ModelError(
                f"model {self.name!r} takes {self.n_features} features, got shape {matrix.shape}"
            )
        if len(matrix) == 0:
            return np.zeros(0)
        return np.asarray(self._run(matrix), dtype=np.float64)

    def _run(self, matrix: np.ndarray) -> np.ndarray:
        if self._direct is not None:
            return self._direct(matrix)
        # Inputs are already checked (finite numbers, right width): skipping
        # scikit-learn's own re-validation takes a third off a one-row call.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if self._binary_proba:
                result: np.ndarray = self._model.predict_proba(matrix)[:, 1]
            else:
                result = self._model.predict(matrix)
        return result

    def example_instances(self) -> list[Any] | None:
        """The published examples, else one row of zeros as wide as the model's input."""
        return super().example_instances() or [[0.0] * self.n_features]

    def describe(self) -> dict[str, Any]:
        """Add the feature names callers must send."""
        return {
            **super().describe(),
            "feature_names": self.feature_names,
            "n_features": self.n_features,
        }
