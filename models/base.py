"""The model adapter interface every format implements.

An adapter is built from a verified artifact directory, loads it once, then answers
synchronous, framework-native batch calls. Batching across requests, async and
placement belong to ``deployments/``; an adapter never sees Ray or HTTP.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from models.errors import UnknownOptionsError
from models.store import Manifest

__all__ = ["ModelAdapter", "RecommendQuery", "Recommender", "ScoredItem", "Scorer", "TopItems"]

ScoredItem = tuple[str, float]
"""An item id and the score a model gave it; higher is better."""


@dataclass(frozen=True)
class RecommendQuery:
    """Who a recommendation is for, and the request's context features."""

    user_id: str
    context: Mapping[str, Any] = field(default_factory=dict)


class ModelAdapter(ABC):
    """Owns one model version: load it from its artifact directory, then predict.

    Subclasses set :attr:`format` (the registry key) and implement :meth:`load` and
    :meth:`predict`. ``options`` carries format-specific settings from the model's
    config (for example the torch ``device``).
    """

    format: ClassVar[str]
    curated: ClassVar[bool] = False
    """Whether the model's items are picked by people (staff picks), not learned."""
    primary_file: ClassVar[str | None] = None
    """The artifact's main file: `blendserve publish FILE` stores a lone file under it."""
    blocking: ClassVar[bool] = False
    """Whether calls wait on I/O (a remote service): hosts run them off the event loop."""
    known_options: ClassVar[frozenset[str]] = frozenset()
    """The ``options`` this format takes; any other is refused when the model loads."""

    def __init__(
        self,
        manifest: Manifest,
        directory: Path,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.manifest = manifest
        self.directory = directory
        self.options: Mapping[str, Any] = dict(options or {})

    @property
    def name(self) -> str:
        """The model's name in the store."""
        return self.manifest.name

    @property
    def version(self) -> str:
        """The version this adapter serves."""
        return self.manifest.version

    @abstractmethod
    def load(self) -> None:
        """Read the artifact into memory; called once before any prediction."""

    def check_options(self) -> None:
        """Refuse options this format does not take (:attr:`known_options`): a typo must
        not pass silently. ``load_model`` calls it before :meth:`load`."""
        unknown = sorted(set(self.options) - self.known_options)
        if unknown:
            known = sorted(self.known_options) or "none"
            raise UnknownOptionsError(
                f"model {self.name!r}: unknown options {unknown}: expected some of {known}"
            )

    @abstractmethod
    def predict(self, instances: Sequence[Any]) -> list[Any]:
        """Predict one output per instance; raise ``InputError`` naming a bad instance."""

    def predict_array(self, matrix: np.ndarray) -> np.ndarray:
        """Numeric predictions for a float matrix built by trusted code (a stack's
        features). Formats with a vectorised path override this."""
        return np.asarray(self.predict(matrix.tolist()), dtype=np.float64)

    def example_instances(self) -> list[Any] | None:
        """Inputs a new version must answer before it takes traffic (its smoke test).

        The manifest's ``extra.example_instances`` (``blendserve publish --example``)
        by default; formats that know their input width override this.
        """
        examples = self.manifest.extra.get("example_instances")
        return list(examples) if isinstance(examples, list) and examples else None

    def item_ids(self) -> Sequence[str] | None:
        """Every item this model can recommend or score, when it is keyed by item ids
        (its ``ids.json``, counts or list); ``None`` otherwise. ``blendserve validate
        --load`` and ``publish --catalog`` compare them with the catalogue."""
        return None

    def check_health(self) -> None:
        """Raise when the loaded model can no longer answer (its replica is then replaced).

        Called every few seconds by the model's replica: keep it cheap. The default
        has nothing to check; formats bound to a device override it.
        """
        return None

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/models`` shows about this model."""
        return {
            "name": self.name,
            "version": self.version,
            "format": self.format,
            "created_at": self.manifest.created_at,
            "metrics": self.manifest.metrics,
            "description": self.manifest.description,
            "recommender": isinstance(self, Recommender),
            "scorer": isinstance(self, Scorer),
        }


@dataclass(frozen=True)
class TopItems:
    """One query's recommendations as columns: item ids and their scores, best first.

    Two arrays instead of a tuple per item: cheap to build from a score matrix, to
    send between processes and to blend.
    """

    ids: Sequence[str] | np.ndarray
    """Item ids, best first (a list or a numpy array of strings)."""
    scores: np.ndarray
    """One score per id."""

    @classmethod
    def from_pairs(cls, items: Sequence[ScoredItem]) -> TopItems:
        """Columns from ``(item_id, score)`` pairs."""
        return cls([i for i, _ in items], np.array([s for _, s in items], dtype=np.float64))

    def id_list(self) -> list[str]:
        """The ids as a list of Python strings."""
        ids = self.ids
        return ids.tolist() if isinstance(ids, np.ndarray) else list(ids)

    def pairs(self) -> list[ScoredItem]:
        """The answer as ``(item_id, score)`` pairs."""
        return list(zip(self.id_list(), self.scores.tolist(), strict=True))


class Recommender(ABC):
    """A model that can produce scored candidates for users (a DAG ``source``)."""

    @abstractmethod
    def recommend(self, queries: Sequence[RecommendQuery], n: int) -> list[list[ScoredItem]]:
        """Return, for every query, up to ``n`` items, best first."""

    def top_items(self, queries: Sequence[RecommendQuery], n: int) -> list[TopItems]:
        """:meth:`recommend` as columns, which the blender reads. Formats that hold
        scores in arrays override this to skip the per-item tuples."""
        return [TopItems.from_pairs(row) for row in self.recommend(queries, n)]


class Scorer(ABC):
    """A model that scores given items for one user (a DAG ``rerank``)."""

    @abstractmethod
    def score(self, query: RecommendQuery, item_ids: Sequence[str]) -> list[float]:
        """One score per item of ``item_ids``, in order; higher is better.

        Items the model knows nothing about still get a (low) finite score, so a
        reranked list never loses an item.
        """
