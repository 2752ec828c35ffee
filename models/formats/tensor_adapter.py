"""What every tensor runtime (TorchScript, ONNX) serves, written once.

Two shapes of model. A *recommender* ships ``ids.json`` (``{"users": [...],
"items": [...]}``) and a model whose one input is ``int64[B]`` user indices and whose
output is scores ``[B, len(items)]``; index ``len(users)`` is reserved for users the
model has never seen (a cold-start row). Without ``ids.json`` the model is a plain
tensor model: one ``float32[B, F]`` input, one prediction per row. ``F`` comes from
the manifest's ``extra.n_features`` (a runtime may also read it off the model);
``extra.feature_names`` lets callers send objects keyed by feature name.

A subclass opens its runtime (:meth:`TensorModelAdapter.open`) and runs one batch
(:meth:`TensorModelAdapter.run`); shapes, ids, top-n, the cold-start row and
the answers' form are decided here, so the formats cannot drift apart.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from models.ann import FIRST_PROBES, INDEX_FILE, ItemIndex, ItemVectors, Retriever
from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem, Scorer, TopItems
from models.errors import ModelError
from models.formats._inputs import to_feature_matrix, to_user_ids
from models.id_table import IdTable
from models.topk import top_k_columns

__all__ = ["EXACT_BELOW", "TensorModelAdapter", "count_option"]

EXACT_BELOW = 50_000
"""Below this many items a recommender scores every item even when its version has an
approximate index (``ann.faiss``): exact, and a matrix product of this size costs
less than a millisecond a user."""


def count_option(adapter: ModelAdapter, key: str, default: int) -> int:
    """A non-negative integer option, or ``ModelError`` saying what was given."""
    value = adapter.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelError(f"model {adapter.name!r}: {key}: expected an integer >= 0, got {value!r}")
    return value


class TensorModelAdapter(ModelAdapter, Recommender, Scorer):
    """A recommender over ``ids.json`` (which also scores given items for a user, as a
    reranker) or a tensor model over numeric rows."""

    known_options: ClassVar[frozenset[str]] = frozenset(
        {"device", "predict_top_n", "exact_below", "ann_probes"}
    )

    device: Any
    """Where the model runs (the runtime's own device object or name)."""
    index: ItemIndex | None = None
    """The approximate index a recommender retrieves with (``None``: exact scoring)."""
    _vectors: ItemVectors | None = None
    _retriever: Retriever | None = None

    def load(self) -> None:
        """Read ``ids.json``, then open the runtime."""
        self.top_n = count_option(self, "predict_top_n", 10)
        self.users: IdTable | None = None
        self.items = IdTable([])
        ids_path = self.directory / "ids.json"
        if ids_path.is_file():
            try:
                ids = json.loads(ids_path.read_text(encoding="utf-8"))
                self.users, self.items = IdTable(ids["users"]), IdTable(ids["items"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelError(
                    f'model {self.name!r}: malformed ids.json (expected {{"users": [...], '
                    f'"items": [...]}}): {exc!r}'
                ) from exc
        self.feature_names: list[str] | None = self.manifest.extra.get("feature_names")
        self.n_features = int(self.manifest.extra.get("n_features") or 0)
        self.open()
        self.index = self._open_index()

    def item_vectors(self) -> ItemVectors | None:
        """The user and item vectors of a factor model (``user . item + bias``), for
        an approximate index; ``None`` for any other model."""
        return None

    def _open_index(self) -> ItemIndex | None:
        """The version's approximate index, when it has one and enough items to need it
        (option ``exact_below``); the cells a query scans: option ``ann_probes``, else
        what ``blendserve publish`` measured its recall with."""
        path = self.directory / INDEX_FILE
        if self.users is None or not path.is_file():
            return None
        if len(self.items) < count_option(self, "exact_below", EXACT_BELOW):
            return None
        self._vectors = self.item_vectors()
        if self._vectors is None:
            raise ModelError(
                f"model {self.name!r}: {INDEX_FILE} needs a factor model (user and item "
                "vectors) to query it"
            )
        published = int((self.manifest.extra.get("ann") or {}).get("probes") or 0)
        probes = count_option(self, "ann_probes", published or FIRST_PROBES)
        index = ItemIndex.load(path, probes)
        try:
            self._retriever = Retriever(index, self._vectors)
        except ModelError as exc:
            raise ModelError(f"model {self.name!r}: {exc}") from exc
        return index

    @abstractmethod
    def open(self) -> None:
        """Open the model on its device; may set :attr:`n_features` from the model."""

    @abstractmethod
    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's output for one input batch (user indices or feature rows)."""

    def example_instances(self) -> list[Any] | None:
        """The published examples, else a row of zeros for a tensor model of known width
        (a recommender's smoke test is a recommendation)."""
        examples = super().example_instances()
        if examples is None and self.users is None and self.n_features > 0:
            return [[0.0] * self.n_features]
        return examples

    def scores(self, users: Sequence[str]) -> np.ndarray:
        """Scores ``[len(users), len(items)]``; unknown users get the cold-start row."""
        if self.users is None:
            raise ModelError(f"model {self.name!r} is not a recommender (no ids.json)")
        scores = self.run(self._user_rows(users))
        if scores.shape != (len(users), len(self.items)):
            raise ModelError(
                f"model {self.name!r}: expected scores of shape {(len(users), len(self.items))}, "
                f"got {tuple(scores.shape)}"
            )
        return scores

    def _user_rows(self, users: Sequence[str]) -> np.ndarray:
        """Each user's row; unknown users get the cold-start row."""
        assert self.users is not None
        return self.users.rows(users, missing=len(self.users))

    def top_items(self, queries: Sequence[RecommendQuery], n: int) -> list[TopItems]:
        """Top ``n`` items per user as columns, best first; the same answer every call.
        With an approximate index, the top ``n`` of the items it retrieves."""
        if self.users is None:
            raise ModelError(f"model {self.name!r} is not a recommender (no ids.json)")
        if not queries or n <= 0:
            return [TopItems([], np.zeros(0)) for _ in queries]
        if self.index is not None:
            return self._retrieved_top_items(queries, n)
        scores = self.scores([q.user_id for q in queries])
        # Best first, ties by item order: the order training measured the model in.
        best = top_k_columns(scores, n)
        picked = np.take_along_axis(scores, best, axis=1).astype(np.float64)
        return [TopItems(self.items.ids[cols], row) for cols, row in zip(best, picked, strict=True)]

    def _retrieved_top_items(self, queries: Sequence[RecommendQuery], n: int) -> list[TopItems]:
        assert self._retriever is not None
        rows = self._user_rows([q.user_id for q in queries])
        columns, scores = self._retriever.columns(rows, n)
        answers = []
        for row_columns, row_scores in zip(columns, scores, strict=True):
            kept = row_columns >= 0
            answers.append(
                TopItems(self.items.ids[row_columns[kept]], row_scores[kept].astype(np.float64))
            )
        return answers

    def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> list[float]:
        """The user's scores of ``item_ids``; an item the model does not know scores
        below every item it does, so a reranked list keeps it, last."""
        (row,) = self.scores([query.user_id])
        floor = float(row.min()) - 1.0 if row.size else 0.0
        columns = self.items.rows(item_ids, missing=-1)
        picked = np.full(len(item_ids), floor, dtype=np.float64)
        known = columns >= 0
        picked[known] = row[columns[known]]
        return picked.tolist()

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """Top ``n`` items per user, best first, as ``(item_id, score)`` pairs."""
        return [top.pairs() for top in self.top_items(queries, n)]

    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """Recommenders: the top ``predict_top_n`` per user id; tensor models: the
        model's output, one row per instance."""
        if self.users is not None:
            queries = [RecommendQuery(u) for u in to_user_ids(instances)]
            return [
                {"items": [i for i, _ in row], "scores": [s for _, s in row]}
                for row in self.recommend(queries, self.top_n)
            ]
        matrix = to_feature_matrix(instances, self.n_features, self.feature_names)
        if len(matrix) == 0:
            return []
        return self._tensor_output(matrix).tolist()  # type: ignore[no-any-return]

    def predict_array(self, matrix: np.ndarray) -> np.ndarray:
        """One score per row of a trusted float matrix, in a single model call."""
        if self.users is not None:
            raise ModelError(f"model {self.name!r} is a recommender: it takes user ids")
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ModelError(
                f"model {self.name!r} takes {self.n_features} features, got shape {matrix.shape}"
            )
        if len(matrix) == 0:
            return np.zeros(0)
        output = self._tensor_output(matrix.astype(np.float32, copy=False))
        if output.ndim == 2 and output.shape[1] == 1:
            output = output[:, 0]
        if output.ndim != 1:
            raise ModelError(
                f"model {self.name!r}: expected one score per row, got shape {output.shape}"
            )
        return output.astype(np.float64)

    def _tensor_output(self, matrix: np.ndarray) -> np.ndarray:
        """Run a tensor model and check it answered one row per input row."""
        output = self.run(matrix)
        if output.ndim == 0 or output.shape[0] != len(matrix):
            raise ModelError(
                f"model {self.name!r}: expected {len(matrix)} output rows, got shape {output.shape}"
            )
        return output

    def item_ids(self) -> Sequence[str] | None:
        """The items of ``ids.json`` (a recommender), else ``None``."""
        return self.items.ids.tolist() if self.users is not None else None

    def describe(self) -> dict[str, Any]:
        """Which shape of model this is, where it runs and what it takes."""
        return {
            **super().describe(),
            "recommender": self.users is not None,
            "scorer": self.users is not None,
            "device": str(self.device),
            "n_features": self.n_features or None,
            "feature_names": self.feature_names,
            "retrieval": "approximate" if self.index is not None else "exact",
        }
