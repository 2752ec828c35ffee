"""The live catalogue and online learning against a real local Ray Serve: deletions
and new items reach every answer within a second, changes and learned state survive
restarts, the bandit learns from clicks, bad input writes nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from load import ConstantLoad
from serving_cluster import Deployed, alive_replicas, until

pytestmark = pytest.mark.integration


def _version(client: httpx.Client) -> int:
    response = client.get("/v1/catalog")
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


def _items(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body.get("items", [])]


def _load(client: httpx.Client, use_case: str, users: list[str], rate: float = 30) -> ConstantLoad:
    return ConstantLoad(
        f"{client.base_url}/v1/recommend/{use_case}",
        client.headers,
        rate,
        lambda n: {"user_id": users[n % len(users)], "k": 10},
    )


def test_a_deleted_item_leaves_every_answer_within_a_second(client: httpx.Client) -> None:
    users = [f"u{n:04d}" for n in range(1, 60)]
    seen = Counter(
        item
        for user in users[:20]
        for item in _items(client.post("/v1/recommend/home", json={"user_id": user}).json())
    )
    victim, shown = seen.most_common(1)[0]
    assert shown >= 10, "a highly ranked item"
    original = client.get(f"/v1/catalog/items/{victim}").json()
    try:
        with _load(client, "home", users) as load:
            time.sleep(2)
            deleted = client.delete(f"/v1/catalog/items/{victim}")
            acked = time.monotonic()
            assert deleted.status_code == 200, deleted.text
            time.sleep(3)
        assert load.statuses() == {200: len(load.samples)}
        before = [s for s in load.samples if s.done < acked]
        after = [s for s in load.samples if s.sent >= acked + 1.0]
        assert any(victim in _items(s.body) for s in before), "it was being recommended"
        assert len(after) >= 40
        assert not [s for s in after if victim in _items(s.body)], "shown after 1 s"
        first_clean = min(
            (s.sent for s in load.samples if s.sent >= acked and victim not in _items(s.body)),
            default=None,
        )
        print(f"deleted {victim}: answers without it from {first_clean - acked:.3f} s")
        assert client.get(f"/v1/catalog/items/{victim}").status_code == 404
    finally:
        restored = client.put(f"/v1/catalog/items/{victim}", json=original)
        assert restored.status_code == 200, restored.text


def test_a_new_item_reaches_every_answer_within_a_second(client: httpx.Client) -> None:
    item_id = f"new-{uuid.uuid4().hex[:8]}"
    users = [f"u{n:04d}" for n in range(100, 140)]
    with _load(client, "latest", users) as load:
        time.sleep(1.5)
        created = client.put(
            f"/v1/catalog/items/{item_id}",
            json={
                "title": "Just published",
                "category": "tech",
                "published_at": datetime.now(UTC).isoformat(),
                "attributes": {"author": "desk"},
            },
        )
        acked = time.monotonic()
        assert created.status_code == 200, created.text
        time.sleep(3)
    assert load.statuses() == {200: len(load.samples)}
    after = [s for s in load.samples if s.sent >= acked + 1.0]
    assert len(after) >= 40
    missing = [s for s in after if item_id not in _items(s.body)]
    assert not missing, f"{len(missing)} of {len(after)} answers lack the new item"
    shown = [s for s in load.samples if item_id in _items(s.body)]
    print(f"new item {item_id}: first shown {min(s.sent for s in shown) - acked:.3f} s after")
    component = next(
        c
        for s in shown[:1]
        for i in s.body["items"]
        if i["item_id"] == item_id
        for c in i["components"]
    )
    assert component["model"].startswith("freshness")
    stored = client.get(f"/v1/catalog/items/{item_id}").json()
    assert stored["title"] == "Just published" and stored["attributes"] == {"author": "desk"}
    assert client.delete(f"/v1/catalog/items/{item_id}").status_code == 200


def test_bad_catalogue_input_is_refused_naming_it_and_writes_nothing(
    client: httpx.Client,
) -> None:
    before = _version(client)
    unknown = client.put("/v1/catalog/items/x1", json={"title": "t", "colour": "red"})
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "colour"
    naive = client.put("/v1/catalog/items/x1", json={"published_at": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["error"]["field"] == "published_at"
    other_id = client.put("/v1/catalog/items/x1", json={"item_id": "x2"})
    assert other_id.status_code == 422 and other_id.json()["error"]["field"] == "item_id"
    batch = {"items": [{"item_id": "ok-1", "title": "fine"}, {"title": "no id"}]}
    partial = client.post("/v1/catalog/items:batch", json=batch)
    assert partial.status_code == 422 and partial.json()["error"]["field"] == "items.1.item_id"
    oversized = {"items": [{"item_id": f"b{n}"} for n in range(1001)]}
    too_many = client.post("/v1/catalog/items:batch", json=oversized)
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "items"
    assert client.patch("/v1/catalog/items/never-was", json={"title": "x"}).status_code == 404
    assert client.delete("/v1/catalog/items/never-was").status_code == 404
    assert client.get("/v1/catalog/items/ok-1").status_code == 404, "nothing partial written"
    assert _version(client) == before
    good = client.post(
        "/v1/catalog/items:batch",
        json={"items": [{"item_id": f"batch-{n}", "category": "tech"} for n in range(3)]},
    )
    assert good.status_code == 200 and good.json()["count"] == 3
    assert _version(client) == before + 3, "each item of the batch a version"


def _kill(deployed: Deployed, deployment: str) -> None:
    (actor,) = alive_replicas(deployed, deployment)
    os.kill(int(actor["pid"]), signal.SIGKILL)


def _click_through(client: httpx.Client, use_case: str, users: list[str], favourite: str) -> int:
    """Users see `use_case` and click `favourite` whenever it is shown, little else."""
    rng = random.Random(5)
    clicks = 0
    for user in users:
        body = client.post(f"/v1/recommend/{use_case}", json={"user_id": user}).json()
        events = []
        for item in body["items"]:
            events.append({"result_id": item["result_id"], "event": "impression"})
            if item["item_id"] == favourite or rng.random() < 0.01:
                events.append({"result_id": item["result_id"], "event": "click"})
                clicks += item["item_id"] == favourite
        assert client.post("/v1/feedback", json={"events": events}).status_code == 202
    return clicks


def _bandit_rank(client: httpx.Client, item: str, users: list[str]) -> float:
    """The mean position of ``item`` in the bandit's own share of `latest` (11 if absent)."""
    ranks = []
    for user in users:
        body = client.post("/v1/recommend/latest", json={"user_id": user, "k": 10}).json()
        bandit = [
            i["item_id"]
            for i in body["items"]
            if any(c["model"] == "bandit" for c in i["components"])
        ]
        ranks.append(bandit.index(item) + 1 if item in bandit else 11)
    return sum(ranks) / len(ranks)


def test_the_bandit_learns_from_clicks_through_the_service(client: httpx.Client) -> None:
    _click_through(client, "latest", [f"warm-{n}" for n in range(30)], favourite="")
    time.sleep(2.5)  # ingresses fetch the online state every second
    body = client.post("/v1/recommend/latest", json={"user_id": "pick-a-favourite"}).json()
    candidates = [
        i["item_id"] for i in body["items"] if any(c["model"] == "bandit" for c in i["components"])
    ]
    assert candidates, body
    favourite = candidates[-1]  # the bandit's least favourite of what it shows now
    probe = [f"probe-{n}" for n in range(40)]
    before = _bandit_rank(client, favourite, probe)
    clicks = _click_through(client, "latest", [f"fan-{n}" for n in range(150)], favourite)
    time.sleep(2.5)  # ingresses fetch the online state every second
    after = _bandit_rank(client, favourite, probe)
    print(f"bandit: {favourite} clicked {clicks} times; mean rank {before:.1f} -> {after:.1f}")
    assert clicks >= 10
    assert after < before - 2, (before, after)


def test_catalogue_and_learned_state_survive_their_processes_being_killed(
    client: httpx.Client, deployed: Deployed
) -> None:
    item_id = f"durable-{uuid.uuid4().hex[:8]}"
    assert client.put(f"/v1/catalog/items/{item_id}", json={"category": "tech"}).status_code == 200
    gone = f"gone-{uuid.uuid4().hex[:8]}"
    assert client.put(f"/v1/catalog/items/{gone}", json={}).status_code == 200
    assert client.delete(f"/v1/catalog/items/{gone}").status_code == 200
    version = _version(client)
    time.sleep(2.5)  # a checkpoint of the online state (every 2 s in this cluster)
    snapshot_before = asyncio.run(_online(client))
    _kill(deployed, "Catalog")
    _kill(deployed, "EventLog")
    until(lambda: _version(client) == version, what="the catalogue back at its version")
    assert client.get(f"/v1/catalog/items/{item_id}").json()["category"] == "tech"
    assert client.get(f"/v1/catalog/items/{gone}").status_code == 404
    snapshot_after = until(lambda: asyncio.run(_online(client)), what="the online state")
    shared = set(snapshot_before) & set(snapshot_after)
    assert len(shared) >= 0.9 * len(snapshot_before), "the learned items are back"


async def _online(client: httpx.Client) -> dict[str, float]:
    """Items and their decayed impressions, as the event log has learned them."""
    async with httpx.AsyncClient(base_url=str(client.base_url), headers=client.headers) as http:
        response = await http.get("/v1/online")
        assert response.status_code == 200, response.text
        impressions: dict[str, float] = response.json()["impressions"]
        return impressions
