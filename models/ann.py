"""Approximate nearest-neighbour retrieval over a factor model's item vectors (faiss).

A factor model scores ``user . item + bias`` for every item: fine for the demo's
2,000 items, a matrix product per request over a million. Two-stage retrieval asks an
index for the few hundred items with the largest score instead, then scores only
those exactly.

The largest inner product is not the nearest neighbour, so the vectors are first
made so that it is (Bachrach et al. 2014): an item becomes ``[item, bias, sqrt(M^2 -
|item, bias|^2)]`` (``M`` the largest item norm) and a user ``[user, 1, 0]``; every
item then has norm ``M``, and the nearest item in Euclidean distance is the one with
the largest score. The index is an inverted file over those vectors (faiss
``IndexIVFFlat``, exact vectors): k-means cells, a query scans the ``probes`` cells
nearest to it. ``make bench-scale --compare`` measured four indexes on ALS vectors of
100,000 items (BENCHMARKS.md, "Scale"): this one reached recall@100 0.999 at 512
probes in 0.17 ms a query; the same over the raw vectors with inner products 0.94 in
0.82 ms; HNSW graphs 0.95 in 2.5 ms (transformed) and 0.47 (inner products): a
trained model's many items without clicks share one vector, which a graph cannot
link, while an inverted file puts them in one cell.

``blendserve publish`` builds it next to the model's files (``ann.faiss``), so each
model version carries its own index, and doubles ``probes`` until the recall
against exact scoring reaches :data:`TARGET_RECALL`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from models.errors import ModelError

__all__ = [
    "INDEX_FILE",
    "TARGET_RECALL",
    "ItemIndex",
    "ItemVectors",
    "build_tuned",
    "ranked",
    "recall_against_exact",
]

INDEX_FILE = "ann.faiss"
"""The index's file in a model version's directory."""

TARGET_RECALL = 0.95
"""Recall@100 against exact scoring that :func:`build_tuned` searches enough for."""

FIRST_PROBES = 8
"""Where :func:`build_tuned` starts doubling the cells a query scans."""
_TRAINING_POINTS_PER_CELL = 64
"""Items k-means sees per cell (faiss warns below 39): more buys nothing measurable."""


def _faiss() -> ModuleType:
    """faiss, imported on first use: 24 MiB in every process that merely loads a
    tensor model, most of which never query an index."""
    import faiss

    return faiss


@dataclass(frozen=True)
class ItemVectors:
    """A factor model's vectors: ``user . item + bias`` is its score."""

    users: np.ndarray
    """``float32[n_users + 1, d]``; the last row is the cold-start user."""
    items: np.ndarray
    """``float32[n_items, d]``."""
    bias: np.ndarray
    """``float32[n_items]``."""

    def scores(self, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``float32[B, n]``: each user row's exact scores of its ``n`` columns."""
        picked = self.items[columns]  # [B, n, d]
        users = self.users[rows]
        scores: np.ndarray = np.einsum("bd,bnd->bn", users, picked) + self.bias[columns]
        return scores

    def searchable_items(self) -> np.ndarray:
        """Item rows in which the nearest is the best scored (see the module)."""
        with_bias = np.hstack([self.items, self.bias[:, None]]).astype(np.float32)
        norms = np.einsum("ij,ij->i", with_bias, with_bias)
        lift = np.sqrt(np.maximum(norms.max() - norms, 0.0))
        return np.ascontiguousarray(np.hstack([with_bias, lift[:, None]]), dtype=np.float32)

    def searchable_users(self, rows: np.ndarray) -> np.ndarray:
        """User rows matching :meth:`searchable_items`: a 1 for the bias, a 0."""
        picked = self.users[rows]
        ones, zeros = np.ones((len(picked), 1)), np.zeros((len(picked), 1))
        return np.ascontiguousarray(np.hstack([picked, ones, zeros]), dtype=np.float32)


class ItemIndex:
    """An inverted file over a model's items, searched by nearest neighbour."""

    def __init__(self, index: Any, probes: int) -> None:
        self.index = index
        """The faiss index."""
        inverted = _faiss().extract_index_ivf(index)
        self.probes = max(1, min(probes, int(inverted.nlist)))
        """Cells a query scans (more: better recall, slower)."""
        inverted.nprobe = self.probes

    @property
    def size(self) -> int:
        """Items in the index."""
        return int(self.index.ntotal)

    @property
    def cells(self) -> int:
        """The k-means cells the items are in."""
        return int(_faiss().extract_index_ivf(self.index).nlist)

    @staticmethod
    def cells_for(n_items: int) -> int:
        """Cells for ``n_items``: about four times the square root, faiss's advice."""
        return max(1, min(n_items // _TRAINING_POINTS_PER_CELL, int(4 * np.sqrt(n_items))))

    @classmethod
    def build(cls, vectors: ItemVectors, probes: int = FIRST_PROBES, seed: int = 0) -> ItemIndex:
        """Cluster the items into cells and file each in its cell."""
        faiss = _faiss()
        items = vectors.searchable_items()
        cells = cls.cells_for(len(items))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(items.shape[1]), items.shape[1], cells)
        index.cp.seed = seed  # the same model always gets the same index
        sample = items
        if len(items) > cells * _TRAINING_POINTS_PER_CELL:
            rows = np.random.default_rng(seed).choice(
                len(items), cells * _TRAINING_POINTS_PER_CELL, replace=False
            )
            sample = items[np.sort(rows)]
        index.train(sample)
        index.add(items)
        return cls(index, probes)

    def save(self, path: Path) -> None:
        """Write the index (``probes`` travels in the manifest, not the file)."""
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, probes: int) -> ItemIndex:
        """Read an index written by :meth:`save` to serve from (each process holds its
        own copy)."""
        faiss = _faiss()
        # One thread: a serving replica owns a fraction of a core, and OpenMP's
        # spinning threads would take the cores the other replicas answer on.
        faiss.omp_set_num_threads(1)
        try:
            index = faiss.read_index(str(path))
            return cls(index, probes)
        except RuntimeError as exc:
            raise ModelError(f"{path}: not a faiss inverted-file index: {exc}") from exc

    def candidates(self, queries: np.ndarray, n: int) -> np.ndarray:
        """``int64[B, n]`` item columns nearest each query (``-1`` pads a row the
        scanned cells could not fill)."""
        _, columns = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), n)
        return np.asarray(columns, dtype=np.int64)


def ranked(scores: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``columns`` and ``scores`` best first, ties by lower column (the order
    exact scoring gives), ``-1`` columns last."""
    scores = np.where(columns >= 0, scores, -np.inf)
    order = np.lexsort((columns, -scores), axis=1)
    return np.take_along_axis(columns, order, axis=1), np.take_along_axis(scores, order, axis=1)


def recall_against_exact(
    index: ItemIndex, vectors: ItemVectors, k: int = 100, users: int = 500, seed: int = 0
) -> float:
    """Recall@k of the index against exact scoring, over sampled users: the share of
    the ``k`` items it retrieves that score at least the exact ``k``-th best score
    (so that items tied at the cut count whichever of them come back, as
    ann-benchmarks counts them)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors.users), min(users, len(vectors.users)), replace=False)
    correct = 0
    for start in range(0, len(rows), 64):
        batch = rows[start : start + 64]
        exact = vectors.users[batch] @ vectors.items.T + vectors.bias
        kth = -np.partition(-exact, k - 1, axis=1)[:, k - 1]
        got = index.candidates(vectors.searchable_users(batch), k)
        found = np.take_along_axis(exact, np.maximum(got, 0), axis=1)
        tolerance = 1e-5 * np.maximum(1.0, np.abs(kth))[:, None]
        correct += int(((found >= kth[:, None] - tolerance) & (got >= 0)).sum())
    return correct / (len(rows) * k)


def build_tuned(
    vectors: ItemVectors, path: Path, target: float = TARGET_RECALL
) -> dict[str, float | int | str]:
    """Build an index of ``vectors`` into ``path``, doubling the cells a query scans
    until recall@100 against exact scoring reaches ``target`` (or it scans them all);
    what was built and measured, for the model's manifest."""
    index = ItemIndex.build(vectors)
    recall = recall_against_exact(index, vectors)
    while recall < target and index.probes < index.cells:
        index = ItemIndex(index.index, index.probes * 2)
        recall = recall_against_exact(index, vectors)
    index.save(path)
    return {
        "index": f"IVF{index.cells},Flat (largest score as nearest neighbour)",
        "items": index.size,
        "probes": index.probes,
        "recall_at_100": round(recall, 4),
    }
