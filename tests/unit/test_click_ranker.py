"""The click_ranker format: per-request click features rebuilt from its tables, then scored."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import CLICK_AS_OF, publish_tiny_click_ranker

from models.base import Recommender, RecommendQuery, Scorer
from models.errors import ConfigError, InputError, ModelError
from models.formats.click_ranker import ClickRankerAdapter, parse_time
from models.registry import load_model
from models.store import ArtifactStore

# Hand-computed at the snapshot time, 2025-03-02 12:00 UTC: alice clicked sports 3 and
# tech 1 times (affinity 3/4 and 1/4), bob tech twice; items i1, i2, i3 are 36, 30 and
# 12 hours old with 3, 1 and 0 clicks. Columns follow CLICK_FEATURES.
POPULARITY = [math.log1p(3), math.log1p(1), 0.0]
AGES = [36.0, 30.0, 12.0]
EXPECTED = {
    "alice": [
        [a, p, h, 12.0] for a, p, h in zip([0.75, 0.25, 0.75], POPULARITY, AGES, strict=True)
    ],
    "bob": [[a, p, h, 12.0] for a, p, h in zip([0.0, 1.0, 0.0], POPULARITY, AGES, strict=True)],
    "stranger": [[0.0, p, h, 12.0] for p, h in zip(POPULARITY, AGES, strict=True)],
}
ITEMS = ["i1", "i2", "i3"]


def _load(store: ArtifactStore, scratch: Path, **options: Any) -> ClickRankerAdapter:
    publish_tiny_click_ranker(store, scratch)
    model = load_model(store, "ranker", "1", options)
    assert isinstance(model, ClickRankerAdapter)
    return model


def _classifier(store: ArtifactStore) -> Any:
    """The published pipeline itself, to score hand-built rows independently."""
    return joblib.load(store.path("ranker", "1") / "model.joblib")


@pytest.mark.parametrize("user", sorted(EXPECTED))
def test_score_is_the_classifier_on_hand_computed_features(
    store: ArtifactStore, scratch: Path, user: str
) -> None:
    model = _load(store, scratch, clock="snapshot")
    query = RecommendQuery(user)
    expected = np.asarray(EXPECTED[user], dtype=np.float32)
    np.testing.assert_allclose(model.features(query, ITEMS), expected, rtol=1e-6)
    probabilities = _classifier(store).predict_proba(expected)[:, 1]
    # Features are float32: scikit-learn computes in float32, the linear path in float64.
    assert model.score(query, ITEMS) == pytest.approx(list(probabilities), rel=1e-6)


def test_click_ranker_is_a_scorer_and_not_a_recommender(
    store: ArtifactStore, scratch: Path
) -> None:
    model = _load(store, scratch, clock="snapshot")
    assert isinstance(model, Scorer) and not isinstance(model, Recommender)
    info = model.describe()
    assert info["scorer"] is True and info["recommender"] is False
    assert (info["n_items"], info["n_users"], info["clock"]) == (3, 2, "snapshot")
    assert info["as_of"] == CLICK_AS_OF


def test_unknown_items_score_zero_in_place(store: ArtifactStore, scratch: Path) -> None:
    model = _load(store, scratch, clock="snapshot")
    scores = model.score(RecommendQuery("alice"), ["nope", "i3", "also-nope", "i1"])
    known = model.score(RecommendQuery("alice"), ["i3", "i1"])
    assert scores == [0.0, known[0], 0.0, known[1]]
    assert all(0.0 < s < 1.0 for s in known)
    assert model.score(RecommendQuery("alice"), []) == []


def test_the_affine_fresh_item_outranks_the_stale_one(store: ArtifactStore, scratch: Path) -> None:
    model = _load(store, scratch, clock="snapshot")
    _, i2, i3 = model.score(RecommendQuery("alice"), ITEMS)
    assert i3 > i2  # alice reads sports, and i3 is fresher
    bob = model.score(RecommendQuery("bob"), ITEMS)
    assert bob[1] > bob[0] and bob[1] > bob[2]  # bob reads tech only


@pytest.mark.parametrize(
    "now",
    [
        "2025-03-03T00:00:00+00:00",
        "2025-03-03T00:00:00Z",
        "2025-03-03T01:00:00+01:00",
        "2025-03-03T00:00:00",  # no zone: UTC
        1740960000,  # the same instant in epoch seconds
        1740960000.4,  # fractions of a second are dropped, as in training
    ],
)
def test_context_now_sets_item_age_and_hour(
    store: ArtifactStore, scratch: Path, now: object
) -> None:
    model = _load(store, scratch, clock="snapshot")
    rows = model.features(RecommendQuery("alice", {"now": now}), ITEMS)
    # Twelve hours after the snapshot: every item is 12 hours older; midnight is hour 0.
    np.testing.assert_allclose(rows[:, 2], [48.0, 42.0, 24.0])
    np.testing.assert_array_equal(rows[:, 3], [0.0, 0.0, 0.0])


def test_item_published_after_now_has_age_zero(store: ArtifactStore, scratch: Path) -> None:
    model = _load(store, scratch)
    rows = model.features(RecommendQuery("alice", {"now": "2025-03-01T03:00:00Z"}), ITEMS)
    np.testing.assert_allclose(rows[:, 2], [3.0, 0.0, 0.0])


def test_context_hour_overrides_the_hour_of_now(store: ArtifactStore, scratch: Path) -> None:
    model = _load(store, scratch, clock="snapshot")
    at_noon = model.score(RecommendQuery("alice"), ITEMS)
    evening = RecommendQuery("alice", {"hour": 20})
    assert model.features(evening, ITEMS)[:, 3].tolist() == [20.0, 20.0, 20.0]
    rows = np.asarray(EXPECTED["alice"], dtype=np.float32)
    rows[:, 3] = 20.0
    expected = _classifier(store).predict_proba(rows)[:, 1]
    assert model.score(evening, ITEMS) == pytest.approx(list(expected), rel=1e-6)
    assert model.score(evening, ITEMS) != at_noon


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"now": "yesterday"}, "context.now"),
        ({"now": "2025-13-01T00:00:00Z"}, "context.now"),
        ({"now": True}, "context.now"),
        ({"now": float("nan")}, "context.now"),
        ({"now": 1e20}, "context.now"),
        ({"now": [2025, 3, 1]}, "context.now"),
        ({"hour": 24}, "context.hour"),
        ({"hour": -1}, "context.hour"),
        ({"hour": "9"}, "context.hour"),
        ({"hour": 9.5}, "context.hour"),
        ({"hour": True}, "context.hour"),
    ],
)
def test_bad_context_is_an_input_error_naming_the_field(
    store: ArtifactStore, scratch: Path, context: dict[str, object], field: str
) -> None:
    model = _load(store, scratch, clock="snapshot")
    with pytest.raises(InputError) as info:
        model.score(RecommendQuery("alice", context), ITEMS)
    assert info.value.field == field


def test_wall_clock_is_the_default(store: ArtifactStore, scratch: Path) -> None:
    model = _load(store, scratch)
    assert model.describe()["clock"] == "wall"
    before = time.time()
    rows = model.features(RecommendQuery("alice"), ["i3"])
    after = time.time()
    published = datetime(2025, 3, 2, tzinfo=UTC).timestamp()
    assert (before - published) / 3600 - 1 <= rows[0, 2] <= (after - published) / 3600
    assert rows[0, 3] in {datetime.fromtimestamp(t, UTC).hour for t in (before, after)}


def test_snapshot_clock_needs_as_of_in_the_manifest(store: ArtifactStore, scratch: Path) -> None:
    publish_tiny_click_ranker(store, scratch, as_of=None)
    with pytest.raises(ModelError, match="as_of"):
        load_model(store, "ranker", "1", {"clock": "snapshot"})
    # The wall clock does not need it, and context.now works either way.
    model = load_model(store, "ranker", "1")
    assert isinstance(model, ClickRankerAdapter)
    assert model.features(RecommendQuery("bob", {"now": CLICK_AS_OF}), ITEMS)[:, 2].tolist() == [
        36.0,
        30.0,
        12.0,
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"clock": "sundial"}, "option clock"), ({"clok": "wall"}, "unknown options")],
)
def test_bad_options_are_refused_at_load(
    store: ArtifactStore, scratch: Path, options: dict[str, object], message: str
) -> None:
    publish_tiny_click_ranker(store, scratch)
    with pytest.raises(ConfigError, match=message):
        load_model(store, "ranker", "1", options)


def test_predict_with_explicit_features_is_unchanged(store: ArtifactStore, scratch: Path) -> None:
    model = _load(store, scratch)
    rows = EXPECTED["alice"]
    named = [dict(zip(model.feature_names or [], row, strict=True)) for row in rows]
    expected = _classifier(store).predict_proba(np.asarray(rows, dtype=np.float32))[:, 1]
    assert model.predict(rows) == pytest.approx(list(expected), rel=1e-6)
    assert model.predict(named) == pytest.approx(list(expected), rel=1e-6)
    with pytest.raises(InputError, match=r"instances\.0"):
        model.predict([[1.0, 2.0]])


def test_a_table_with_a_duplicate_item_is_refused(store: ArtifactStore, scratch: Path) -> None:
    bad = scratch / "bad"
    bad.mkdir()
    publish_tiny_click_ranker(store, scratch, name="good")
    items = pq.read_table(store.path("good", "1") / "items.parquet")
    pq.write_table(pa.concat_tables([items, items.slice(0, 1)]), bad / "items.parquet")
    files = {f: store.path("good", "1") / f for f in store.manifest("good", "1").files}
    store.publish("dup", "1", "click_ranker", {**files, "items.parquet": bad / "items.parquet"})
    with pytest.raises(ModelError, match="appears twice"):
        load_model(store, "dup", "1")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1970-01-01T01:00:00Z", 3600.0),
        ("1970-01-01T01:00:00", 3600.0),
        (3600, 3600.0),
        (datetime(1970, 1, 1, 1, tzinfo=UTC), 3600.0),
    ],
)
def test_parse_time_reads_iso_epoch_and_datetime(value: object, seconds: float) -> None:
    assert parse_time(value) == seconds
