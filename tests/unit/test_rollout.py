"""A model's live versions in one process: swap, smoke test, canary, shadow, rollback.

Real tiny models from the artifact store (TorchScript, python); no Ray.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from builders import damage, publish_failing_mf, publish_sleepy_model, publish_tiny_mf

from deployments.config.rollout import RolloutConfig
from deployments.hosting.rollout import ModelRollout
from deployments.hosting.rollout_records import overlap_at_k
from models.base import ModelAdapter, Recommender, RecommendQuery, ScoredItem
from models.errors import ModelError, VersionNotLoadedError
from models.formats.python_adapter import publish_python_model
from models.registry import load_model
from models.store import ArtifactStore


@pytest.fixture
def mf_store(store: ArtifactStore, tmp_path: Path) -> ArtifactStore:
    """mf versions 1 and 2 (the same tiny model), 3 corrupt, 4 raising on every call."""
    for version in ("1", "2", "3"):
        scratch = tmp_path / version
        scratch.mkdir()
        publish_tiny_mf(store, scratch, version=version)
    damage(store, "mf", "model.pt", version="3")
    publish_failing_mf(store, tmp_path, name="failing")
    failing = store.path("failing", "1")
    store.publish(
        "mf",
        "4",
        "torchscript",
        {p.name: p for p in failing.iterdir() if p.name != "manifest.json"},
    )
    return store


def _rollout(store: ArtifactStore, name: str = "mf") -> ModelRollout:
    return ModelRollout(name, lambda version: load_model(store, name, version), "inline")


def _recommend(rollout: ModelRollout, user: str) -> tuple[list[ScoredItem], str]:
    async def call(adapter: ModelAdapter) -> list[ScoredItem]:
        assert isinstance(adapter, Recommender)
        return adapter.recommend([RecommendQuery(user)], 3)[0]

    return asyncio.run(rollout.run_one(user, call))


def _versions(rollout: ModelRollout) -> dict[str, dict[str, Any]]:
    return {f"{v['role']}:{v['version']}": v for v in rollout.describe()["versions"]}


def test_a_new_version_is_swapped_in_after_its_smoke_test(mf_store: ArtifactStore) -> None:
    rollout = _rollout(mf_store)
    assert rollout.apply(RolloutConfig(version="1")) == ["version 1 serves live traffic"]
    assert _recommend(rollout, "alice") == ([("i0", 5.0), ("i1", 4.0), ("i2", 3.0)], "1")
    changes = rollout.apply(RolloutConfig(version="2"))
    assert changes == ["version 2 serves live traffic (was 1)"]
    assert _recommend(rollout, "alice")[1] == "2"
    status = rollout.describe()
    assert status["version"] == "2" and status["status"] == "serving"
    (live,) = status["versions"]
    assert live["traffic_percent"] == 100 and live["load_ms"] > 0 and live["loaded_at"]
    assert [e["message"] for e in status["events"]][-1] == changes[0]


@pytest.mark.parametrize(
    ("version", "why"),
    [("3", "ChecksumMismatchError"), ("4", "failed its smoke test: recommend"), ("9", "not in")],
)
def test_a_version_that_fails_to_load_or_answer_leaves_the_old_one_serving(
    mf_store: ArtifactStore, version: str, why: str
) -> None:
    rollout = _rollout(mf_store)
    rollout.apply(RolloutConfig(version="1"))
    (change,) = rollout.apply(RolloutConfig(version=version))
    assert f"version {version} was not swapped in" in change and why in change
    assert change.endswith("version 1 keeps serving")
    assert _recommend(rollout, "alice")[1] == "1"
    versions = _versions(rollout)
    assert versions[f"live:{version}"]["status"] == "failed"
    assert why in versions[f"live:{version}"]["reason"]
    assert versions["live:1"]["status"] == "serving"
    assert versions["live:1"]["traffic_percent"] == 100


def test_a_first_version_that_fails_is_retried_by_applying_again(
    mf_store: ArtifactStore, tmp_path: Path
) -> None:
    original = damage(mf_store, "mf", "model.pt", version="1")
    rollout = _rollout(mf_store)
    rollout.apply(RolloutConfig(version="1"))
    with pytest.raises(ModelError, match="checksum mismatch"):
        _recommend(rollout, "alice")
    assert rollout.describe()["status"] == "failed"
    (mf_store.path("mf", "1") / "model.pt").write_bytes(original)
    rollout.apply(RolloutConfig(version="1"))  # the same config: retried while nothing serves
    assert _recommend(rollout, "alice")[1] == "1"


def test_a_version_shows_as_loading_beside_the_serving_one(mf_store: ArtifactStore) -> None:
    release = threading.Event()
    loading = threading.Event()

    def slow_loader(version: str) -> ModelAdapter:
        if version == "2":
            loading.set()
            release.wait(10)
        return load_model(mf_store, "mf", version)

    rollout = ModelRollout("mf", slow_loader, "replica")
    rollout.apply(RolloutConfig(version="1"))
    worker = threading.Thread(target=rollout.apply, args=(RolloutConfig(version="2"),))
    worker.start()
    assert loading.wait(10)
    versions = _versions(rollout)
    assert versions["live:2"]["status"] == "loading"
    assert versions["live:1"]["status"] == "serving"
    assert _recommend(rollout, "alice")[1] == "1"  # still answering meanwhile
    release.set()
    worker.join(10)
    assert _recommend(rollout, "alice")[1] == "2"


def test_a_canary_serves_its_share_of_users_sticky_per_user(mf_store: ArtifactStore) -> None:
    rollout = _rollout(mf_store)
    rollout.apply(
        RolloutConfig.model_validate({"version": "1", "canary": {"version": "2", "percent": 20}})
    )
    users = [f"user-{n}" for n in range(2000)]
    first = {u: rollout.choose(u).adapter.version for u in users}
    share = sum(v == "2" for v in first.values()) / len(users)
    assert 0.17 <= share <= 0.23
    assert all(rollout.choose(u).adapter.version == first[u] for u in users[:500])
    live, canary = (_versions(rollout)[k]["traffic_percent"] for k in ("live:1", "canary:2"))
    assert (live, canary) == (80, 20)


def _breaking_store(store: ArtifactStore) -> ArtifactStore:
    items = [f"s{i}" for i in range(5)]
    publish_sleepy_model(store, "rec", 0.0, items, version="1")
    publish_python_model(store, "rec", "2", "support_models:BreaksAfter", {"items": items})
    publish_sleepy_model(store, "rec", 0.02, items, version="3")
    return store


def test_a_failing_canary_is_answered_by_live_then_rolled_back(store: ArtifactStore) -> None:
    rollout = _rollout(_breaking_store(store), "rec")
    config = {
        "version": "1",
        "canary": {"version": "2", "percent": 50},
        "rollback": {"min_calls": 5, "max_error_rate": 0.2, "window_s": 60},
    }
    rollout.apply(RolloutConfig.model_validate(config))
    canary_users = [u for u in (f"u{n}" for n in range(200)) if rollout.choose(u).canary]
    answered = [_recommend(rollout, u)[1] for u in canary_users[:5]]
    assert answered == ["1"] * 5, "the live version answers for the failing canary"
    canary = _versions(rollout)["canary:2"]
    assert canary["status"] == "rolled_back" and canary["traffic_percent"] == 0
    assert "error rate 100.0% > 20.0% (5 of 5 calls in 60 s)" in canary["reason"]
    assert not any(rollout.choose(u).canary for u in canary_users)
    rollout.apply(RolloutConfig.model_validate(config))  # the same config: stays rolled back
    assert _versions(rollout)["canary:2"]["status"] == "rolled_back"
    assert "canary 2 rolled back" in rollout.describe()["events"][-1]["message"]


def test_a_slow_canary_is_rolled_back_on_its_p99(store: ArtifactStore) -> None:
    rollout = _rollout(_breaking_store(store), "rec")
    config = {
        "version": "1",
        "canary": {"version": "3", "percent": 99},
        "rollback": {"min_calls": 3, "max_p99_ms": 5},
    }
    rollout.apply(RolloutConfig.model_validate(config))
    users = [u for u in (f"u{n}" for n in range(50)) if rollout.choose(u).canary]
    for user in users[:3]:
        assert _recommend(rollout, user)[1] == "3"  # slow, but it answers
    canary = _versions(rollout)["canary:3"]
    assert canary["status"] == "rolled_back" and "p99 latency" in canary["reason"]


def test_a_shadow_sees_calls_off_the_request_path_and_is_compared(store: ArtifactStore) -> None:
    rollout = _rollout(_breaking_store(store), "rec")
    rollout.apply(
        RolloutConfig.model_validate({"version": "1", "shadow": {"version": "3", "k": 3}})
    )

    def compare(live: list[str]) -> Any:
        return lambda rows, k: overlap_at_k([live], [[i for i, _ in rows[0]]], k)

    async def traffic() -> None:
        for n in range(4):
            adapter = rollout.choose(f"u{n}").adapter
            assert isinstance(adapter, Recommender) and adapter.version == "1"  # never shadow
            live = [i for i, _ in adapter.recommend([RecommendQuery(f"u{n}")], 3)[0]]
            rollout.mirror(lambda a: a.recommend([RecommendQuery("x")], 3), compare(live))  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)

    asyncio.run(traffic())
    shadow = _versions(rollout)["shadow:3"]
    assert shadow["traffic_percent"] == 0 and shadow["status"] == "serving"
    assert shadow["window"]["calls"] == 4 and shadow["window"]["errors"] == 0
    assert shadow["window"]["p50_ms"] >= 20  # version 3 sleeps 20 ms per call
    assert shadow["overlap_at_k"] == 1.0 and shadow["k"] == 3
    # A shadow that raises (after its smoke test) is counted, and nobody notices.
    rollout.apply(RolloutConfig.model_validate({"version": "1", "shadow": {"version": "2"}}))
    asyncio.run(traffic())
    shadow = _versions(rollout)["shadow:2"]
    assert shadow["window"]["calls"] == 4 and shadow["window"]["errors"] == 4


def test_an_explicit_version_is_served_only_when_loaded(mf_store: ArtifactStore) -> None:
    rollout = _rollout(mf_store)
    rollout.apply(RolloutConfig.model_validate({"version": "1", "shadow": {"version": "2"}}))
    assert rollout.version_adapter("2").version == "2"
    with pytest.raises(VersionNotLoadedError, match="version '3' is not served"):
        rollout.version_adapter("3")


def test_overlap_at_k() -> None:
    assert overlap_at_k([["a", "b"]], [["b", "a"]], 2) == 1.0
    assert overlap_at_k([["a", "b"], ["c", "d"]], [["a", "x"], ["y", "z"]], 2) == 0.25
