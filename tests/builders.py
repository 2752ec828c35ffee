"""Builders of tiny real models, published into an artifact store for tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from models.demo.train import train_demo_models
from models.formats.click_ranker import CLICK_FEATURES
from models.formats.python_adapter import publish_python_model
from models.store import ArtifactStore, Manifest
from models.training.dataset import InteractionData

ITEMS = [f"i{n}" for n in range(6)]
USERS = ["alice", "bob", "carol"]
RETRAIN_SEED = 8
"""The seed of the lifecycle tests' mf version 2 (version 1 is the demo's, seed 7)."""


class TinyMF(torch.nn.Module):
    """Dot-product scorer with a cold-start row (index len(users))."""

    def __init__(self, users: torch.Tensor, items: torch.Tensor) -> None:
        super().__init__()
        self.users = torch.nn.Parameter(users, requires_grad=False)
        self.items = torch.nn.Parameter(items, requires_grad=False)

    def forward(self, user_index: torch.Tensor) -> torch.Tensor:
        return self.users[user_index] @ self.items.T


class AlwaysFails(torch.nn.Module):
    """A model whose weights do not fit its catalogue: every call raises."""

    def forward(self, user_index: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("weights do not match the item catalogue")


def publish_tiny_mf(
    store: ArtifactStore, tmp: Path, name: str = "mf", version: str = "1"
) -> Manifest:
    """A 2-d MF where alice likes i0 most, bob likes i5 most; cold users like i2."""
    users = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 0.0]])
    items = torch.tensor([[5.0, 0.0], [4.0, 1.0], [3.0, 3.0], [1.0, 2.0], [0.0, 4.0], [0.0, 5.0]])
    users[3] = torch.tensor([0.3, 0.3])  # the cold-start row: i2 (3, 3) scores highest
    torch.jit.script(TinyMF(users, items)).save(str(tmp / "model.pt"))
    (tmp / "ids.json").write_text(json.dumps({"users": USERS, "items": ITEMS}))
    return store.publish(
        name, version, "torchscript", {"model.pt": tmp / "model.pt", "ids.json": tmp / "ids.json"}
    )


def publish_failing_mf(store: ArtifactStore, tmp: Path, name: str = "broken") -> Manifest:
    """A recommender that loads fine and raises on every call."""
    torch.jit.script(AlwaysFails()).save(str(tmp / "broken.pt"))
    (tmp / "ids.json").write_text(json.dumps({"users": USERS, "items": ITEMS}))
    return store.publish(
        name, "1", "torchscript", {"model.pt": tmp / "broken.pt", "ids.json": tmp / "ids.json"}
    )


def damage(store: ArtifactStore, name: str, filename: str, version: str = "1") -> bytes:
    """Overwrite a published file with garbage, as a bad copy or a full disk would;
    return what it held, to repair it later."""
    path = store.path(name, version) / filename
    original = path.read_bytes()
    path.write_bytes(b"\x00 not a model \xff" * 10)
    return original


def publish_tiny_sklearn(store: ArtifactStore, tmp: Path, name: str = "clicks") -> Manifest:
    """Logistic regression on two named features; clicks when x0 + x1 > 1."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(200, 2))
    y = (x.sum(axis=1) > 1).astype(int)
    joblib.dump(LogisticRegression().fit(x, y), tmp / "model.joblib")
    (tmp / "features.json").write_text(json.dumps({"feature_names": ["affinity", "freshness"]}))
    files = {"model.joblib": tmp / "model.joblib", "features.json": tmp / "features.json"}
    return store.publish(name, "1", "sklearn", files, metrics={"auc": 0.99})


def publish_curated(
    store: ArtifactStore, tmp: Path, items: list[str], name: str = "picks"
) -> Manifest:
    """An editorial list."""
    (tmp / "items.json").write_text(json.dumps({"items": items}))
    return store.publish(name, "1", "curated", {"items.json": tmp / "items.json"})


def publish_popularity(
    store: ArtifactStore, tmp: Path, counts: dict[str, int], name: str = "popularity"
) -> Manifest:
    """Item counts as Parquet."""
    table = pa.table(
        {"item_id": list(counts), "count": pa.array(list(counts.values()), pa.int64())}
    )
    pq.write_table(table, tmp / "counts.parquet")
    return store.publish(name, "1", "popularity", {"counts.parquet": tmp / "counts.parquet"})


def publish_sleepy_model(
    store: ArtifactStore, name: str, delay_s: float, items: list[str], version: str = "1"
) -> Manifest:
    """A ``python`` recommender that sleeps ``delay_s`` per call (a slow source)."""
    return publish_python_model(
        store,
        name,
        version,
        "support_models:SleepyRecommender",
        {"delay_s": delay_s, "items": items},
    )


CLICK_AS_OF = "2025-03-02T12:00:00+00:00"
"""The snapshot time of :func:`publish_tiny_click_ranker` (its newest click)."""


def publish_tiny_click_ranker(
    store: ArtifactStore, tmp: Path, name: str = "ranker", as_of: str | None = CLICK_AS_OF
) -> Manifest:
    """A ``click_ranker`` over 3 items and 2 users; clicks favour affinity and freshness.

    ======  ========  =================  ======  ===========================
    item    category  published_at       clicks  user clicks by category
    ======  ========  =================  ======  ===========================
    ``i1``  sports    2025-03-01 00:00   3       alice: sports 3, tech 1
    ``i2``  tech      2025-03-01 06:00   1       bob: tech 2
    ``i3``  sports    2025-03-02 00:00   0
    ======  ========  =================  ======  ===========================
    """
    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    n = 400
    affinity, popularity = rng.uniform(0, 1, n), rng.uniform(0, 3, n)
    age, hour = rng.uniform(0, 72, n), rng.integers(0, 24, n).astype(float)
    logit = 4 * affinity + popularity - age / 12 + (hour >= 18) - 1 + rng.normal(0, 0.5, n)
    x = np.column_stack([affinity, popularity, age, hour])
    pipeline = make_pipeline(StandardScaler(), LogisticRegression())
    joblib.dump(pipeline.fit(x, (logit > 0).astype(int)), tmp / "model.joblib")
    (tmp / "features.json").write_text(json.dumps({"feature_names": list(CLICK_FEATURES)}))
    items = pd.DataFrame(
        {
            "item_id": ["i1", "i2", "i3"],
            "category": ["sports", "tech", "sports"],
            "published_at": pd.to_datetime(
                ["2025-03-01T00:00:00Z", "2025-03-01T06:00:00Z", "2025-03-02T00:00:00Z"]
            ),
            "clicks": np.array([3, 1, 0], dtype=np.int64),
        }
    )
    users = pd.DataFrame(
        {
            "user_id": ["alice", "alice", "bob"],
            "category": ["sports", "tech", "tech"],
            "clicks": np.array([3, 1, 2], dtype=np.int64),
        }
    )
    pq.write_table(pa.Table.from_pandas(items, preserve_index=False), tmp / "items.parquet")
    users_path = tmp / "user_categories.parquet"
    pq.write_table(pa.Table.from_pandas(users, preserve_index=False), users_path)
    parts = ("model.joblib", "features.json", "items.parquet", "user_categories.parquet")
    files = {part: tmp / part for part in parts}
    extra = {} if as_of is None else {"as_of": as_of}
    return store.publish(name, "1", "click_ranker", files, extra=extra)


def api_keys_document(
    infer_key: str, admin_key: str, limited_key: str, requests_per_s: float, burst: int
) -> str:
    """A keys file (YAML) with an infer-only, an admin-only and a rate-limited infer key."""
    return yaml.safe_dump(
        {
            "keys": [
                {"name": "infer-only", "key": infer_key, "scopes": ["infer"]},
                {"name": "admin-only", "key": admin_key, "scopes": ["admin"]},
                {
                    "name": "limited",
                    "key": limited_key,
                    "scopes": ["infer"],
                    "requests_per_s": requests_per_s,
                    "burst": burst,
                },
            ]
        }
    )


def publish_candidate_versions(store: ArtifactStore, scratch: Path, data: InteractionData) -> None:
    """Next versions of the demo's ``mf`` and ``popularity`` for the lifecycle tests:

    * mf 2: the demo's TorchScript model retrained on ``data`` with another seed, so its
      top items differ from version 1's for every user (a swap to it is visible);
    * mf 3: a copy of version 1 whose weights were damaged after publishing;
    * mf 4: a TorchScript module that loads, then raises on every call;
    * mf 5: a python model that passes its smoke test, then raises on every call;
    * popularity 2: version 1's counts again.
    """
    retrained = ArtifactStore(scratch / "retrained")
    train_demo_models(retrained, data, seed=RETRAIN_SEED)
    source = retrained.path("mf", "1")
    manifest = retrained.manifest("mf", "1")
    store.publish("mf", "2", manifest.format, {f: source / f for f in manifest.files})
    for name, version in (("mf", "3"), ("popularity", "2")):
        source = store.path(name, "1")
        files = {f: source / f for f in store.manifest(name, "1").files}
        store.publish(name, version, store.manifest(name, "1").format, files)
    damage(store, "mf", "model.pt", version="3")
    failing = publish_failing_mf(store, scratch, name="mf_failing")
    source = store.path("mf_failing", failing.version)
    store.publish("mf", "4", "torchscript", {f: source / f for f in failing.files})
    items = json.loads((store.path("mf", "1") / "ids.json").read_text())["items"][:50]
    publish_python_model(store, "mf", "5", "support_models:BreaksAfter", {"items": items})
