"""Evaluation splits: the held-out interactions every model is measured on.

``time``: the newest share of positive interactions is held out, the way serving
meets the future. ``last``: each user's last positive interaction. Either way a
held-out pair is kept only when both its user and its item occur in training (no
model can be judged on a user or item it never saw) and the user had not already
interacted with the item in training (seen items are excluded from every list, so
they could never be found again).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import sparse

from models.errors import ConfigError

__all__ = ["Split", "last_split", "make_split", "time_split"]


@dataclass(frozen=True, eq=False)
class Split:
    """Training interactions, held-out pairs, and the index orders of the matrices."""

    train: pd.DataFrame
    """Positive interactions (``user_id``, ``item_id``, ``ts``, ``weight``)."""
    test: pd.DataFrame
    """Held-out ``(user_id, item_id, ts)``, one row per pair (its first time)."""
    method: str

    @cached_property  # read for every matrix and every score: computed once
    def users(self) -> pd.Index:
        """Training users, sorted: row ``i`` of :meth:`matrix` is ``users[i]``."""
        return pd.Index(np.sort(self.train["user_id"].unique()))

    @cached_property
    def items(self) -> pd.Index:
        """Training items, sorted: column ``j`` of :meth:`matrix` is ``items[j]``."""
        return pd.Index(np.sort(self.train["item_id"].unique()))

    def matrix(self, binary: bool = False) -> sparse.csr_matrix:
        """Users x items, summed weights (or 1 where any interaction, when ``binary``)."""
        rows = self.users.get_indexer(self.train["user_id"])
        cols = self.items.get_indexer(self.train["item_id"])
        values = (
            np.ones(len(rows))
            if binary or "weight" not in self.train
            else self.train["weight"].to_numpy(np.float64)
        )
        shape = (len(self.users), len(self.items))
        matrix = sparse.csr_matrix((values, (rows, cols)), shape=shape)
        if binary:
            matrix.data[:] = 1.0
        return matrix

    def held_out(self) -> dict[str, set[str]]:
        """Each evaluated user's held-out items."""
        return {u: set(group) for u, group in self.test.groupby("user_id")["item_id"]}

    def summary(self) -> dict[str, int | str]:
        """Counts for the manifests and the log."""
        return {
            "split": self.method,
            "train_interactions": len(self.train),
            "heldout_pairs": len(self.test),
            "heldout_users": int(self.test["user_id"].nunique()),
        }


def _evaluable(train: pd.DataFrame, candidates: pd.DataFrame, method: str) -> Split:
    pairs = candidates[["user_id", "item_id", "ts"]].drop_duplicates(["user_id", "item_id"])
    pairs = pairs[pairs["user_id"].isin(train["user_id"]) & pairs["item_id"].isin(train["item_id"])]
    seen = pd.MultiIndex.from_frame(train[["user_id", "item_id"]])
    pairs = pairs[~pd.MultiIndex.from_frame(pairs[["user_id", "item_id"]]).isin(seen)]
    if pairs.empty:
        raise ConfigError(
            f"the {method} split holds out nothing evaluable: no held-out interaction is by a "
            "user and of an item that also occur in the training part"
        )
    return Split(train.reset_index(drop=True), pairs.reset_index(drop=True), method)


def time_split(interactions: pd.DataFrame, fraction: float) -> Split:
    """Hold out the newest ``fraction`` of interactions (everything from the time the
    cut falls at, so one moment is never split across the two parts)."""
    ordered = interactions.sort_values(["ts", "user_id", "item_id"], kind="stable")
    cut = int(len(ordered) * (1.0 - fraction))
    if cut <= 0 or cut >= len(ordered):
        raise ConfigError(f"holdout.fraction={fraction} leaves one part empty")
    boundary = ordered["ts"].iloc[cut]
    train = ordered[ordered["ts"] < boundary]
    if train.empty:
        raise ConfigError("every interaction has the same time: a time split is impossible")
    return _evaluable(train, ordered[ordered["ts"] >= boundary], "time")


def last_split(interactions: pd.DataFrame) -> Split:
    """Hold out each user's last interaction (by time, ties by item id); users with a
    single interaction keep it for training."""
    ordered = interactions.sort_values(["user_id", "ts", "item_id"], kind="stable")
    is_last = ~ordered["user_id"].duplicated(keep="last")
    has_history = ordered["user_id"].duplicated(keep=False)
    held = (is_last & has_history).to_numpy()
    return _evaluable(ordered[~held], ordered[held], "last")


def make_split(interactions: pd.DataFrame, method: str, fraction: float) -> Split:
    """:func:`time_split` or :func:`last_split` by name."""
    if method == "time":
        return time_split(interactions, fraction)
    if method == "last":
        return last_split(interactions)
    raise ConfigError(f"holdout.method: expected 'time' or 'last', got {method!r}")
