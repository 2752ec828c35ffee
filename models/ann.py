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

Items without a vector (all zeros: what training leaves for an item nobody
interacted with, often most of a large catalogue) score their bias for every user;
they are kept out of the index, whose cells they would swell into one that every
query scanning it reads whole, and the best of them by bias join every query's
candidates instead (:class:`Retriever`). A query asks the index for
:data:`OVERFETCH` times the items wanted and scores them exactly.

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
    "OVERFETCH",
    "TARGET_RECALL",
    "ItemIndex",
    "ItemVectors",
    "Retriever",
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
OVERFETCH = 2
"""A query asks the index for this many times the items wanted, then scores them
exactly: the transformed distances lose the last digits of a score in float32 (each
is ``M^2 + |user|^2 - 2 score``), so near the cut the index's own order is noise."""
_CHUNK = 65_536


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

    def varying(self) -> np.ndarray:
        """Columns of the items that have a vector: the others (all zeros, what
        training leaves for an item nobody interacted with) score their bias for every
        user, so an index need not hold them (:class:`Retriever`)."""
        chunks = [
            np.flatnonzero(np.any(self.items[at : at + _CHUNK] != 0, axis=1)) + at
            for at in range(0, len(self.items), _CHUNK)
        ]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)

    def searchable_items(self, columns: np.ndarray | None = None) -> np.ndarray:
        """Item rows (all, or ``columns``) in which the nearest is the best scored (see
        the module)."""
        items = self.items if columns is None else self.items[columns]
        bias = self.bias if columns is None else self.bias[columns]
        with_bias = np.hstack([items, bias[:, None]]).astype(np.float32)
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
        self.probes = 0
        """Cells a query scans (more: better recall, slower)."""
        self.set_probes(probes)

    def set_probes(self, probes: int) -> None:
        """Scan ``probes`` cells a query (at least one, at most all)."""
        inverted = _faiss().extract_index_ivf(self.index)
        self.probes = max(1, min(probes, int(inverted.nlist)))
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
        """Cluster the items that have a vector into cells and file each in its cell,
        under its column (items without a vector are left to :class:`Retriever`)."""
        faiss = _faiss()
        members = vectors.varying()
        if len(members) == 0:  # a model that learned nothing: index everything
            members = np.arange(len(vectors.items))
        items = vectors.searchable_items(members)
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
        index.add_with_ids(items, members.astype(np.int64))
        return cls(index, probes)

    def save(self, path: Path) -> None:
        """Write the index (``probes`` travels in the manifest, not the file)."""
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, probes: int) -> ItemIndex:
        """Read an index written by :meth:`save` to serve from. Its item vectors are
        mapped from the file, read-only, not copied: the processes of a node that
        serve the same version share one copy in the page cache."""
        faiss = _faiss()
        # One thread: a serving replica owns a fraction of a core, and OpenMP's
        # spinning threads would take the cores the other replicas answer on.
        faiss.omp_set_num_threads(1)
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
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


class Retriever:
    """Two-stage retrieval for one model version: the index's candidates (``OVERFETCH``
    times the items wanted) and the best of the items without a vector (every user
    scores them their bias), all scored exactly, the best ``n`` kept."""

    def __init__(self, index: ItemIndex, vectors: ItemVectors) -> None:
        self.index = index
        self.vectors = vectors
        n_items = len(vectors.items)
        constant = np.zeros(0, dtype=np.int64)
        if index.size < n_items:  # an index of the items with a vector
            varying = vectors.varying()
            if len(varying) != index.size:
                raise ModelError(
                    f"{INDEX_FILE} holds {index.size} items, the model {len(varying)} with "
                    f"a vector (of {n_items}): the index is not this model's"
                )
            constant = np.setdiff1d(np.arange(n_items), varying)
        elif index.size > n_items:
            raise ModelError(f"{INDEX_FILE} holds {index.size} items, ids.json {n_items}")
        self._constant = constant[np.argsort(-vectors.bias[constant], kind="stable")]
        """Items without a vector, the largest bias first."""

    def columns(self, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``[B, n]`` item columns and their exact scores for each user row, best first
        (ties by the lower column); ``-1`` columns and ``-inf`` scores pad a row."""
        found = self.index.candidates(self.vectors.searchable_users(rows), OVERFETCH * n)
        extra = self._constant[:n]
        if len(extra):
            found = np.hstack([found, np.broadcast_to(extra, (len(rows), len(extra)))])
        columns, scores = ranked(self.vectors.scores(rows, np.maximum(found, 0)), found)
        return columns[:, :n], scores[:, :n]


def recall_against_exact(
    retriever: Retriever, k: int = 100, users: int = 500, seed: int = 0
) -> float:
    """Recall@k of the retriever against exact scoring, over sampled users: the share
    of the ``k`` items it retrieves that score at least the exact ``k``-th best score
    (so that items tied at the cut count whichever of them come back, as
    ann-benchmarks counts them)."""
    vectors = retriever.vectors
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(vectors.users), min(users, len(vectors.users)), replace=False)
    correct = 0
    for start in range(0, len(rows), 64):
        batch = rows[start : start + 64]
        exact = vectors.users[batch] @ vectors.items.T + vectors.bias
        kth = -np.partition(-exact, k - 1, axis=1)[:, k - 1]
        got, _ = retriever.columns(batch, k)
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
    retriever = Retriever(index, vectors)
    recall = recall_against_exact(retriever)
    while recall < target and index.probes < index.cells:
        index.set_probes(index.probes * 2)
        recall = recall_against_exact(retriever)
    index.save(path)
    return {
        "index": f"IVF{index.cells},Flat (largest score as nearest neighbour)",
        "items": len(vectors.items),
        "indexed": index.size,
        "probes": index.probes,
        "recall_at_100": round(recall, 4),
    }
