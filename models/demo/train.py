"""Train the four demo models on an interaction dataset and publish them to a store.

===============  ============  =====================================================
model            format        what it is
===============  ============  =====================================================
``mf``           torchscript   BPR matrix factorisation: a personal top-N
``click_model``  click_ranker  logistic click probability from four tabular features,
                               with the feature tables to rerank items per request
``staff_picks``  curated       20 of the week's most-read items, one section at a time
``popularity``   popularity    click counts, the baseline to beat
===============  ============  =====================================================

Every model trains on the same split: each user's last click is held out, and the
recommenders report ``recall_at_10`` on those held-out clicks, so their manifests
can be compared directly. A published version is never overwritten.

:func:`demo_train` also writes ``feedback.parquet`` beside the dataset: a simulated
impression log around the held-out clicks (see ``models.demo.feedback``).
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
import torch

from models.demo.click_features import CLICK_FEATURES, click_feature_tables, fit_click_model
from models.demo.data import InteractionData
from models.demo.feedback import simulate_feedback
from models.demo.mf import export_torchscript, recall_at_k, train_bpr
from models.demo.movielens import read_movielens
from models.demo.synthetic import generate_news_dataset
from models.errors import ConfigError, VersionExistsError
from models.store import ArtifactStore, Manifest

__all__ = [
    "DEMO_MODELS",
    "demo_train",
    "pick_staff_favourites",
    "save_demo_data",
    "split_last_click",
    "train_demo_models",
]

DEMO_MODELS: tuple[str, ...] = ("mf", "click_model", "staff_picks", "popularity")
"""The models ``train_demo_models`` publishes, in training order."""

_N_STAFF_PICKS = 20
_log = logging.getLogger(__name__)


def split_last_click(interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off each user's last interaction (by ``ts``, ties by item id) for evaluation.

    Users with a single interaction keep it for training: there is nothing left to
    learn their taste from otherwise.
    """
    ordered = interactions.sort_values(["user_id", "ts", "item_id"], kind="stable")
    is_last = ~ordered["user_id"].duplicated(keep="last")
    has_history = ordered["user_id"].duplicated(keep=False)
    held_out = is_last & has_history
    return ordered[~held_out].reset_index(drop=True), ordered[held_out].reset_index(drop=True)


@dataclass
class _Split:
    """What every trainer reads: the data, its split, and the id orders of the matrix."""

    data: InteractionData
    train: pd.DataFrame
    test: pd.DataFrame
    seed: int
    users: pd.Index = field(init=False)
    items: pd.Index = field(init=False)

    def __post_init__(self) -> None:
        self.users = pd.Index(np.sort(self.train["user_id"].unique()))
        self.items = pd.Index(np.sort(self.train["item_id"].unique()))

    def recall(self, score_rows: Callable[[np.ndarray], np.ndarray]) -> float:
        """recall@10 of a scorer over the held-out clicks, seen items excluded."""
        return recall_at_k(
            score_rows,
            self.users.get_indexer(self.test["user_id"]),
            self.items.get_indexer(self.test["item_id"]),
            self.users.get_indexer(self.train["user_id"]),
            self.items.get_indexer(self.train["item_id"]),
            k=10,
        )

    def popularity_recall(self) -> float:
        """recall@10 of 'most clicked first' on the same held-out clicks."""
        counts = self.train["item_id"].value_counts().reindex(self.items).to_numpy(np.float64)
        return self.recall(lambda users: np.broadcast_to(counts, (len(users), len(counts))))


@dataclass(frozen=True)
class _Trained:
    """One trained model, ready to publish."""

    format: str
    files: dict[str, Path]
    metrics: dict[str, float]
    description: str
    extra: dict[str, Any] = field(default_factory=dict)


def _train_mf(split: _Split, workdir: Path) -> _Trained:
    scorer = train_bpr(
        split.users.get_indexer(split.train["user_id"]),
        split.items.get_indexer(split.train["item_id"]),
        len(split.users),
        len(split.items),
        seed=split.seed,
    )
    with torch.inference_mode():
        recall = split.recall(
            lambda users: scorer(torch.from_numpy(users.astype(np.int64))).numpy()
        )
    files = export_torchscript(scorer, list(split.users), list(split.items), workdir)
    dim = int(scorer.item_factors.shape[1])
    return _Trained(
        format="torchscript",
        files=files,
        metrics={"recall_at_10": recall, "popularity_recall_at_10": split.popularity_recall()},
        description=(
            f"Implicit matrix factorisation (BPR, {dim} dims): a personal top-N from click "
            "history; unknown users get the mean user's scores."
        ),
        extra={"dim": dim, "n_eval_users": len(split.test)},
    )


def _train_click_model(split: _Split, workdir: Path) -> _Trained:
    fitted = fit_click_model(split.data.items, split.train, seed=split.seed)
    joblib.dump(fitted.pipeline, workdir / "model.joblib")
    (workdir / "features.json").write_text(
        json.dumps({"feature_names": list(CLICK_FEATURES)}) + "\n", encoding="utf-8"
    )
    # The tables serving needs to rebuild the features, from the same training clicks.
    items, user_categories = click_feature_tables(split.data.items, split.train)
    pq.write_table(pa.Table.from_pandas(items, preserve_index=False), workdir / "items.parquet")
    pq.write_table(
        pa.Table.from_pandas(user_categories, preserve_index=False),
        workdir / "user_categories.parquet",
    )
    as_of = split.train["ts"].max()
    return _Trained(
        format="click_ranker",
        files={
            name: workdir / name
            for name in (
                "model.joblib",
                "features.json",
                "items.parquet",
                "user_categories.parquet",
            )
        },
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


def _staff_picks(split: _Split, workdir: Path) -> _Trained:
    picks = pick_staff_favourites(split.data.items, split.train, _N_STAFF_PICKS)
    (workdir / "items.json").write_text(
        json.dumps({"items": picks}, indent=1) + "\n", encoding="utf-8"
    )
    ranked = np.zeros(len(split.items))
    known = split.items.get_indexer(picks)
    ranked[known[known >= 0]] = np.arange(len(picks), 0, -1)[known >= 0]
    return _Trained(
        format="curated",
        files={"items.json": workdir / "items.json"},
        metrics={
            "recall_at_10": split.recall(lambda u: np.broadcast_to(ranked, (len(u), len(ranked))))
        },
        description=f"Staff picks: the {len(picks)} most-read recent items, one section at a time.",
        extra={"n_picks": len(picks)},
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


def _popularity(split: _Split, workdir: Path) -> _Trained:
    counts = split.train["item_id"].value_counts()
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
        metrics={"recall_at_10": split.popularity_recall()},
        description="Most-clicked items first, the same for every user (the baseline to beat).",
        extra={"n_clicks": int(counts.sum())},
    )


_TRAINERS: dict[str, Callable[[_Split, Path], _Trained]] = {
    "mf": _train_mf,
    "click_model": _train_click_model,
    "staff_picks": _staff_picks,
    "popularity": _popularity,
}


def train_demo_models(
    store: ArtifactStore,
    data: InteractionData,
    *,
    seed: int = 7,
    version: str = "1",
    force: bool = False,
) -> list[Manifest]:
    """Train and publish ``mf``, ``click_model``, ``staff_picks`` and ``popularity``.

    A model already published at ``version`` is skipped, not retrained. Published
    versions are immutable, so ``force`` cannot replace one either: it only turns the
    skip into a warning that says to publish under a new ``version``. Returns the
    manifests in the store at ``version``, in :data:`DEMO_MODELS` order.
    """
    if data.interactions.empty:
        raise ConfigError("cannot train the demo models: the dataset holds no interactions")
    split: _Split | None = None
    manifests: list[Manifest] = []
    for name in DEMO_MODELS:
        if version in store.versions(name):
            log = _log.warning if force else _log.info
            hint = " (force cannot replace it: publish a new version)" if force else ""
            log("%s version %s is already published; not overwriting it%s", name, version, hint)
            manifests.append(store.manifest(name, version))
            continue
        if split is None:
            split = _Split(data, *split_last_click(data.interactions), seed=seed)
        with tempfile.TemporaryDirectory(prefix=f"blendserve-{name}-") as tmp:
            trained = _TRAINERS[name](split, Path(tmp))
            extra = {**data.summary(), "seed": seed, "trained_on": data.source, **trained.extra}
            try:
                manifest = store.publish(
                    name,
                    version,
                    trained.format,
                    trained.files,
                    metrics=trained.metrics,
                    description=trained.description,
                    extra=extra,
                )
            except VersionExistsError:
                # Someone published the same version meanwhile; theirs stands.
                manifest = store.manifest(name, version)
        _log.info("published %s version %s: %s", name, version, manifest.metrics)
        manifests.append(manifest)
    return manifests


def save_demo_data(
    data: InteractionData, data_dir: str | os.PathLike[str], *, seed: int = 7
) -> Path:
    """Save ``data`` as Parquet plus its simulated ``feedback.parquet`` and the split the
    models are trained and measured on (``train.parquet``, ``heldout.parquet``: each
    user's last click, for ``blendserve evaluate``); returns the folder."""
    target = data.save(data_dir)
    train, held_out = split_last_click(data.interactions)
    feedback = simulate_feedback(train, held_out, seed=seed)
    for name, frame in (("feedback", feedback), ("train", train), ("heldout", held_out)):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, target / f"{name}.parquet")
    return target


def demo_train(
    store_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    seed: int = 7,
    movielens: str | os.PathLike[str] | None = None,
    version: str = "1",
    force: bool = False,
) -> list[Manifest]:
    """Build the demo dataset (synthetic, or MovieLens when given), save it, train on it.

    The dataset is written to ``data_dir`` as Parquet (see ``InteractionData.save``),
    with ``feedback.parquet`` (simulated impressions around each user's held-out last
    click, same seed, same file), and the models to the store at ``store_dir``; this
    is ``blendserve demo-train``.
    """
    data = read_movielens(movielens) if movielens is not None else generate_news_dataset(seed)
    save_demo_data(data, data_dir, seed=seed)
    store = ArtifactStore(store_dir)
    return train_demo_models(store, data, seed=seed, version=version, force=force)
