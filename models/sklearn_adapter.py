"""scikit-learn models saved with joblib (``model.joblib``, optional ``features.json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import joblib

from models._inputs import to_feature_matrix
from models.base import ModelAdapter
from models.errors import ModelError

__all__ = ["SklearnAdapter"]


class SklearnAdapter(ModelAdapter):
    """A fitted estimator; classifiers answer the positive-class probability.

    ``features.json`` (``{"feature_names": [...]}``) lets callers send instances as
    objects keyed by feature name instead of positional lists.
    """

    format = "sklearn"

    def load(self) -> None:
        """Unpickle the estimator and read its feature names."""
        self._model: Any = joblib.load(self.directory / "model.joblib")
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

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """One prediction per row: P(positive) for binary classifiers, else ``predict``."""
        matrix = to_feature_matrix(instances, self.n_features, self.feature_names)
        if len(matrix) == 0:
            return []
        if self._binary_proba:
            return [float(p) for p in self._model.predict_proba(matrix)[:, 1]]
        return [v.item() if hasattr(v, "item") else v for v in self._model.predict(matrix)]

    def describe(self) -> dict[str, Any]:
        """Add the feature names callers must send."""
        return {
            **super().describe(),
            "feature_names": self.feature_names,
            "n_features": self.n_features,
        }
