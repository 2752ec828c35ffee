"""Item-to-item models (EASE, item-kNN): a weight matrix over items and the users'
histories (``weights.npz``, ``history.npz``, ``ids.json``).

A user's score for item j is the sum, over the items i in their history, of
``weight[i, j]``: ``scores = history_row @ weights``. Both matrices are scipy
sparse CSR (``scipy.sparse.save_npz``), ``history`` ``[n_users, n_items]`` and
``weights`` ``[n_items, n_items]``; ``ids.json`` names the rows and columns. A user
the model has never seen gets the mean history row (close to popularity, through
the weights).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from models.errors import ModelError
from models.formats.tensor_adapter import TensorModelAdapter

__all__ = ["ItemItemAdapter", "item_item_scores"]


def item_item_scores(
    history: sparse.csr_matrix, weights: sparse.csr_matrix, cold: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """Scores ``[len(rows), n_items]``; a row index of ``history.shape[0]`` is a user
    never seen, scored with ``cold`` (the mean history row times the weights)."""
    known = rows < history.shape[0]
    out = np.empty((len(rows), weights.shape[1]), dtype=np.float32)
    if known.any():
        out[known] = (history[rows[known]] @ weights).toarray()
    out[~known] = cold
    return out


def cold_scores(history: sparse.csr_matrix, weights: sparse.csr_matrix) -> np.ndarray:
    """The mean history row through the weights."""
    mean = sparse.csr_matrix(np.asarray(history.mean(axis=0), dtype=np.float32))
    # Sparse times sparse: the items x items weights are never made dense.
    return np.asarray((mean @ weights.astype(np.float32)).toarray(), dtype=np.float32).ravel()


class ItemItemAdapter(TensorModelAdapter):
    """An item-to-item recommender, scored with scipy's sparse products."""

    format = "item_item"
    primary_file = "weights.npz"

    def open(self) -> None:
        """Read both matrices and check them against ``ids.json``."""
        self.device = "cpu"
        if self.users is None:
            raise ModelError(f"model {self.name!r}: the item_item format needs ids.json")
        try:
            weights = sparse.load_npz(self.directory / "weights.npz").tocsr().astype(np.float32)
            history = sparse.load_npz(self.directory / "history.npz").tocsr().astype(np.float32)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"model {self.name!r}: cannot read weights.npz and history.npz: {exc}"
            ) from exc
        n_users, n_items = len(self.users), len(self.items)
        if weights.shape != (n_items, n_items) or history.shape != (n_users, n_items):
            raise ModelError(
                f"model {self.name!r}: weights {weights.shape} and history {history.shape} "
                f"do not fit {n_users} users and {n_items} items in ids.json"
            )
        self._weights = weights
        self._history = history
        self._cold = cold_scores(history, weights)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Scores of every item for a batch of user rows."""
        return item_item_scores(self._history, self._weights, self._cold, batch)
