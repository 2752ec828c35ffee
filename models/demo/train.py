"""The demo: the standard models trained on the synthetic news site or a MovieLens
download, with the demo's split and a simulated feedback log.

This is :func:`models.training.train_and_publish` (what ``blendserve train`` runs on a
team's own tables) with two choices made for the demo:

* the split holds out each user's last interaction (``holdout.method: last``), so a
  reader's next click is what every model is measured on;
* on the synthetic site, ``mf`` is BPR in TorchScript, so the served blend shows a
  torch model in a batched replica next to the in-process ones. On MovieLens files the
  collaborative model is chosen among EASE, ALS and BPR on a validation split, as
  ``blendserve train`` does.

:func:`demo_train` also writes ``feedback.parquet`` beside the dataset: a simulated
impression log around the held-out interactions (see ``models.demo.feedback``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.demo.feedback import simulate_feedback
from models.demo.movielens import read_movielens
from models.demo.synthetic import generate_news_dataset
from models.store import ArtifactStore, Manifest
from models.training.data_config import HoldoutConfig, TrainingConfig
from models.training.dataset import InteractionData
from models.training.pipeline import STANDARD_MODELS, save_split, train_and_publish
from models.training.split import Split, last_split

__all__ = ["DEMO_MODELS", "demo_train", "save_demo_data", "split_last_click", "train_demo_models"]

DEMO_MODELS: tuple[str, ...] = STANDARD_MODELS
"""The models ``train_demo_models`` publishes, in order."""

_SYNTHETIC_COLLABORATIVE = ("bpr",)
"""The synthetic site's ``mf``: the TorchScript model the demo's batching is built around."""


def split_last_click(interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The demo's split: training interactions, and each user's last one held out (kept
    only when its user and item occur in training and the user had not seen it)."""
    split = last_split(interactions)
    return split.train, split.test


def _training(data: InteractionData, seed: int) -> TrainingConfig:
    if data.source == "synthetic-news":
        return TrainingConfig(collaborative=list(_SYNTHETIC_COLLABORATIVE), seed=seed)
    return TrainingConfig(seed=seed)


def train_demo_models(
    store: ArtifactStore,
    data: InteractionData,
    *,
    seed: int = 7,
    version: str = "1",
    force: bool = False,
    split: Split | None = None,
) -> list[Manifest]:
    """Train and publish :data:`DEMO_MODELS` on ``data`` with the demo's split (``split``
    when the caller already made it).

    A model already published at ``version`` is skipped, not retrained (published
    versions are immutable; ``force`` only turns the skip into a warning). Returns the
    manifests at ``version``, in :data:`DEMO_MODELS` order.
    """
    report = train_and_publish(
        store,
        data,
        holdout=HoldoutConfig(method="last"),
        training=_training(data, seed),
        version=version,
        force=force,
        split=split,
    )
    return report.manifests


def save_demo_data(
    data: InteractionData,
    data_dir: str | os.PathLike[str],
    *,
    seed: int = 7,
    split: Split | None = None,
) -> Path:
    """Save ``data`` with the split the models are measured on (``train.parquet``,
    ``heldout.parquet``, for ``blendserve evaluate``; ``split``, else the demo's) and
    ``feedback.parquet`` (simulated impressions around the held-out interactions);
    returns the folder."""
    split = split or last_split(data.interactions)
    target = save_split(data, split, data_dir)
    feedback = simulate_feedback(split.train, split.test, seed=seed)
    pq.write_table(
        pa.Table.from_pandas(feedback, preserve_index=False), target / "feedback.parquet"
    )
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
    """``blendserve demo-train``: build the demo dataset (synthetic, or MovieLens when
    given), save it and its split to ``data_dir``, train and publish to ``store_dir``."""
    data = read_movielens(movielens) if movielens is not None else generate_news_dataset(seed)
    split = last_split(data.interactions)
    save_demo_data(data, data_dir, seed=seed, split=split)
    return train_demo_models(
        ArtifactStore(store_dir), data, seed=seed, version=version, force=force, split=split
    )
