"""Every user's top N from a recommender, computed with Ray Data and published as a
``precomputed`` model (``blendserve batch-score``).

The users are a Ray Dataset; ``map_batches`` sends batches of them to actors that
each load the model once (from the artifact store, checksums verified) and score a
batch in one call; ``write_parquet`` writes the lists. The same code runs on a
laptop's local Ray or, given a cluster's address, on all its nodes (every node
must reach the artifact store's path). The result is published like any model
version, so the ingress serves it through the same rollout machinery: a config
names the new version, the old lists keep serving until it has loaded.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import ray

from models.base import Recommender, RecommendQuery
from models.errors import ConfigError
from models.publish import publish_artifact
from models.registry import load_model
from models.store import ArtifactStore, Manifest

__all__ = ["BatchScored", "batch_score", "model_users", "read_users"]


class _ScoreUsers:
    """A Ray Data actor: one loaded model, a batch of users per call."""

    def __init__(self, store: str, model: str, version: str, top: int) -> None:
        adapter = load_model(ArtifactStore(store), model, version)
        if not isinstance(adapter, Recommender):
            raise ConfigError(f"model {model!r} version {version}: not a recommender")
        self.model = adapter
        self.top = top

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        users = [str(user) for user in batch["user_id"]]
        lists = self.model.top_items([RecommendQuery(user, {}) for user in users], self.top)
        return pa.table(
            {
                "user_id": pa.array(users, pa.string()),
                "item_ids": pa.array([t.id_list() for t in lists], pa.list_(pa.string())),
                "scores": pa.array(
                    [t.scores.astype(np.float32) for t in lists], pa.list_(pa.float32())
                ),
            }
        )


def model_users(store: ArtifactStore, model: str, version: str) -> list[str]:
    """The users a model was trained on (its ``ids.json``)."""
    path = store.path(model, version) / "ids.json"
    try:
        users = json.loads(path.read_text(encoding="utf-8"))["users"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"model {model!r} version {version}: no users in ids.json ({exc}); give --users"
        ) from exc
    return [str(user) for user in users]


@dataclass(frozen=True)
class BatchScored:
    """What :func:`batch_score` published and how long it took."""

    manifest: Manifest
    users: int
    seconds: float


def batch_score(
    store: ArtifactStore,
    model: str,
    users: Sequence[str],
    name: str,
    version: str | None = None,
    top: int = 100,
    batch_size: int = 1024,
    concurrency: int = 1,
    num_cpus: float = 1.0,
) -> BatchScored:
    """Score ``users`` with ``model`` (its latest version by default) on the Ray
    cluster this process is connected to (``ray.init`` first), and publish the lists
    as a new version of ``name`` (format ``precomputed``)."""
    if not users:
        raise ConfigError("batch-score: no users to score")
    source_version = version or store.latest(model)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="blendserve-batch-") as scratch:
        out = Path(scratch) / "lists"
        dataset = ray.data.from_arrow(pa.table({"user_id": pa.array(list(users), pa.string())}))
        dataset.map_batches(
            _ScoreUsers,
            fn_constructor_kwargs={
                "store": str(store.root),
                "model": model,
                "version": source_version,
                "top": top,
            },
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=concurrency,
            num_cpus=num_cpus,
        ).write_parquet(str(out))
        seconds = time.time() - started
        extra: dict[str, Any] = {
            "computed_at": started,
            "source_model": model,
            "source_version": source_version,
            "top": top,
            "users": len(users),
            "seconds": round(seconds, 3),
        }
        published = publish_artifact(
            store,
            out,
            name,
            "precomputed",
            description=f"top {top} of {model} version {source_version} for {len(users)} users",
            extra=extra,
            examples=list(users[:3]),
        )
    return BatchScored(published.manifest, len(users), seconds)


def read_users(path: Path) -> list[str]:
    """The distinct ``user_id`` values of a Parquet or CSV file, in file order."""
    try:
        if path.suffix.lower() == ".csv":
            options = pacsv.ConvertOptions(
                include_columns=["user_id"], column_types={"user_id": pa.string()}
            )
            table = pacsv.read_csv(path, convert_options=options)
        else:
            table = pq.read_table(path, columns=["user_id"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"--users {path}: expected a table with a user_id column: {exc}") from exc
    users = (str(u) for u in table.column("user_id").to_pylist() if u is not None)
    return list(dict.fromkeys(users))
