"""Precomputed recommendations through the real HTTP path: `blendserve batch-score`
ran Ray Data over every user of mf (in the session's setup, conftest.py) and
published `mf_precomputed`; the `later` use case serves it, and mf scores on request
the users it lacks."""

from __future__ import annotations

from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serving_cluster import PRECOMPUTED_MODEL, PRECOMPUTED_USE_CASE

from models.store import ArtifactStore

pytestmark = pytest.mark.integration


def _lists(home: Path) -> dict[str, list[str]]:
    directory = ArtifactStore(home / "artifacts").path(PRECOMPUTED_MODEL, "1")
    table = pa.concat_tables(pq.read_table(part) for part in sorted(directory.glob("*.parquet")))
    return dict(zip(table["user_id"].to_pylist(), table["item_ids"].to_pylist(), strict=True))


def test_batch_score_published_a_list_for_every_user_of_the_model(serve_home: Path) -> None:
    store = ArtifactStore(serve_home / "artifacts")
    manifest = store.manifest(PRECOMPUTED_MODEL, "1")
    assert manifest.format == "precomputed"
    assert (manifest.extra["source_model"], manifest.extra["source_version"]) == ("mf", "1")
    lists = _lists(serve_home)
    assert len(lists) == manifest.extra["users"] == 300
    assert all(len(items) == 50 for items in lists.values())
    assert len(list(store.path(PRECOMPUTED_MODEL, "1").glob("*.parquet"))) >= 1


def test_known_users_get_their_precomputed_list_and_new_users_mf(
    client: httpx.Client, serve_home: Path
) -> None:
    lists = _lists(serve_home)
    for user in sorted(lists)[:5]:
        body = client.post(
            f"/v1/recommend/{PRECOMPUTED_USE_CASE}", json={"user_id": user, "k": 10}
        ).json()
        assert [item["item_id"] for item in body["items"]] == lists[user][:10]
        assert body["model_versions"] == {PRECOMPUTED_MODEL: "1"}
    new = client.post(
        f"/v1/recommend/{PRECOMPUTED_USE_CASE}", json={"user_id": "brand-new-user", "k": 10}
    ).json()
    assert len(new["items"]) == 10 and not new["degraded"]
    assert set(new["model_versions"]) == {"mf"}
    assert {c["model"] for item in new["items"] for c in item["components"]} == {"mf"}
