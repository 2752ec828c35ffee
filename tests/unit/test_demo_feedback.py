"""Simulated feedback: each held-out click with popularity-drawn items the user never clicked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.demo import generate_news_dataset, simulate_feedback, split_last_click
from models.errors import ConfigError

T0 = pd.Timestamp("2025-03-01T00:00:00", tz="UTC")


def _clicks(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    """(user, item, hours after T0) as an interactions frame."""
    return pd.DataFrame(
        {
            "user_id": [u for u, _, _ in rows],
            "item_id": [i for _, i, _ in rows],
            "ts": [T0 + pd.Timedelta(hours=h) for _, _, h in rows],
        }
    )


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    data = generate_news_dataset(seed=3, n_users=150, n_articles=200, n_clicks=4000)
    return split_last_click(data.interactions)


def test_same_seed_same_frame_other_seed_other_negatives(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = split
    first = simulate_feedback(train, test, seed=1)
    pd.testing.assert_frame_equal(first, simulate_feedback(train, test, seed=1))
    shuffled = test.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(first, simulate_feedback(train, shuffled, seed=1))
    assert not first.equals(simulate_feedback(train, test, seed=2))


def test_columns_and_dtypes(split: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    feedback = simulate_feedback(*split, seed=1)
    assert list(feedback.columns) == ["user_id", "item_id", "label", "ts"]
    assert feedback["label"].dtype == np.int8 and set(feedback["label"]) == {0, 1}
    assert str(feedback["ts"].dtype) == "datetime64[ns, UTC]"
    for column in ("user_id", "item_id"):
        assert all(isinstance(v, str) for v in feedback[column]), column


def test_positives_are_exactly_the_held_out_clicks(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = split
    feedback = simulate_feedback(train, test, seed=1)
    positives = feedback[feedback["label"] == 1].reset_index(drop=True)
    expected = test.sort_values(["user_id", "ts", "item_id"], ignore_index=True)
    pd.testing.assert_frame_equal(
        positives[["user_id", "item_id", "ts"]], expected[["user_id", "item_id", "ts"]]
    )


def test_four_distinct_never_clicked_negatives_share_the_clicks_time(
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = split
    feedback = simulate_feedback(train, test, seed=1)
    everything = pd.concat([train, test])
    clicked = set(zip(everything["user_id"], everything["item_id"], strict=True))
    group = (feedback["label"] == 1).cumsum()
    for _, rows in feedback.groupby(group):
        assert list(rows["label"]) == [1, 0, 0, 0, 0]
        negatives = rows.iloc[1:]
        assert negatives["item_id"].is_unique
        assert rows["ts"].nunique() == 1 and rows["user_id"].nunique() == 1
        pairs = zip(negatives["user_id"], negatives["item_id"], strict=True)
        assert not any(pair in clicked for pair in pairs)
    assert set(feedback["item_id"]) <= set(train["item_id"])  # drawn from trained popularity


def test_negatives_follow_training_popularity() -> None:
    # "hot" has 9 training clicks and "cold" 1: across many held-out clicks hot is drawn
    # far more often than cold, and the readers' own clicks x and y never.
    fans = [(f"f{n}", "hot", 0) for n in range(9)] + [("f9", "cold", 0)]
    test = _clicks([(f"r{n}", "x", 5) for n in range(300)])
    train = _clicks([*fans, *((f"r{n}", "y", 1) for n in range(300))])
    feedback = simulate_feedback(train, test, seed=0, negatives=1)
    drawn = feedback.loc[feedback["label"] == 0, "item_id"].value_counts()
    assert set(drawn.index) == {"hot", "cold"}
    assert drawn["hot"] > 4 * drawn["cold"] > 0


def test_a_user_who_clicked_almost_everything_gets_fewer_negatives() -> None:
    train = _clicks([("a", "i1", 0), ("a", "i2", 1), ("b", "i3", 0)])
    test = _clicks([("a", "i4", 2)])
    feedback = simulate_feedback(train, test, seed=0)
    assert feedback["item_id"].tolist() == ["i4", "i3"]
    assert feedback["label"].tolist() == [1, 0]


def test_negative_count_must_not_be_negative() -> None:
    clicks = _clicks([("a", "i1", 0)])
    with pytest.raises(ConfigError, match="negatives"):
        simulate_feedback(clicks, clicks, seed=0, negatives=-1)
