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
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from models.ann import INDEX_FILE, ItemVectors
from models.errors import ConfigError, VersionExistsError
from models.formats.factors import read_factors
from models.publish import index_beside
from models.store import ArtifactStore, Manifest
from models.training.data_config import (
    DataConfig,
    HoldoutConfig,
    TrainingConfig,
    load_data_config,
)
from models.training.dataset import InteractionData
from models.training.split import Split, make_split
from models.training.tables import read_dataset
from models.training.trainers import TRAINERS, TrainingContext

__all__ = [
    "STANDARD_MODELS",
    "TrainingReport",
    "save_split",
    "split_from_config",
    "train_and_publish",
    "train_from_config",
]

STANDARD_MODELS: tuple[str, ...] = ("mf", "click_model", "staff_picks", "popularity")
"""What :func:`train_and_publish` publishes, in training order."""

_log = logging.getLogger(__name__)


def _factors_of(files: dict[str, Path]) -> ItemVectors:
    """The vectors of a factor model just exported (``factors.npz`` and ``ids.json``)."""
    ids = json.loads(files["ids.json"].read_text(encoding="utf-8"))
    directory = files["factors.npz"].parent
    return read_factors(directory, len(ids["users"]), len(ids["items"]), "collaborative")


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
    ctx = TrainingContext(data, split, holdout, training)
    published: dict[str, Manifest] = {}
    rows: list[tuple[str, dict[str, float]]] = []
    for name, trainer in TRAINERS.items():
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
