"""Train the standard models on one dataset, measure them on one split, publish them.

===============  ============================  ===========================================
model            format                        what it is
===============  ============================  ===========================================
``mf``           item_item, factors or         the collaborative model: the candidate
                 torchscript                   (EASE, ALS, BPR) best on validation
``popularity``   popularity                    interaction counts, the baseline to beat
``staff_picks``  curated                       the most-read recent items, one category at
                                               a time
``click_model``  click_ranker                  click probability from item and user
                                               features (when items have categories)
===============  ============================  ===========================================

Every recommender is measured on the same held-out pairs with each user's training
items excluded, with :mod:`models.metrics` (what ``blendserve evaluate`` uses), and
its manifest records the numbers beside popularity's. ``blendserve train`` is
:func:`train_from_config`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.ann import INDEX_FILE, ItemVectors
from models.errors import ConfigError, VersionExistsError
from models.formats.factors import read_factors
from models.publish import index_beside
from models.store import ArtifactStore, Manifest
from models.training.collaborative import choose_collaborative
from models.training.data_config import (
    DataConfig,
    HoldoutConfig,
    TrainingConfig,
    load_data_config,
)
from models.training.dataset import InteractionData
from models.training.measure import score_split
from models.training.split import Split, make_split
from models.training.tables import read_dataset

__all__ = [
    "STANDARD_MODELS",
    "TrainingReport",
    "pick_staff_favourites",
    "save_split",
    "split_from_config",
    "train_and_publish",
    "train_from_config",
]

STANDARD_MODELS: tuple[str, ...] = ("mf", "click_model", "staff_picks", "popularity")
"""What :func:`train_and_publish` publishes, in training order."""

_N_STAFF_PICKS = 20
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Trained:
    format: str
    files: dict[str, Path]
    metrics: dict[str, float]
    description: str
    extra: dict[str, Any] = field(default_factory=dict)


def _factors_of(files: dict[str, Path]) -> ItemVectors:
    """The vectors of a factor model just exported (``factors.npz`` and ``ids.json``)."""
    ids = json.loads(files["ids.json"].read_text(encoding="utf-8"))
    directory = files["factors.npz"].parent
    return read_factors(directory, len(ids["users"]), len(ids["items"]), "collaborative")


@dataclass
class _Context:
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


@dataclass
class TrainingReport:
    """The published manifests and the comparison table every run prints."""

    manifests: list[Manifest]
    split: dict[str, int | str]
    rows: list[tuple[str, dict[str, float]]]
    """``(model or candidate, test metrics)``, the collaborative candidates included."""
    k: int

    def table(self) -> str:
        """Each recommender and collaborative candidate against popularity."""
        k = self.k
        base = dict(self.rows).get("popularity", {}).get(f"recall_at_{k}", 0.0)
        header = (
            f"{'MODEL':<18}{f'RECALL@{k}':>11}{f'NDCG@{k}':>10}{f'COVERAGE@{k}':>13}  VS POPULARITY"
        )
        lines = [
            f"split: {self.split}",
            header,
        ]
        for name, metrics in self.rows:
            recall = metrics[f"recall_at_{k}"]
            ratio = f"{recall / base:.2f}x" if base > 0 else "-"
            lines.append(
                f"{name:<18}{recall:>11.4f}{metrics[f'ndcg_at_{k}']:>10.4f}"
                f"{metrics[f'coverage_at_{k}']:>13.4f}  {ratio}"
            )
        return "\n".join(lines)


def _constant(scores: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rows: np.broadcast_to(scores, (len(rows), len(scores)))


def _popularity(ctx: _Context, workdir: Path) -> _Trained:
    counts = ctx.split.train["item_id"].value_counts()
    table = pa.table(
        {
            "item_id": pa.array(counts.index.astype(str), pa.string()),
            "count": pa.array(counts.to_numpy(), pa.int64()),
        }
    )
    pq.write_table(table, workdir / "counts.parquet")
    return _Trained(
        format="popularity",
        files={"counts.parquet": workdir / "counts.parquet"},
        metrics=ctx.popularity,
        description="Most-interacted items first, the same for every user (the baseline to beat).",
        extra={"n_interactions": int(counts.sum())},
    )


def _against_popularity(ctx: _Context, metrics: dict[str, float]) -> dict[str, float]:
    k = ctx.training.k
    return {**metrics, f"popularity_recall_at_{k}": ctx.popularity[f"recall_at_{k}"]}


def _mf(ctx: _Context, workdir: Path) -> _Trained:
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
    return _Trained(
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


def _staff_picks(ctx: _Context, workdir: Path) -> _Trained:
    picks = pick_staff_favourites(ctx.data.items, ctx.split.train, _N_STAFF_PICKS)
    (workdir / "items.json").write_text(
        json.dumps({"items": picks}, indent=1) + "\n", encoding="utf-8"
    )
    ranked = np.zeros(len(ctx.split.items))
    known = ctx.split.items.get_indexer(picks)
    ranked[known[known >= 0]] = np.arange(len(picks), 0, -1)[known >= 0]
    metrics = ctx.score(_constant(ranked))
    return _Trained(
        format="curated",
        files={"items.json": workdir / "items.json"},
        metrics=_against_popularity(ctx, metrics),
        description=(
            f"Staff picks: the {len(picks)} most-read recent items, one category at a time."
        ),
        extra={"n_picks": len(picks)},
    )


def _click_model(ctx: _Context, workdir: Path) -> _Trained | None:
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
    return _Trained(
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


# Popularity first: the others' manifests compare against it.
_TRAINERS: dict[str, Callable[[_Context, Path], _Trained | None]] = {
    "popularity": _popularity,
    "mf": _mf,
    "click_model": _click_model,
    "staff_picks": _staff_picks,
}


def train_and_publish(
    store: ArtifactStore,
    data: InteractionData,
    *,
    holdout: HoldoutConfig | None = None,
    training: TrainingConfig | None = None,
    version: str = "1",
    force: bool = False,
    split: Split | None = None,
) -> TrainingReport:
    """Split ``data``, train :data:`STANDARD_MODELS` and publish them at ``version``.

    A model already published at ``version`` is skipped, not retrained (published
    versions are immutable; ``force`` only turns the skip into a warning).
    """
    holdout = holdout or HoldoutConfig()
    training = training or TrainingConfig()
    if data.interactions.empty:
        raise ConfigError("nothing to train on: the dataset holds no interactions")
    if split is None:  # callers that saved the split pass it: it is computed once
        split = make_split(data.interactions, holdout.method, holdout.fraction)
    ctx = _Context(data, split, holdout, training)
    published: dict[str, Manifest] = {}
    rows: list[tuple[str, dict[str, float]]] = []
    for name, trainer in _TRAINERS.items():
        if version in store.versions(name):
            log = _log.warning if force else _log.info
            hint = " (force cannot replace it: publish a new version)" if force else ""
            log("%s version %s is already published; not overwriting it%s", name, version, hint)
            published[name] = store.manifest(name, version)
            continue
        with tempfile.TemporaryDirectory(prefix=f"blendserve-{name}-") as tmp:
            trained = trainer(ctx, Path(tmp))
            if trained is None:
                continue
            extra = {
                **data.summary(),
                **split.summary(),
                "seed": training.seed,
                "trained_on": data.source,
                **trained.extra,
            }
            files = dict(trained.files)
            if trained.format == "factors":  # large catalogues retrieve through an index
                built = index_beside(_factors_of(files), Path(tmp))
                if built is not None:
                    files[INDEX_FILE], extra["ann"] = built
            try:
                manifest = store.publish(
                    name,
                    version,
                    trained.format,
                    files,
                    metrics=trained.metrics,
                    description=trained.description,
                    extra=extra,
                )
            except VersionExistsError:  # someone published the same version meanwhile
                manifest = store.manifest(name, version)
        _log.info("published %s version %s: %s", name, version, manifest.metrics)
        published[name] = manifest
    k = training.k
    for name in ("mf", "staff_picks", "popularity"):
        if name in published and f"recall_at_{k}" in published[name].metrics:
            rows.append((name, dict(published[name].metrics)))
    candidates = published["mf"].extra.get("candidates", {}) if "mf" in published else {}
    for name, record in candidates.items():
        rows.append((f"  mf candidate {name}", dict(record["test"])))
    return TrainingReport(
        [published[n] for n in STANDARD_MODELS if n in published], split.summary(), rows, k
    )


def save_split(data: InteractionData, split: Split, data_dir: str | os.PathLike[str]) -> Path:
    """Write the dataset (``InteractionData.save``), ``train.parquet`` (the training
    interactions) and ``heldout.parquet`` (the held-out pairs): what ``blendserve
    evaluate`` replays, on the same split the manifests were measured on."""
    target = data.save(data_dir)
    for name, frame in (("train", split.train), ("heldout", split.test)):
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False), target / f"{name}.parquet"
        )
    return target


def split_from_config(config: DataConfig) -> tuple[InteractionData, Split]:
    """The dataset a data config describes and its holdout split: what ``blendserve
    train`` measures on and ``blendserve evaluate --data-config`` replays."""
    data = read_dataset(config)
    return data, make_split(data.interactions, config.holdout.method, config.holdout.fraction)


def train_from_config(
    data_config: str | os.PathLike[str],
    store_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    version: str = "1",
    force: bool = False,
) -> TrainingReport:
    """``blendserve train``: read a team's tables through ``data_config``, save the
    dataset and its split to ``data_dir``, train and publish to ``store_dir``."""
    config = load_data_config(data_config)
    data, split = split_from_config(config)
    save_split(data, split, data_dir)
    return train_and_publish(
        ArtifactStore(store_dir),
        data,
        holdout=config.holdout,
        training=config.training,
        version=version,
        force=force,
        split=split,
    )
