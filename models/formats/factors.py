"""Matrix-factorisation output as plain arrays (``factors.npz`` + ``ids.json``).

What most matrix-factorisation libraries produce (``implicit``, LightFM, Spark ALS,
a notebook's SVD): ``user_factors`` ``[n_users, d]`` and ``item_factors``
``[n_items, d]``, optionally ``item_bias`` ``[n_items]``, saved with
``numpy.savez``; ``ids.json`` (``{"users": [...], "items": [...]}``) names the rows.
A user's score for an item is ``user . item + bias``. Users the model has never
seen get the mean user vector; with ``n_users + 1`` user rows, the last one is the
cold-start row instead.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from models.ann import ItemVectors
from models.errors import ModelError
from models.formats.mapped_npz import map_npz
from models.formats.tensor_adapter import EXACT_BELOW, TensorModelAdapter

__all__ = ["FactorsAdapter", "read_factors", "save_factors"]


def save_factors(
    path: str,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    item_bias: np.ndarray | None,
    cold_row: bool = True,
) -> None:
    """Write ``factors.npz`` as this format reads it (float32), with the cold-start
    user row (the mean user) unless ``cold_row`` is false: a file with it is served
    straight from the page cache, one without it needs a copy of the user matrix."""
    users = np.asarray(user_factors, dtype=np.float32)
    if cold_row:
        users = np.vstack([users, users.mean(axis=0, keepdims=True)])
    arrays = {
        "user_factors": users,
        "item_factors": np.asarray(item_factors, dtype=np.float32),
    }
    if item_bias is not None:
        arrays["item_bias"] = np.asarray(item_bias, dtype=np.float32)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub wants positional arrays


def read_factors(directory: Path, n_users: int, n_items: int, name: str) -> ItemVectors:
    """``directory/factors.npz`` checked against ``n_users`` and ``n_items`` (ids.json),
    with its cold-start user row (the mean user when the file has none).

    The arrays are mapped from the file, not read (:func:`map_npz`): the processes of a
    node that serve the same version share one copy. Arrays that are not float32, and
    a user matrix without its cold-start row, are copied."""
    try:
        arrays = map_npz(directory / "factors.npz")
        users = np.asarray(arrays["user_factors"], dtype=np.float32)
        items = np.asarray(arrays["item_factors"], dtype=np.float32)
        bias = (
            np.asarray(arrays["item_bias"], dtype=np.float32)
            if "item_bias" in arrays
            else np.zeros(len(items), dtype=np.float32)
        )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelError(
            f"model {name!r}: factors.npz needs user_factors and item_factors: {exc}"
        ) from exc
    if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
        raise ModelError(
            f"model {name!r}: factor shapes {users.shape} and {items.shape} "
            "do not share a dimension"
        )
    if items.shape[0] != n_items or bias.shape != (n_items,):
        raise ModelError(
            f"model {name!r}: {items.shape[0]} item rows for {n_items} items in ids.json"
        )
    if users.shape[0] == n_users:
        users = np.vstack([users, users.mean(axis=0, keepdims=True)])
    if users.shape[0] != n_users + 1:
        raise ModelError(
            f"model {name!r}: {users.shape[0]} user rows for {n_users} users in ids.json"
        )
    return ItemVectors(users, items, bias)


class FactorsAdapter(TensorModelAdapter):
    """A recommender from user and item factor matrices, scored with numpy."""

    format = "factors"
    primary_file = "factors.npz"

    def open(self) -> None:
        """Read the factors and check them against ``ids.json``."""
        self.device = "cpu"
        if self.users is None:
            raise ModelError(f"model {self.name!r}: the factors format needs ids.json")
        self._vectors = read_factors(self.directory, len(self.users), len(self.items), self.name)
        # A contiguous transposed copy makes the small catalogue's exact product a
        # little faster; a large one is shared from the page cache instead (and
        # retrieved through its index): the copy would be private to each process.
        transposed = self._vectors.items.T
        if len(self.items) < EXACT_BELOW:
            transposed = np.ascontiguousarray(transposed)
        self._item_factors_t = transposed

    def item_vectors(self) -> ItemVectors:
        """The factors themselves."""
        assert self._vectors is not None
        return self._vectors

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Scores of every item for a batch of user rows."""
        assert self._vectors is not None
        scores: np.ndarray = self._vectors.users[batch] @ self._item_factors_t + self._vectors.bias
        return scores
