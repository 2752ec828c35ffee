"""Systematic evaluation against a real local Ray Serve: feedback, the durable event
log (a real kill of its process), online experiment statistics on a simulated
population, and the dashboard in a real headless Chromium."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from browser import chromium_page
from load import ConstantLoad
from serving_cluster import TRIAL_USE_CASE, Deployed, alive_replicas, until

from deployments.events.feedback import Pseudonymizer
from deployments.events.store import read_events
from deployments.local.demo_traffic import Readers, run_demo_traffic

pytestmark = pytest.mark.integration


def _dataset(home: Path, kind: str) -> pa.Table:
    return read_events(pafs.LocalFileSystem(), str(home / "events" / "blendserve"), kind)


def _served(client: httpx.Client, user: str, use_case: str = "home", k: int = 5) -> dict[str, Any]:
    response = client.post(f"/v1/recommend/{use_case}", json={"user_id": user, "k": k})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_feedback_is_checked_per_entry_stored_once_and_counted(
    client: httpx.Client, serve_home: Path
) -> None:
    items = _served(client, "feedback-user")["items"]
    seen, clicked = f"seen-{uuid.uuid4().hex}", f"click-{uuid.uuid4().hex}"
    batch = {
        "events": [
            {"result_id": items[0]["result_id"], "event": "impression", "event_id": seen},
            {"result_id": items[0]["result_id"][:-3] + "AAA", "event": "click"},
            {"result_id": items[1]["result_id"], "event": "teleport"},
            {"result_id": items[0]["result_id"], "event": "click", "event_id": clicked},
        ]
    }
    first = client.post("/v1/feedback", json=batch)
    assert first.status_code == 422, first.text  # two refused, named; two stored
    body = first.json()
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [r["field"] for r in body["rejected"]] == ["events.1.result_id", "events.2.event"]
    assert body["error"]["field"] == "events.1.result_id"
    again = client.post("/v1/feedback", json=batch).json()
    assert (again["accepted"], again["duplicates"]) == (0, 2), "resent event ids are stored once"
    good = {"events": [batch["events"][0], batch["events"][3]]}
    assert client.post("/v1/feedback", json=good).status_code == 202
    single = client.post("/v1/feedback", json={"result_id": "not-ours", "event": "click"})
    assert single.status_code == 422 and single.json()["error"]["field"] == "result_id"
    assert (
        client.post(
            "/v1/feedback", content=b"{oops", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    too_many = {"events": [{"result_id": items[0]["result_id"], "event": "click"}] * 1001}
    assert client.post("/v1/feedback", json=too_many).json()["error"]["field"] == "events"

    def stored() -> bool:
        ids = _dataset(serve_home, "feedback").column("event_id").to_pylist()
        return ids.count(seen) == 1 and ids.count(clicked) == 1

    until(stored, what="both events in the Parquet dataset, once each")
    row = next(r for r in _dataset(serve_home, "feedback").to_pylist() if r["event_id"] == clicked)
    assert (row["use_case"], row["item_id"], row["position"]) == ("home", items[0]["item_id"], 1)


def test_served_lists_reach_parquet_under_a_pseudonym(
    client: httpx.Client, serve_home: Path, deployed: Deployed
) -> None:
    user = f"person-{uuid.uuid4().hex[:8]}"
    served = _served(client, user, use_case="discover")
    salt = deployed.cluster.env()["BLENDSERVE_PSEUDONYM_SALT"].encode()
    pseudonym = Pseudonymizer(salt)(user)

    def logged() -> list[dict[str, Any]]:
        rows = _dataset(serve_home, "served").to_pylist()
        return [r for r in rows if r["request_id"] == served["request_id"]]

    until(lambda: bool(logged()), what="the served list in Parquet within a second or two")
    (row,) = logged()
    assert row["user"] == pseudonym and user not in str(row)
    assert row["items"] == [i["item_id"] for i in served["items"]]
    assert dict(row["variant"]) == served["variant"]
    assert dict(row["model_versions"]) == served["model_versions"]
    assert row["latency_ms"] > 0 and row["degraded"] is served["degraded"]
    users = _dataset(serve_home, "served").column("user").to_pylist()
    assert not any(u.startswith(("u0", "person-", "feedback-")) for u in users)


def _event_log_replica(deployed: Deployed) -> dict[str, Any]:
    (actor,) = alive_replicas(deployed, "EventLog")
    return actor


def test_acknowledged_feedback_and_served_lists_survive_killing_the_event_log_once_each(
    client: httpx.Client, deployed: Deployed, serve_home: Path
) -> None:
    """Feedback batches retried until acknowledged, and recommendations answered
    meanwhile, while the event log is SIGKILLed: every acknowledged event and every
    answered list is in Parquet exactly once (a batch the dead replica had written is
    resent by its client or the ingress, and stored once)."""
    result_ids = [i["result_id"] for i in _served(client, "durable-user", k=10)["items"]]
    prefix = f"durable-{uuid.uuid4().hex[:8]}"
    batches = [
        [
            {
                "result_id": result_ids[(b * 20 + n) % len(result_ids)],
                "event": ("impression", "click")[n % 2],
                "event_id": f"{prefix}-{b}-{n}",
            }
            for n in range(20)
        ]
        for b in range(30)
    ]
    acked: list[str] = []
    refused: Counter[int] = Counter()
    victim = _event_log_replica(deployed)
    users = [f"listed-{n}" for n in range(40)]
    recommend = ConstantLoad(
        f"{deployed.url}/v1/recommend/home",
        client.headers,
        20,
        lambda n: {"user_id": users[n % len(users)], "k": 5},
    )
    with (
        recommend as load,
        httpx.Client(base_url=deployed.url, headers=client.headers, timeout=10) as http,
    ):
        for number, batch in enumerate(batches):
            if number == 8:
                os.kill(int(victim["pid"]), signal.SIGKILL)  # mid-stream, no goodbye
            deadline = time.monotonic() + 120
            while True:  # a client retries until its events are acknowledged
                try:
                    answer = http.post("/v1/feedback", json={"events": batch})
                    if answer.status_code == 202:
                        break
                    refused[answer.status_code] += 1
                except httpx.HTTPError:
                    refused[0] += 1
                assert time.monotonic() < deadline, f"never acknowledged: {refused}"
                time.sleep(0.2)
            acked += [event["event_id"] for event in batch]
    assert _event_log_replica(deployed)["actor_id"] != victim["actor_id"], "a new event log"
    assert set(refused) <= {0, 503}, refused

    def ours() -> Counter[str]:
        ids = _dataset(serve_home, "feedback").column("event_id").to_pylist()
        return Counter(i for i in ids if i.startswith(prefix))

    until(lambda: set(ours()) == set(acked), what="every acknowledged event in Parquet")
    assert set(ours().values()) == {1}, "each acknowledged event exactly once"
    assert len(acked) == 600
    answered = {s.body["request_id"] for s in load.samples if s.status == 200}
    assert len(answered) >= 0.99 * len(load.samples) and len(answered) >= 40, load.statuses()

    def listed() -> Counter[str]:
        ids = _dataset(serve_home, "served").column("request_id").to_pylist()
        return Counter(i for i in ids if i in answered)

    until(lambda: set(listed()) == answered, timeout_s=90, what="every answered list in Parquet")
    assert set(listed().values()) == {1}, "each served list exactly once"


P_CLICK = {"taste": 1.0, "clicky": 2.0}
"""Relative click propensity of items from each blend: clicky's are twice as likely
to be clicked, for every user."""


async def _simulate_population(
    url: str, headers: dict[str, str], users: list[str], rng: random.Random
) -> int:
    """Each user asks for the trial copy of `discover` once, sees all 10 items and
    clicks each with their own propensity times the blend's (by arm, or by team when
    interleaved)."""
    limit = asyncio.Semaphore(16)
    impressions = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:

        async def one(user: str) -> None:
            nonlocal impressions
            # A heavy-tailed population: most people rarely click, a few click a lot.
            propensity = 0.3 if rng.random() < 0.15 else 0.01
            async with limit:
                served = await http.post(
                    f"/v1/recommend/{TRIAL_USE_CASE}", json={"user_id": user, "k": 10}
                )
                assert served.status_code == 200, served.text
                body = served.json()
                arm = body["variant"]["ab"]
                events = []
                for item in body["items"]:
                    events.append({"result_id": item["result_id"], "event": "impression"})
                    blend = item.get("team") or arm
                    if rng.random() < propensity * P_CLICK.get(blend, 1.0):
                        events.append({"result_id": item["result_id"], "event": "click"})
                impressions += len(body["items"])
                answer = await http.post("/v1/feedback", json={"events": events})
                assert answer.status_code == 202, answer.text

        await asyncio.gather(*(one(u) for u in users))
    return impressions


def _experiment(client: httpx.Client, name: str) -> dict[str, Any]:
    response = client.get(f"/v1/experiments/{name}")
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def test_a_simulated_population_finds_the_better_blend_interleaving_sooner(
    client: httpx.Client, deployed: Deployed
) -> None:
    """clicky's items are clicked twice as often as taste's. The A/B test (arms taste
    and clicky) and the interleaving arm (both blends in one list) must both find it,
    and interleaving with fewer impressions: it compares the blends within each user,
    so users' very different appetites for clicking do not blur it."""
    weights = {
        a: r["weight"] for a, r in _experiment(client, f"{TRIAL_USE_CASE}.ab")["arms"].items()
    }
    assert weights == {"taste": 40, "clicky": 40, "interleaved": 20}, "the demo's split"
    rng = random.Random(11)
    ab_at = interleaving_at = None
    ab: dict[str, Any] = {}
    interleaving: dict[str, Any] = {}
    ab_found: dict[str, Any] = {}
    interleaving_found: dict[str, Any] = {}
    for chunk in range(20):
        users = [f"sim-{chunk}-{n}" for n in range(100)]
        asyncio.run(_simulate_population(deployed.url, dict(client.headers), users, rng))
        ab = _experiment(client, f"{TRIAL_USE_CASE}.ab")
        interleaving = _experiment(client, f"{TRIAL_USE_CASE}.head_to_head")
        arms = ab["arms"]
        # The always-valid tests may be read at every look: they never name the loser.
        assert ab["stopping"].get("winner") in (None, "clicky"), ab["stopping"]
        assert interleaving["sequential"]["winner"] in (None, "clicky")
        # Each report is judged when it first names the winner: a later look may lose
        # significance again by chance (the test stops looking once both have spoken).
        if ab_at is None and ab["winner"] == "clicky":
            ab_at = arms["taste"]["impressions"] + arms["clicky"]["impressions"]
            ab_found = ab
        if interleaving_at is None and interleaving["preferred"] == "clicky":
            interleaving_at = arms["interleaved"]["impressions"]
            interleaving_found = interleaving
        if ab_at is not None and interleaving_at is not None:
            break
    print(f"significant: A/B after {ab_at} impressions, interleaving after {interleaving_at}")
    assert ab_at is not None, ab
    assert interleaving_at is not None, interleaving
    assert interleaving_at < ab_at
    clicky = ab_found["arms"]["clicky"]
    assert clicky["significant"] and clicky["lift"] > 0.3, ab_found
    assert "clicky beats taste" in ab_found["verdict"]
    assert not ab_found["srm"]["mismatch"], ab_found["srm"]
    assert not ab["srm"]["mismatch"], ab["srm"]  # and still none at the last look
    assert interleaving_found["wins"]["clicky"] > interleaving_found["wins"]["taste"]
    assert interleaving_found["p_value"] < 0.05
    assert ab["arms"]["clicky"]["lift"] > 0, ab  # the last look still points the same way


@pytest.mark.browser
def test_the_dashboard_shows_live_numbers_in_a_real_browser(
    client: httpx.Client, deployed: Deployed
) -> None:
    asyncio.run(
        _simulate_population(
            deployed.url,
            dict(client.headers),
            [f"dash-{n}" for n in range(60)],
            random.Random(3),
        )
    )
    key = deployed.cluster.auth_headers()["Authorization"].removeprefix("Bearer ")
    with chromium_page(base_url=deployed.url, timeout_s=20) as page:
        page.goto(f"/dashboard#key={key}")
        rps = page.get_by_test_id("rps")
        page.wait_for_function(
            "el => /\\d/.test(el.textContent)", arg=rps.element_handle(), timeout=20_000
        )
        assert "key=" not in page.url, "the key left the address bar"
        for test_id in ("rps", "p50", "p99", "degraded"):
            text = page.get_by_test_id(test_id).inner_text()
            assert any(ch.isdigit() for ch in text), (test_id, text)
        assert "1" in page.get_by_test_id("model-mf").inner_text()
        ctr = page.get_by_test_id(f"arm-{TRIAL_USE_CASE}.ab-clicky-ctr").inner_text()
        assert "%" in ctr and any(ch.isdigit() for ch in ctr), ctr
        assert page.get_by_test_id(f"verdict-{TRIAL_USE_CASE}.ab").inner_text().strip()
        stopping = page.get_by_test_id(f"stopping-{TRIAL_USE_CASE}.ab").inner_text()
        assert stopping.startswith("Always-valid test (safe to check at any time): "), stopping
        objective = page.get_by_test_id(f"objective-{TRIAL_USE_CASE}.ab").inner_text()
        assert objective.startswith("Objective per impression (1 \u00d7 click): "), objective


def test_demo_traffic_feeds_the_experiments(
    client: httpx.Client, deployed: Deployed, serve_home: Path
) -> None:
    def impressions() -> int:
        return sum(a["impressions"] for a in _experiment(client, "discover.ab")["arms"].values())

    before = impressions()
    key = deployed.cluster.auth_headers()["Authorization"].removeprefix("Bearer ")
    readers = Readers.from_demo_data(serve_home / "data")
    totals = asyncio.run(
        run_demo_traffic(deployed.url, key, readers, rate=20, duration_s=4, report=print)
    )
    assert set(totals.statuses) == {200, 202}, totals.statuses
    assert totals.requests >= 60 and 0 < totals.clicks < totals.impressions
    assert impressions() - before == totals.impressions
