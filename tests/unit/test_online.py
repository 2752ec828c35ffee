"""Online learning state: decayed counts, their checkpoint and snapshot, Thompson draws."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from blending.online import DecayedCounts, OnlineSnapshot, thompson_scores

HOUR = 3600.0


def test_a_click_one_half_life_ago_counts_half() -> None:
    counts = DecayedCounts(half_life_s=HOUR)
    counts.observe("a", "impression", at=1000.0)
    counts.observe("a", "click", at=1000.0)
    assert counts.counts("a", now=1000.0 + HOUR) == pytest.approx((0.5, 0.5))
    assert counts.counts("a", now=1000.0 + 2 * HOUR) == pytest.approx((0.25, 0.25))
    assert counts.counts("unseen", now=1000.0) == (0.0, 0.0)


def test_lazy_decay_matches_the_eager_sum_whatever_the_arrival_order() -> None:
    rng = random.Random(7)
    events = [
        (rng.choice("abcde"), rng.choice(["impression", "impression", "click"]), rng.uniform(0, 10))
        for _ in range(500)
    ]
    in_order, shuffled = DecayedCounts(HOUR), DecayedCounts(HOUR)
    for item, event, hours in sorted(events, key=lambda e: e[2]):
        in_order.observe(item, event, at=hours * HOUR)  # type: ignore[arg-type]
    rng.shuffle(events)
    for item, event, hours in events:
        shuffled.observe(item, event, at=hours * HOUR)  # type: ignore[arg-type]
    now = 12 * HOUR
    for item in "abcde":
        eager = [
            sum(0.5 ** ((now - h * HOUR) / HOUR) for i, e, h in events if i == item and e == kind)
            for kind in ("impression", "click")
        ]
        assert in_order.counts(item, now) == pytest.approx(eager, rel=1e-12)
        assert shuffled.counts(item, now) == pytest.approx(eager, rel=1e-12)


def test_a_read_before_the_latest_event_does_not_inflate_counts() -> None:
    counts = DecayedCounts(HOUR)
    counts.observe("a", "impression", at=10 * HOUR)
    assert counts.counts("a", now=9 * HOUR) == (1.0, 0.0)


def test_top_orders_by_decayed_clicks_then_impressions() -> None:
    counts = DecayedCounts(HOUR)
    for _ in range(4):
        counts.observe("old", "click", at=0.0)  # 4 clicks, two half-lives ago: 1.0
    counts.observe("new", "click", at=2 * HOUR)  # 1 click now: 1.0, but more impressions
    counts.observe("new", "impression", at=2 * HOUR)
    counts.observe("fresh", "click", at=2 * HOUR)
    counts.observe("fresh", "click", at=2 * HOUR)
    counts.observe("shown", "impression", at=2 * HOUR)
    top = counts.top(now=2 * HOUR, limit=3)
    assert [item for item, _ in top] == ["fresh", "new", "old"]
    assert [clicks for _, clicks in top] == pytest.approx([2.0, 1.0, 1.0])


def test_snapshot_keeps_the_most_shown_items_with_their_counts() -> None:
    counts = DecayedCounts(HOUR)
    for item, shown in (("a", 5), ("b", 3), ("c", 1)):
        for _ in range(shown):
            counts.observe(item, "impression", at=0.0)
    counts.observe("b", "click", at=0.0)
    snapshot = counts.snapshot(now=HOUR, limit=2)
    assert snapshot.at == HOUR
    assert snapshot.impressions == pytest.approx({"a": 2.5, "b": 1.5})
    assert snapshot.clicks == pytest.approx({"a": 0.0, "b": 0.5})
    assert snapshot.items == ("a", "b") and len(snapshot) == 2


def test_checkpoint_round_trip_is_lossless() -> None:
    counts = DecayedCounts(HOUR)
    counts.observe("a", "impression", at=0.0)
    counts.observe("a", "click", at=HOUR)
    counts.observe("b", "impression", at=3 * HOUR)
    saved = json.loads(json.dumps(counts.to_json()))
    restored = DecayedCounts.from_json(saved)
    assert restored.to_json() == saved  # idempotent: saving again changes nothing
    assert len(restored) == len(counts) == 2 and restored.half_life_s == HOUR
    assert saved["at"] == 3 * HOUR
    for item in ("a", "b"):
        assert restored.counts(item, 5 * HOUR) == pytest.approx(counts.counts(item, 5 * HOUR))
    # and it keeps learning from where it stopped
    restored.observe("a", "click", at=4 * HOUR)
    counts.observe("a", "click", at=4 * HOUR)
    assert restored.counts("a", 5 * HOUR) == pytest.approx(counts.counts("a", 5 * HOUR))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"at": 0, "items": {}}, "checkpoint.half_life_s"),
        ({"half_life_s": 0, "at": 0, "items": {}}, "half_life_s"),
        ({"half_life_s": 1, "at": 0, "items": {"a": [1]}}, "checkpoint.items.a"),
        ({"half_life_s": 1, "at": 0, "items": {"a": [1, -1]}}, "checkpoint.items.a"),
        ({"half_life_s": 1, "at": "now", "items": {}}, "checkpoint.at"),
    ],
)
def test_a_bad_checkpoint_names_its_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        DecayedCounts.from_json(data)


def test_prune_forgets_items_that_faded_away() -> None:
    counts = DecayedCounts(HOUR)
    counts.observe("old", "impression", at=0.0)
    counts.observe("new", "impression", at=20 * HOUR)
    assert counts.prune(now=20 * HOUR, below=0.01) == 1
    assert len(counts) == 1 and counts.counts("new", 20 * HOUR) == (1.0, 0.0)


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 'impression' or 'click', got 'view'"):
        DecayedCounts(HOUR).observe("a", "view", at=0.0)  # type: ignore[arg-type]


def test_snapshot_json_round_trip_and_feedback() -> None:
    snapshot = OnlineSnapshot(at=5.0, impressions={"a": 2.0}, clicks={"a": 1.0, "b": 0.5})
    again = OnlineSnapshot.from_json(json.loads(json.dumps(snapshot.to_json())))
    assert again == snapshot
    assert again.has_feedback("a") and again.has_feedback("b") and not again.has_feedback("c")
    with pytest.raises(ValueError, match=r"snapshot.clicks: expected counts >= 0"):
        OnlineSnapshot.from_json({"at": 1, "clicks": {"a": -1}})


def test_a_well_clicked_item_almost_always_outdraws_a_rarely_clicked_one() -> None:
    snapshot = OnlineSnapshot(
        at=0.0, impressions={"hot": 100, "cold": 100}, clicks={"hot": 50, "cold": 1}
    )
    rng = np.random.default_rng(42)
    wins = sum(
        hot > cold
        for hot, cold in (thompson_scores(snapshot, ["hot", "cold"], rng) for _ in range(1000))
    )
    assert wins >= 995


def test_items_without_counts_draw_from_the_prior() -> None:
    rng = np.random.default_rng(0)
    draws = thompson_scores(OnlineSnapshot(at=0.0), ["x"] * 4000, rng, prior=(1.0, 3.0))
    assert np.mean(draws) == pytest.approx(0.25, abs=0.02)  # Beta(1, 3) has mean 1/4


def test_draws_are_reproducible_with_a_seed_and_clicks_never_exceed_the_beta() -> None:
    # More clicks than impressions (a click logged without its impression) still draws.
    snapshot = OnlineSnapshot(at=0.0, impressions={"a": 1.0}, clicks={"a": 3.0})
    first = thompson_scores(snapshot, ["a", "b"], np.random.default_rng(3))
    assert first == thompson_scores(snapshot, ["a", "b"], np.random.default_rng(3))
    assert all(0.0 <= x <= 1.0 for x in first)


def test_a_non_positive_prior_is_refused() -> None:
    with pytest.raises(ValueError, match="prior: expected two finite numbers > 0"):
        thompson_scores(OnlineSnapshot(at=0.0), ["a"], np.random.default_rng(), prior=(0.0, 1.0))
