"""Recommendations computed in bulk ahead of time (``blendserve batch-score``), served
by lookup.

The artifact is a flat directory of Parquet files with ``user_id`` (string),
``item_ids`` (list of strings) and ``scores`` (list of floats), best first: what
Ray Data's ``write_parquet`` leaves. The manifest's ``extra`` says when the lists
were computed (``computed_at``, unix seconds) and from which model and version.

A user missing from the table gets no items: the ``source`` node's
``fallback_model`` then scores them on request (blending/request_run.py). Lists stay
in Arrow buffers (one contiguous string buffer, not a Python object per item) and
users in an :class:`~models.id_table.IdTable`; a lookup slices one row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem, TopItems
from models.errors import ModelError
from models.id_table import IdTable

__all__ = ["PrecomputedAdapter"]

_COLUMNS = ["user_id", "item_ids", "scores"]
_NONE = TopItems((), np.zeros(0))


class PrecomputedAdapter(ModelAdapter, Recommender):
    """Each known user's precomputed list; nothing for anyone else."""

    format = "precomputed"

    def load(self) -> None:
        """Read every Parquet file of the version into one table."""
        files = sorted(self.directory.glob("*.parquet"))
        if not files:
            raise ModelError(f"model {self.name!r}: no .parquet files in {self.directory}")
        try:
            table = pa.concat_tables(pq.read_table(f, columns=_COLUMNS) for f in files)
        except (pa.ArrowInvalid, KeyError, OSError) as exc:
            raise ModelError(f"model {self.name!r}: expected columns {_COLUMNS}: {exc}") from exc
        table = table.combine_chunks()
        self.users = IdTable(table["user_id"].to_pylist())
        self._items: pa.ListArray = table["item_ids"].chunk(0)
        self._scores: pa.ListArray = table["scores"].chunk(0)
        if not pc.all(
            pc.equal(pc.list_value_length(self._items), pc.list_value_length(self._scores))
        ).as_py():
            raise ModelError(f"model {self.name!r}: item_ids and scores differ in length")
        computed = self.manifest.extra.get("computed_at")
        self.computed_at: float | None = float(computed) if computed is not None else None
        """When the lists were computed (unix seconds), for the age metric."""

    def age_s(self, now: float | None = None) -> float | None:
        """How old the lists are, in seconds (``None``: unknown)."""
        if self.computed_at is None:
            return None
        return (time.time() if now is None else now) - self.computed_at

    def top_items(self, queries: Sequence[RecommendQuery], n: int) -> list[TopItems]:
        """Each user's first ``n`` precomputed items; none for an unknown user."""
        rows = self.users.rows([q.user_id for q in queries], -1).tolist()
        answers = []
        for row in rows:
            if row < 0:
                answers.append(_NONE)
                continue
            items = self._items[row].values[:n]
            scores = self._scores[row].values[:n]
            answers.append(TopItems(items.to_pylist(), scores.to_numpy().astype(np.float64)))
        return answers

    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """:meth:`top_items` as pairs."""
        return [top.pairs() for top in self.top_items(queries, n)]

    def item_ids(self) -> Sequence[str]:
        """Every item some list holds."""
        items: list[str] = pc.unique(self._items.flatten()).to_pylist()
        return items

    def predict(self, instances: Sequence[object]) -> list[object]:
        """Each user id's list, as ``{"items": [...], "scores": [...]}``."""
        users = [str(i) for i in instances]
        return [
            {"items": top.id_list(), "scores": top.scores.tolist()}
            for top in self.top_items([RecommendQuery(u, {}) for u in users], 1_000_000)
        ]

    def describe(self) -> dict[str, object]:
        """The base description, plus the lists' source and age."""
        described = super().describe()
        described.update(
            users=len(self.users),
            source_model=self.manifest.extra.get("source_model"),
            source_version=self.manifest.extra.get("source_version"),
            age_s=self.age_s(),
        )
        return described
