"""The smoke test a freshly loaded model version must pass before it takes traffic.

A version that loads but cannot answer (weights that do not fit the item table, a
predict that raises, NaN scores) is caught here, beside the version still serving,
instead of by users. Recommenders recommend for a user nobody has seen (the cold
start path every recommender must handle); scorers score an unknown item; models
with example inputs (``blendserve publish --example``, or a row of zeros for
formats that know their input width) predict them.
"""

from __future__ import annotations

import math
from typing import Any

from models.base import ModelAdapter, Recommender, RecommendQuery, Scorer
from models.errors import ModelError, describe_error

__all__ = ["SMOKE_USER", "smoke_test"]

SMOKE_USER = "__blendserve_smoke_test__"
"""The user a smoke test recommends for: unknown to every model, on purpose."""


def _fail(adapter: ModelAdapter, what: str, detail: str) -> ModelError:
    # One line, whatever the model's own error held (TorchScript's span many).
    return ModelError(
        f"model {adapter.name!r} version {adapter.version!r} failed its smoke test: "
        f"{what}: {detail}"
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def smoke_test(adapter: ModelAdapter) -> list[str]:
    """Exercise every capability ``adapter`` claims; raise ``ModelError`` naming the
    first that fails. Returns what was tried (for the log)."""
    info = adapter.describe()
    query = RecommendQuery(SMOKE_USER)
    tried: list[str] = []
    if info.get("recommender") and isinstance(adapter, Recommender):
        try:
            rows = adapter.recommend([query], 10)
        except Exception as exc:  # any failure of the model's code
            raise _fail(adapter, "recommend", describe_error(exc)) from exc
        if len(rows) != 1 or not all(
            isinstance(item, str) and _finite(score) for item, score in rows[0]
        ):
            raise _fail(adapter, "recommend", "expected one list of (item id, finite score)")
        tried.append(f"recommend ({len(rows[0])} items)")
    if info.get("scorer") and isinstance(adapter, Scorer):
        try:
            scores = adapter.score(query, ["__blendserve_smoke_item__"])
        except Exception as exc:
            raise _fail(adapter, "score", describe_error(exc)) from exc
        if len(scores) != 1 or not _finite(scores[0]):
            raise _fail(adapter, "score", f"expected one finite score, got {scores!r}")
        tried.append("score")
    examples = adapter.example_instances()
    if examples:
        try:
            outputs = adapter.predict(examples)
        except Exception as exc:
            raise _fail(adapter, "predict", describe_error(exc)) from exc
        if len(outputs) != len(examples):
            raise _fail(adapter, "predict", f"{len(outputs)} outputs for {len(examples)} examples")
        tried.append(f"predict ({len(examples)} examples)")
    return tried
