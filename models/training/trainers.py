"""The standard models' trainers, one function each: from a split to the files of one
artifact, its metrics on the split and its manifest's text. :mod:`models.training.pipeline`
runs them in :data:`TRAINERS` order and publishes what they return."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.training.collaborative import choose_collaborative
from models.training.data_config import HoldoutConfig, TrainingConfig
from models.training.dataset import InteractionData
from models.training.measure import score_split
from models.training.split import Split

__all__ = ["TRAINERS", "Trained", "TrainingContext", "pick_staff_favourites"]

_N_STAFF_PICKS = 20
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trained:
    """One trained artifact, before it is published."""

    format: str
    files: dict[str, Path]
    metrics: dict[str, float]
    description: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainingContext:
    """What every trainer reads: the dataset, its split, the settings, and popularity's
    metrics to compare against."""

    data: InteractionData
    split: Split
    holdout: HoldoutConfig
    training: TrainingConfig
    popularity: dict[str, float] = field(init=False)
    """Popularity's metrics on the split, which every manifest compares against."""

    def __post_init__(self) -> None:
        self.popularity = self.score(_constant(_counts(self.split)))

    def score(self, score_rows: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        """A scorer's metrics on the split, coverage over every item of the dataset."""
        return score_split(self.split, score_rows, self.training.k, len(self.data.items))


def _counts(split: Split) -> np.ndarray:
    """Training interactions per item, in the split's item order."""
    counts: np.ndarray = (
        split.train["item_id"].value_counts().reindex(split.items).to_numpy(np.float64)
    )
    return counts


def _constant(scores: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rows: np.broadcast_to(scores, (len(rows), len(scores)))


def _popularity(ctx: TrainingContext, workdir: Path) -> Trained:
    counts = ctx.split.train["item_id"].value_counts()
    table = pa.table(
        {
            "item_id": pa.array(counts.index.astype(str), pa.string()),
            "count": pa.array(counts.to_numpy(), pa.int64()),
        }
    )
    pq.write_table(table, workdir / "counts.parquet")
    return Trained(
        format="popularity",
        files={"counts.parquet": workdir / "counts.parquet"},
        metrics=ctx.popularity,
        description="Most-interacted items first, the same for every user (the baseline to beat).",
        extra={"n_interactions": int(counts.sum())},
    )


def _against_popularity(ctx: TrainingContext, metrics: dict[str, float]) -> dict[str, float]:
    k = ctx.training.k
    return {**metrics, f"popularity_recall_at_{k}": ctx.popularity[f"recall_at_{k}"]}


def _mf(ctx: TrainingContext, workdir: Path) -> Trained:
    k = ctx.training.k
    best, candidates = choose_collaborative(
        ctx.split,
        list(ctx.training.collaborative),
        validation=ctx.holdout.validation,
        k=k,
        seed=ctx.training.seed,
        ease_max_items=ctx.training.ease_max_items,
        catalogue_size=len(ctx.data.items),
    )
    assert best.fitted is not None
    fmt, files, shape = best.fitted.export(
        workdir, [str(u) for u in ctx.split.users], [str(i) for i in ctx.split.items]
    )
    return Trained(
        format=fmt,
        files=files,
        metrics=_against_popularity(ctx, best.test),
        description=(
            f"The collaborative model: {best.name} {best.params}, the best of "
            f"{', '.join(c.name for c in candidates)} on the validation split."
            if len(candidates) > 1 or best.validation
            else f"The collaborative model: {best.name} {best.params}, as configured."
        ),
        extra={
            "algorithm": best.name,
            "params": best.params,
            **shape,
            "candidates": {c.name: c.record() for c in candidates},
        },
    )


def pick_staff_favourites(items: pd.DataFrame, clicks: pd.DataFrame, n: int) -> list[str]:
    """The most-clicked recent items, taking one per category in turn (deterministic).

    'Recent' starts as the week before the newest clicked item and widens until there
    are at least ``2 * n`` clicked candidates, so sparse data still fills the list.
    """
    counts = clicks["item_id"].value_counts().rename("clicks")
    candidates = items.merge(counts, left_on="item_id", right_index=True)
    # Relative to the newest clicked item, not the newest click: clicks trail on for
    # days after publishing stops, and "this week" means this week's items.
    newest = candidates["published_at"].max()
    for days in (7, 14, 30, 90, 365, None):
        recent = candidates
        if days is not None:
            recent = candidates[candidates["published_at"] >= newest - pd.Timedelta(days=days)]
        if len(recent) >= 2 * n:
            break
    ranked = recent.sort_values(["clicks", "item_id"], ascending=[False, True])
    ranked = ranked.assign(turn=ranked.groupby("category", sort=False).cumcount())
    ranked = ranked.sort_values(["turn", "clicks", "item_id"], ascending=[True, False, True])
    return [str(i) for i in ranked["item_id"].head(n)]


def _staff_picks(ctx: TrainingContext, workdir: Path) -> Trained:
    picks = pick_staff_favourites(ctx.data.items, ctx.split.train, _N_STAFF_PICKS)
    (workdir / "items.json").write_text(
        json.dumps({"items": picks}, indent=1) + "\n", encoding="utf-8"
    )
    ranked = np.zeros(len(ctx.split.items))
    known = ctx.split.items.get_indexer(picks)
    ranked[known[known >= 0]] = np.arange(len(picks), 0, -1)[known >= 0]
    metrics = ctx.score(_constant(ranked))
    return Trained(
        format="curated",
        files={"items.json": workdir / "items.json"},
        metrics=_against_popularity(ctx, metrics),
        description=(
            f"Staff picks: the {len(picks)} most-read recent items, one category at a time."
        ),
        extra={"n_picks": len(picks)},
    )


def _click_model(ctx: TrainingContext, workdir: Path) -> Trained | None:
    from models.demo.click_features import (  # deferred: scikit-learn
        CLICK_FEATURES,
        click_feature_tables,
        fit_click_model,
    )

    if (ctx.data.items["category"] == "unknown").all():
        _log.info("click_model: skipped (the items have no categories to learn from)")
        return None
    fitted = fit_click_model(ctx.data.items, ctx.split.train, seed=ctx.training.seed)
    joblib.dump(fitted.pipeline, workdir / "model.joblib")
    (workdir / "features.json").write_text(
        json.dumps({"feature_names": list(CLICK_FEATURES)}) + "\n", encoding="utf-8"
    )
    # The tables serving needs to rebuild the features, from the same training clicks.
    items, user_categories = click_feature_tables(ctx.data.items, ctx.split.train)
    pq.write_table(pa.Table.from_pandas(items, preserve_index=False), workdir / "items.parquet")
    pq.write_table(
        pa.Table.from_pandas(user_categories, preserve_index=False),
        workdir / "user_categories.parquet",
    )
    as_of = ctx.split.train["ts"].max()
    names = ("model.joblib", "features.json", "items.parquet", "user_categories.parquet")
    return Trained(
        format="click_ranker",
        files={name: workdir / name for name in names},
        metrics={"auc": fitted.auc},
        description=(
            "Click probability (standardised logistic regression) from category affinity, "
            "item popularity, item age and hour of day; negatives are unclicked recent items. "
            "Reranks any items for a user at request time."
        ),
        extra={
            "feature_names": list(CLICK_FEATURES),
            "n_examples": fitted.n_examples,
            # Whole seconds: the features are, and fromisoformat reads no nanoseconds.
            "as_of": pd.Timestamp(as_of).floor("s").isoformat(),
        },
    )


TRAINERS: dict[str, Callable[[TrainingContext, Path], Trained | None]] = {
    "popularity": _popularity,
    "mf": _mf,
    "click_model": _click_model,
    "staff_picks": _staff_picks,
}
"""Each standard model's trainer; popularity first, since the others' manifests
compare against it."""
