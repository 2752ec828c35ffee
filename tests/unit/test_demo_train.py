"""Training and publishing the four demo models, and loading them back for serving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from models.base import Recommender, RecommendQuery, Scorer
from models.demo import (
    DEMO_MODELS,
    InteractionData,
    demo_train,
    generate_news_dataset,
    simulate_feedback,
    split_last_click,
    train_demo_models,
)
from models.demo.click_features import CLICK_FEATURES, click_examples
from models.formats.click_ranker import ClickRankerAdapter
from models.registry import load_model
from models.store import ArtifactStore

SMALL = {"n_users": 200, "n_articles": 300, "n_clicks": 8000}


@pytest.fixture(scope="module")
def news() -> InteractionData:
    return generate_news_dataset(seed=7, **SMALL)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, news: InteractionData) -> ArtifactStore:
    store = ArtifactStore(tmp_path_factory.mktemp("store"))
    train_demo_models(store, news, seed=7)
    return store


def _all_rankings(store: ArtifactStore) -> list[list[tuple[str, float]]]:
    """Every known user's (and a stranger's) full ranking, scores included."""
    mf = load_model(store, "mf", "1")
    users = json.loads((store.path("mf", "1") / "ids.json").read_text())["users"]
    queries = [RecommendQuery(u) for u in [*users, "stranger"]]
    return mf.recommend(queries, 10_000)


def test_every_demo_model_is_published_with_description_metrics_and_provenance(
    store: ArtifactStore,
) -> None:
    assert store.models() == sorted(DEMO_MODELS)
    for name in DEMO_MODELS:
        manifest = store.verify(name, "1")
        assert manifest.description and manifest.metrics, name
        assert manifest.extra["seed"] == 7 and manifest.extra["trained_on"] == "synthetic-news"
        assert manifest.extra["n_users"] == 200 and manifest.extra["n_items"] == 300


def test_mf_recommends_for_known_users_and_falls_back_to_the_mean_user(
    store: ArtifactStore,
) -> None:
    mf = load_model(store, "mf", "1")
    assert isinstance(mf, Recommender)
    known, stranger, other = mf.recommend(
        [RecommendQuery("u0001"), RecommendQuery("never-seen"), RecommendQuery("also-new")], 10
    )
    assert len(known) == 10 and len({item for item, _ in known}) == 10
    assert [s for _, s in known] == sorted((s for _, s in known), reverse=True)
    assert stranger == other  # every unknown user gets the cold-start row
    assert known != stranger


def test_mf_beats_popularity_on_each_users_held_out_last_click(store: ArtifactStore) -> None:
    metrics = store.manifest("mf", "1").metrics
    assert (
        metrics["popularity_recall_at_10"]
        == store.manifest("popularity", "1").metrics["recall_at_10"]
    )
    assert metrics["recall_at_10"] > 1.5 * metrics["popularity_recall_at_10"]


def test_same_seed_gives_identical_mf_scores_and_another_seed_does_not(
    tmp_path: Path, store: ArtifactStore, news: InteractionData
) -> None:
    again, reseeded = ArtifactStore(tmp_path / "again"), ArtifactStore(tmp_path / "reseeded")
    train_demo_models(again, news, seed=7)
    train_demo_models(reseeded, news, seed=8)
    assert _all_rankings(again) == _all_rankings(store)
    assert _all_rankings(reseeded) != _all_rankings(store)


def test_training_leaves_torch_global_settings_as_it_found_them(
    tmp_path: Path, news: InteractionData
) -> None:
    threads, rng_state = torch.get_num_threads(), torch.get_rng_state()
    train_demo_models(ArtifactStore(tmp_path), news, seed=3)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_click_model_scores_a_fresh_favourite_above_a_stale_stranger(store: ArtifactStore) -> None:
    model = load_model(store, "click_model", "1")
    assert model.describe()["feature_names"] == [
        "category_affinity",
        "log_item_popularity",
        "item_age_hours",
        "hour_of_day",
    ]
    fresh, stale = model.predict(
        [
            {
                "category_affinity": 0.6,
                "log_item_popularity": 3.0,
                "item_age_hours": 2.0,
                "hour_of_day": 9,
            },
            {
                "category_affinity": 0.0,
                "log_item_popularity": 3.0,
                "item_age_hours": 200.0,
                "hour_of_day": 9,
            },
        ]
    )
    assert 0.0 < stale < fresh < 1.0
    assert store.manifest("click_model", "1").metrics["auc"] > 0.75


def test_click_model_is_a_click_ranker_snapshotted_at_the_newest_training_click(
    store: ArtifactStore, news: InteractionData
) -> None:
    manifest = store.manifest("click_model", "1")
    assert manifest.format == "click_ranker"
    assert {"items.parquet", "user_categories.parquet"} <= set(manifest.files)
    train, _ = split_last_click(news.interactions)
    assert pd.Timestamp(manifest.extra["as_of"]) == train["ts"].max()
    model = load_model(store, "click_model", "1", {"clock": "snapshot"})
    assert isinstance(model, Scorer)
    assert model.describe()["n_items"] == 300 and model.describe()["n_users"] == 200


def test_click_ranker_features_match_the_training_definition(
    store: ArtifactStore, news: InteractionData
) -> None:
    # Training computes a click's features from every earlier training click. Append
    # one click per item for one reader an hour after the snapshot: its training
    # features must be what the served model rebuilds from its tables.
    train, _ = split_last_click(news.interactions)
    now = train["ts"].max() + pd.Timedelta(hours=1, seconds=17)
    user, items = "u0007", news.items["item_id"].tolist()[::7]
    probes = pd.DataFrame({"user_id": user, "item_id": items, "ts": now})
    examples = click_examples(news.items, pd.concat([train, probes], ignore_index=True), seed=0)
    # Positives come first, in click order, so the probes are the last positives.
    positives = examples[examples["label"] == 1]
    expected = positives[list(CLICK_FEATURES)].tail(len(items)).to_numpy(np.float32)
    model = load_model(store, "click_model", "1")
    assert isinstance(model, ClickRankerAdapter)
    served = model.features(RecommendQuery(user, {"now": now.isoformat()}), items)
    np.testing.assert_allclose(served, expected, rtol=1e-6)
    assert served[:, 0].max() > 0  # the reader has affinity for some of these sections


def test_staff_picks_are_twenty_recent_items_across_sections(
    store: ArtifactStore, news: InteractionData
) -> None:
    picks = load_model(store, "staff_picks", "1")
    (row,) = picks.predict([None])
    assert len(row) == 20 == len(set(row))
    chosen = news.items.set_index("item_id").loc[row]
    assert chosen["category"].nunique() >= 6
    newest = news.items["published_at"].max()
    assert (chosen["published_at"] > newest - np.timedelta64(14, "D")).all()


def test_popularity_counts_the_training_clicks(store: ArtifactStore, news: InteractionData) -> None:
    table = pq.read_table(store.path("popularity", "1") / "counts.parquet")
    assert str(table.schema.field("item_id").type) == "string"
    assert str(table.schema.field("count").type) == "int64"
    # Each reader's last click is held out for evaluation (if they have another), so
    # it is not counted.
    readers_with_history = int((news.interactions["user_id"].value_counts() > 1).sum())
    assert sum(table["count"].to_pylist()) == len(news.interactions) - readers_with_history
    popularity = load_model(store, "popularity", "1")
    (top, count), *_ = popularity.recommend([RecommendQuery("anyone")], 1)[0]
    assert popularity.predict([top, "no-such-item"]) == [count, 0.0]


def test_rerunning_keeps_published_versions_untouched(
    store: ArtifactStore, news: InteractionData
) -> None:
    before = {name: store.manifest(name, "1") for name in DEMO_MODELS}
    again = train_demo_models(store, generate_news_dataset(seed=99, **SMALL), seed=99, force=True)
    assert [m.name for m in again] == list(DEMO_MODELS)
    assert all(m == before[m.name] for m in again)
    for name in DEMO_MODELS:
        store.verify(name, "1")
    assert store.versions("mf") == ["1"]


def _write_movielens(directory: Path) -> Path:
    """A small but learnable ml-latest layout: users rate movies of two genres."""
    rng = np.random.default_rng(0)
    genres = ["Comedy", "Drama", "Horror", "Sci-Fi"]
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, 61):
        liked = rng.choice(len(genres), size=2, replace=False)
        for movie in rng.choice(80, size=25, replace=False):
            rating = 5.0 if movie % len(genres) in liked else 2.0
            lines.append(
                f"{user},{movie + 1},{rating},{1_600_000_000 + int(rng.integers(0, 5_000_000))}"
            )
    directory.mkdir()
    (directory / "ratings.csv").write_text("\n".join(lines) + "\n")
    movies = [f"{m + 1},Movie {m + 1} (2001),{genres[m % len(genres)]}" for m in range(80)]
    (directory / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies) + "\n")
    return directory


def test_demo_train_on_movielens_saves_the_dataset_and_publishes_all_models(tmp_path: Path) -> None:
    manifests = demo_train(
        tmp_path / "store", tmp_path / "data", movielens=_write_movielens(tmp_path / "ml")
    )
    assert [m.name for m in manifests] == list(DEMO_MODELS)
    assert {m.extra["trained_on"] for m in manifests} == {"movielens"}
    saved = InteractionData.load(tmp_path / "data")
    assert saved.source == "movielens" and set(saved.items["category"]) <= {
        "Comedy",
        "Drama",
        "Horror",
        "Sci-Fi",
    }
    store = ArtifactStore(tmp_path / "store")
    for name in ("mf", "staff_picks", "popularity"):
        recommender = load_model(store, name, "1")
        assert isinstance(recommender, Recommender)
        assert len(recommender.recommend([RecommendQuery("1")], 5)[0]) == 5, name
    features = {
        "category_affinity": 0.5,
        "log_item_popularity": 1.0,
        "item_age_hours": 5.0,
        "hour_of_day": 12,
    }
    (probability,) = load_model(store, "click_model", "1").predict([features])
    assert 0.0 < probability < 1.0


def test_demo_train_writes_the_same_simulated_feedback_for_the_same_seed(tmp_path: Path) -> None:
    movielens = _write_movielens(tmp_path / "ml")
    demo_train(tmp_path / "store", tmp_path / "data", movielens=movielens, seed=5)
    table = pq.read_table(tmp_path / "data" / "feedback.parquet")
    assert [str(t) for t in table.schema.types] == [
        "string",
        "string",
        "int8",
        "timestamp[ns, tz=UTC]",
    ]
    assert table.schema.names == ["user_id", "item_id", "label", "ts"]
    data = InteractionData.load(tmp_path / "data")
    expected = simulate_feedback(*split_last_click(data.interactions), seed=5)
    pd.testing.assert_frame_equal(table.to_pandas(), expected)
    # Again into another data directory (the models are already published): same file.
    demo_train(tmp_path / "store", tmp_path / "again", movielens=movielens, seed=5)
    again = (tmp_path / "again" / "feedback.parquet").read_bytes()
    assert again == (tmp_path / "data" / "feedback.parquet").read_bytes()
