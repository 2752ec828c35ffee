"""Simulated logged feedback: what a feed showed at each held-out click, and what was clicked.

Real feedback logs hold impressions, not just clicks. The demo has only clicks, so
for each held-out click this module invents the feed around it: the clicked item
(label 1) and a few items the user never clicked (label 0), drawn in proportion to
their training popularity, since a feed mostly shows what is popular. Offline
evaluation of rerankers reads this file like a log.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import ConfigError

__all__ = ["FEEDBACK_COLUMNS", "simulate_feedback"]

FEEDBACK_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "label", "ts")
"""Columns of a feedback frame: ids as strings, ``label`` int8 (0/1), ``ts`` UTC."""


def simulate_feedback(
    train: pd.DataFrame, test: pd.DataFrame, seed: int, negatives: int = 4
) -> pd.DataFrame:
    """One impression group per ``test`` click: the click, then ``negatives`` non-clicks.

    Non-clicks are distinct items the user clicked neither in ``train`` nor in
    ``test``, drawn without replacement with probability proportional to their
    ``train`` click count (never-clicked items are never drawn); a user who has
    clicked nearly everything gets fewer. Every row of a group carries the click's
    ``ts``. Groups follow ``test`` sorted by user, time and item, so the same inputs
    and seed give the same frame whatever the input order.
    """
    if negatives < 0:
        raise ConfigError(f"negatives: expected a count >= 0, got {negatives}")
    counts = train["item_id"].astype(str).value_counts().sort_index()
    pool = counts.index.to_numpy(dtype=object)
    weight = counts.to_numpy(np.float64)
    held_out = test.sort_values(["user_id", "ts", "item_id"], kind="stable", ignore_index=True)

    clicked = pd.concat([train[["user_id", "item_id"]], test[["user_id", "item_id"]]])
    clicked_rows = clicked.assign(
        user_id=clicked["user_id"].astype(str), row=counts.index.get_indexer(clicked["item_id"])
    )
    clicked_rows = clicked_rows[clicked_rows["row"] >= 0]
    seen: dict[str, np.ndarray] = {
        str(user): group.to_numpy(np.int64)
        for user, group in clicked_rows.groupby("user_id", sort=True)["row"]
    }

    rng = np.random.default_rng(seed)
    users: list[str] = []
    items: list[str] = []
    labels: list[int] = []
    times: list[pd.Timestamp] = []
    no_rows = np.empty(0, dtype=np.int64)
    for user, item, ts in zip(
        held_out["user_id"].astype(str),
        held_out["item_id"].astype(str),
        held_out["ts"],
        strict=True,
    ):
        # Weighted sampling without replacement (Efraimidis-Spirakis): the largest
        # log(u) / weight keys win; items the user clicked can never win.
        keys = np.log(rng.random(len(pool))) / weight
        keys[seen.get(user, no_rows)] = -np.inf
        k = min(negatives, int(np.isfinite(keys).sum()))
        drawn = np.argsort(-keys, kind="stable")[:k]
        users.extend([user] * (k + 1))
        items.extend([item, *pool[drawn]])
        labels.extend([1] + [0] * k)
        times.extend([ts] * (k + 1))
    return pd.DataFrame(
        {
            "user_id": pd.Series(users, dtype=object),
            "item_id": pd.Series(items, dtype=object),
            "label": np.asarray(labels, dtype=np.int8),
            "ts": pd.to_datetime(pd.Series(times, dtype=test["ts"].dtype), utc=True),
        }
    )
