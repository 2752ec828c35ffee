"""Two-stage retrieval: ``blendserve publish`` builds a factor model's approximate index,
tuned to recall@100 against exact scoring; serving retrieves with it from
``exact_below`` items on, and answers as exact scoring would for what it retrieves."""

import json
from pathlib import Path

import numpy as np
import pytest

from models.ann import (
    INDEX_FILE,
    ItemIndex,
    ItemVectors,
    Retriever,
    build_tuned,
    recall_against_exact,
)
from models.base import RecommendQuery
from models.errors import ModelError
from models.formats.factors import save_factors
from models.publish import publish_artifact
from models.registry import load_model
from models.store import ArtifactStore

N_ITEMS = 4000
N_USERS = 300


def _factor_model(directory: Path, seed: int = 0) -> ItemVectors:
    """A factor model with the structure trained ones have: items in topics, users
    leaning to a few, a popularity bias."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(24, 16))
    items = topics[rng.integers(0, 24, N_ITEMS)] + 0.4 * rng.normal(size=(N_ITEMS, 16))
    users = rng.normal(size=(N_USERS, 16))
    bias = 0.3 * rng.normal(size=N_ITEMS)
    directory.mkdir(parents=True)
    save_factors(str(directory / "factors.npz"), users, items, bias)
    ids = {
        "users": [f"user{i}" for i in range(N_USERS)],
        "items": [f"item{j}" for j in range(N_ITEMS)],
    }
    (directory / "ids.json").write_text(json.dumps(ids))
    cold = users.mean(axis=0, keepdims=True)
    return ItemVectors(
        np.vstack([users, cold]).astype(np.float32),
        items.astype(np.float32),
        bias.astype(np.float32),
    )


@pytest.fixture
def published(tmp_path: Path) -> tuple[ArtifactStore, ItemVectors]:
    store = ArtifactStore(tmp_path / "store")
    vectors = _factor_model(tmp_path / "export")
    publish_artifact(store, tmp_path / "export", "mf", "factors", ann_min_items=1000)
    return store, vectors


def test_publish_builds_an_index_tuned_to_the_target_recall(
    published: tuple[ArtifactStore, ItemVectors],
) -> None:
    store, vectors = published
    manifest = store.manifest("mf", "1")
    assert INDEX_FILE in manifest.files
    ann = manifest.extra["ann"]
    assert ann["items"] == N_ITEMS and ann["recall_at_100"] >= 0.95
    # The recall the manifest states is the one the published file gives.
    index = ItemIndex.load(store.path("mf", "1") / INDEX_FILE, ann["probes"])
    recall = recall_against_exact(Retriever(index, vectors))
    assert recall == pytest.approx(ann["recall_at_100"], abs=1e-4)


def test_a_higher_target_explores_more_until_it_is_met(tmp_path: Path) -> None:
    vectors = _factor_model(tmp_path / "export")
    default = build_tuned(vectors, tmp_path / "default.faiss")
    strict = build_tuned(vectors, tmp_path / "strict.faiss", target=0.999)
    assert int(strict["probes"]) > int(default["probes"])
    assert float(strict["recall_at_100"]) >= 0.999 > float(default["recall_at_100"])


def test_small_models_and_no_ann_publish_no_index(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    _factor_model(tmp_path / "export")
    publish_artifact(store, tmp_path / "export", "mf", "factors")  # 4,000 < 10,000
    publish_artifact(store, tmp_path / "export", "mf", "factors", ann_min_items=None)
    for version in ("1", "2"):
        assert INDEX_FILE not in store.manifest("mf", version).files
        assert "ann" not in store.manifest("mf", version).extra


def test_served_lists_are_the_exact_order_of_what_the_index_retrieves(
    published: tuple[ArtifactStore, ItemVectors],
) -> None:
    store, _ = published
    approximate = load_model(store, "mf", "1", options={"exact_below": 1000})
    exact = load_model(store, "mf", "1")  # 4,000 items < the default exact_below
    assert approximate.describe()["retrieval"] == "approximate"
    assert exact.describe()["retrieval"] == "exact"
    queries = [RecommendQuery(f"user{i}") for i in range(0, N_USERS, 3)] + [
        RecommendQuery("someone new")
    ]
    found = 0
    for got, want in zip(
        approximate.top_items(queries, 100), exact.top_items(queries, 100), strict=True
    ):
        found += len(set(got.id_list()) & set(want.id_list()))
        assert list(got.scores) == sorted(got.scores, reverse=True)
        # Every score it gives is the model's own score of that item.
        exact_scores = dict(zip(want.id_list(), want.scores, strict=True))
        for item, score in zip(got.id_list(), got.scores, strict=True):
            if item in exact_scores:
                assert score == pytest.approx(exact_scores[item], rel=1e-5, abs=1e-5)
    assert found / (100 * len(queries)) >= 0.95


def test_an_index_that_does_not_match_the_model_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    vectors = _factor_model(tmp_path / "export")
    smaller = ItemVectors(vectors.users, vectors.items[:-10], vectors.bias[:-10])
    ItemIndex.build(smaller).save(tmp_path / "export" / INDEX_FILE)
    publish_artifact(store, tmp_path / "export", "mf", "factors", check=False)
    with pytest.raises(ModelError, match=r"holds 3990 items, the model 4000 with a vector"):
        load_model(store, "mf", "1", options={"exact_below": 1000})


def test_items_without_a_vector_stay_out_of_the_index_and_are_still_served(
    tmp_path: Path,
) -> None:
    export = tmp_path / "export"
    vectors = _factor_model(export)
    # What training leaves for the last 1,000 items, which nobody clicked: no
    # vector, only a bias; one of them has a bias that beats every scored item.
    items, bias = vectors.items.copy(), vectors.bias.copy()
    items[-1000:] = 0.0
    bias[-1000:] = -5.0
    bias[-7] = 100.0
    save_factors(str(export / "factors.npz"), vectors.users[:-1], items, bias)
    store = ArtifactStore(tmp_path / "store")
    publish_artifact(store, export, "mf", "factors", ann_min_items=1000)
    ann = store.manifest("mf", "1").extra["ann"]
    assert (ann["items"], ann["indexed"]) == (N_ITEMS, N_ITEMS - 1000)
    assert ann["recall_at_100"] >= 0.95

    approximate = load_model(store, "mf", "1", options={"exact_below": 1000})
    exact = load_model(store, "mf", "1")
    assert approximate.describe()["retrieval"] == "approximate"
    queries = [RecommendQuery(f"user{i}") for i in range(0, N_USERS, 5)]
    for got, want in zip(
        approximate.top_items(queries, 20), exact.top_items(queries, 20), strict=True
    ):
        assert got.id_list()[0] == want.id_list()[0] == f"item{N_ITEMS - 7}"


def test_an_index_of_every_item_as_earlier_releases_built_it_still_serves(
    tmp_path: Path,
) -> None:
    import faiss

    export = tmp_path / "export"
    vectors = _factor_model(export)
    every = vectors.searchable_items()
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(every.shape[1]), every.shape[1], 64)
    index.train(every)
    index.add(every)
    faiss.write_index(index, str(export / INDEX_FILE))
    store = ArtifactStore(tmp_path / "store")
    publish_artifact(store, export, "mf", "factors", check=False)
    approximate = load_model(store, "mf", "1", options={"exact_below": 1000, "ann_probes": 64})
    exact = load_model(store, "mf", "1")
    assert approximate.describe()["retrieval"] == "approximate"
    queries = [RecommendQuery(f"user{i}") for i in range(0, N_USERS, 5)]
    for got, want in zip(
        approximate.top_items(queries, 50), exact.top_items(queries, 50), strict=True
    ):
        assert got.id_list() == want.id_list()
