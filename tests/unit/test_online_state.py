"""The event log's online learning: checkpoints in the artifact store, restore plus
replay of later feedback. Real store and Parquet dataset, no Ray."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from deployments.config.data import OnlineConfig
from deployments.events.online_state import OnlineState
from deployments.events.store import EventStore
from models.store import ArtifactStore


def _feedback(item: str, event: str, at: float, n: int) -> dict[str, object]:
    return {
        "ts": at,
        "event_id": f"e{n}",
        "event": event,
        "value": None,
        "result_id": f"r{n}",
        "request_id": f"q{n}",
        "item_id": item,
        "position": 1,
        "served_at": int(at),
        "variant": {},
        "team": None,
        "model_versions": {},
        "use_case": "home",
    }


def test_a_checkpoint_restores_and_later_feedback_is_replayed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    events = EventStore(str(tmp_path / "events"), tmp_path / "wal")
    config = OnlineConfig(half_life_hours=1000, checkpoint_every_s=0.01)
    state = OnlineState(config, store, "app")
    now = time.time()
    first = [_feedback("a", "impression", now, 1), _feedback("a", "click", now, 2)]
    for record in first:
        state.observe(str(record["item_id"]), str(record["event"]), float(now))
    events.append("feedback", first)
    time.sleep(0.02)
    assert state.checkpoint_due()
    version = state.checkpoint()
    assert store.versions("online_app") == [version]
    later = [_feedback("b", "impression", time.time() + 1, 3)]
    events.append("feedback", later)
    events.flush()

    restored = OnlineState(config, store, "app")
    replayed = restored.restore(events.read("feedback"))
    assert replayed == 1, "only the feedback after the checkpoint is replayed"
    snapshot = restored.snapshot()
    assert snapshot.clicks["a"] == pytest.approx(1.0, rel=1e-3)
    assert snapshot.impressions["b"] == pytest.approx(1.0, rel=1e-3)


def test_without_a_checkpoint_all_feedback_is_replayed_and_old_ones_are_pruned(
    tmp_path: Path,
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    events = EventStore(str(tmp_path / "events"), tmp_path / "wal")
    events.append("feedback", [_feedback("a", "click", time.time(), n) for n in range(3)])
    events.flush()
    state = OnlineState(OnlineConfig(checkpoint_every_s=0.01), store, "app")
    assert state.restore(events.read("feedback")) == 3
    for _ in range(5):
        state.observe("a", "click", time.time())
        time.sleep(0.002)
        state.checkpoint()
    assert len(store.versions("online_app")) == 3, "the last three checkpoints are kept"
    assert not state.checkpoint_due(), "nothing new since the last checkpoint"


def test_the_state_is_bounded_by_decay_and_by_max_items(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    state = OnlineState(OnlineConfig(half_life_hours=1, max_items=100), store, "app")
    now = time.time()
    # 50 items seen once two days ago (48 half-lives: nothing left of them), then
    # 300 items seen now, item i i+1 times.
    for i in range(50):
        state.observe(f"old{i}", "impression", now - 48 * 3600)
    for i in range(300):
        for _ in range(i + 1):
            state.observe(f"new{i}", "impression", now)
    state.observe("new0", "click", now)
    assert len(state.counts) == 350

    assert state.bound(now) == 250
    assert len(state.counts) == 100
    kept = set(state.snapshot().impressions)
    # The most seen stay; a click does not save an item seen once.
    assert kept == {f"new{i}" for i in range(200, 300)}
    assert state.bound(now) == 0
