"""Seen items: the event log's per-user feed, each ingress's history of it, and use
cases that hide what a user acted on and demote what they ignored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scripted_models import Scripted, ScriptedModels

from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.items import ItemTable
from blending.seen import EVENT_KINDS, SeenSpec, UserHistory
from blending.spec import UseCaseSpec
from deployments.events.records import FeedbackRecord, ServedList
from deployments.events.seen_feed import SeenFeed

NOW = 1_800_000_000.0
DAY = 86_400.0
SHOWN, CLICK, CONVERSION = (EVENT_KINDS[k] for k in ("shown", "click", "conversion"))


def _history(**bounds: int) -> UserHistory:
    return UserHistory(ItemTable(), retain_s=30 * DAY, **bounds)


def _add(history: UserHistory, rows: list[tuple[str, str, float, int]]) -> None:
    users, items, times, kinds = zip(*rows, strict=True)
    history.add(list(users), list(items), np.array(times), np.array(kinds))


def _ids(history: UserHistory, indices: np.ndarray) -> list[str]:
    return sorted(history.table.ids_of(indices))


def test_acted_items_are_hidden_and_ignored_ones_demoted() -> None:
    history = _history()
    _add(
        history,
        [
            *[("u", item, NOW - 10, SHOWN) for item in "abc"],
            *[("u", item, NOW - 5, SHOWN) for item in "ab"],
            ("u", "a", NOW - 4, CLICK),
            ("u", "d", NOW - 3, CONVERSION),
            ("v", "b", NOW - 3, CLICK),
        ],
    )
    seen = history.seen("u", SeenSpec(demote_after=2, demote_factor=0.25), NOW)
    assert seen is not None
    assert _ids(history, seen.excluded) == ["a", "d"]
    # b shown twice, never clicked by u (v's click is v's); a was clicked; c shown once.
    assert _ids(history, seen.demoted) == ["b"] and seen.demote_factor == 0.25
    only_conversions = history.seen("u", SeenSpec(exclude=["conversion"]), NOW)
    assert only_conversions is not None and _ids(history, only_conversions.excluded) == ["d"]
    assert history.seen("nobody", SeenSpec(), NOW) is None


def test_only_events_inside_the_window_count() -> None:
    history = _history()
    _add(history, [("u", "old", NOW - 10 * DAY, CLICK), ("u", "new", NOW - DAY, CLICK)])
    seen = history.seen("u", SeenSpec(window_days=7), NOW)
    assert seen is not None and _ids(history, seen.excluded) == ["new"]


def test_the_history_is_bounded_in_users_and_events_per_user() -> None:
    history = _history(max_users=2, max_events=3)
    _add(history, [("u", f"i{n}", NOW - 100 + n, CLICK) for n in range(5)])
    _add(history, [("v", "x", NOW - 2, CLICK)])
    seen = history.seen("u", SeenSpec(), NOW)
    assert seen is not None and _ids(history, seen.excluded) == ["i2", "i3", "i4"]
    _add(history, [("w", "y", NOW - 1, CLICK)])  # u is the least recently active
    assert history.seen("u", SeenSpec(), NOW) is None
    assert len(history) == 2 and history.forgotten_users == 1


def test_a_use_case_with_seen_hides_and_demotes_and_over_fetches() -> None:
    spec = UseCaseSpec.model_validate(
        {
            "nodes": {"cf": {"kind": "source", "model": "mf", "candidates": 3}},
            "output": "cf",
            "seen": {"demote_after": 2, "demote_factor": 0.1},
        }
    )
    plan = BlendPlan("home", spec)
    history = _history()
    _add(history, [("u", "a", NOW - 9, CLICK), ("u", "b", NOW - 8, CLICK)])
    _add(history, [("u", "c", NOW - 7, SHOWN), ("u", "c", NOW - 6, SHOWN)])
    ranked = [(f"{letter}", 1.0 - n / 10) for n, letter in enumerate("abcdefg")]
    models = ScriptedModels(mf=Scripted(ranked))
    seen = history.seen("u", spec.seen, NOW)  # type: ignore[arg-type]
    ctx = BlendContext("u", 3, table=history.table, now=NOW, seen=seen)
    outcome = asyncio.run(plan.run(ctx, models))
    # a and b hidden; c (0.8, shown twice) demoted to 0.08 below d and e; the source
    # was asked for 3 + 2 hidden items, so the list is still 3 long.
    assert [c.item_id for c in outcome.items] == ["d", "e", "c"]
    assert models.asked["mf"] == 5
    (demotion,) = [c for c in outcome.items[2].components if c.role == "boost"]
    assert demotion.weight == 0.1 and demotion.raw_score == pytest.approx(0.8)


def _served(request: str, user: str, items: list[str], ts: float) -> ServedList:
    return ServedList(ts, request, user, {}, items, [], {}, 1.0, False, "home")


def _feedback(request: str, item: str, event: str, ts: float) -> FeedbackRecord:
    return FeedbackRecord(
        ts, f"e-{request}-{item}", event, None, "r", request, item, 1, 0, {}, None, {}, "home"
    )


def test_the_feed_attributes_feedback_to_the_user_the_list_was_served_to() -> None:
    feed = SeenFeed(max_events=1000)
    feed.served(_served("r1", "p1", ["a", "b"], NOW))
    feed.feedback(_feedback("r1", "b", "click", NOW + 1))
    feed.feedback(_feedback("r1", "a", "impression", NOW + 1))  # not an action
    feed.feedback(_feedback("r-unknown", "a", "click", NOW + 1))  # no list: no user
    page = feed.since("", 0)
    assert page.epoch == feed.epoch and page.cursor == 3 and not page.gap
    assert list(zip(page.users, page.items, page.kinds, strict=True)) == [
        ("p1", "a", SHOWN),
        ("p1", "b", SHOWN),
        ("p1", "b", CLICK),
    ]
    assert feed.since(feed.epoch, 3).users == []


def test_a_follower_too_far_behind_is_told_of_the_gap() -> None:
    feed = SeenFeed(max_events=1000)
    for n in range(1100):
        feed.served(_served(f"r{n}", "p", [f"i{n}"], NOW + n))
    page = feed.since(feed.epoch, 0)
    assert page.gap and page.items[0] == "i250" and page.cursor == 1100
    assert not feed.since("another epoch", 0).gap  # a new follower starts at the start


def test_a_restarted_feed_is_refilled_from_the_stored_events() -> None:
    served = pa.table(
        {
            "ts": [NOW, NOW + 5],
            "request_id": ["r1", "r2"],
            "user": ["p1", "p2"],
            "items": [["a", "b"], ["c"]],
        }
    )
    feedback = pa.table(
        {"ts": [NOW + 1], "event": ["conversion"], "request_id": ["r1"], "item_id": ["b"]}
    )
    feed = SeenFeed()
    feed.restore(served, feedback)
    page = feed.since("", 0)
    assert list(zip(page.users, page.items, page.kinds, strict=True)) == [
        ("p1", "a", SHOWN),
        ("p1", "b", SHOWN),
        ("p1", "b", CONVERSION),
        ("p2", "c", SHOWN),
    ]


def test_a_restarted_event_log_refills_its_seen_feed_from_the_dataset(tmp_path: Path) -> None:
    from deployments.config import EventsConfig
    from deployments.events.journal import EventJournal
    from models.store import ArtifactStore

    def journal() -> EventJournal:
        config = EventsConfig(uri=str(tmp_path / "events"), wal_dir=str(tmp_path / "wal"))
        return EventJournal(config, ArtifactStore(tmp_path / "artifacts"), "app")

    first = journal()
    now = time.time()
    asyncio.run(first.append_served([_served("r1", "p1", ["a", "b"], now)]))
    asyncio.run(first.append_feedback([_feedback("r1", "b", "click", now + 1)]))
    first.store.flush()
    first.close()
    page = journal().seen_since("", 0)
    assert list(zip(page.users, page.items, page.kinds, strict=True)) == [
        ("p1", "a", SHOWN),
        ("p1", "b", SHOWN),
        ("p1", "b", CLICK),
    ]
