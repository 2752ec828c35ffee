"""The client against a running blendserve (the demo config, ``configs/default.yaml``).

Runs only when ``BLENDSERVE_URL`` and ``BLENDSERVE_API_KEY`` (a key with the
``infer`` and ``admin`` scopes) are set, as the integration suite does; otherwise
the whole module is skipped. ``BLENDSERVE_EXPERIMENT`` names the experiment node to
check (default ``discover.ab``). Every id it writes is new, so runs never collide.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

import pytest

from blendserve_client import (
    AsyncClient,
    Client,
    ExperimentReport,
    NotFound,
    Unauthorized,
    click,
    impression,
)

URL = os.environ.get("BLENDSERVE_URL", "")
KEY = os.environ.get("BLENDSERVE_API_KEY", "")
if not (URL and KEY):
    pytest.skip(
        "live client tests need BLENDSERVE_URL and BLENDSERVE_API_KEY (infer and admin "
        "scopes) of a running blendserve; the integration suite sets them",
        allow_module_level=True,
    )

EXPERIMENT = os.environ.get("BLENDSERVE_EXPERIMENT", "discover.ab")
WAIT_S = 15.0
"""How long counts may take to show up (served lists ship every 0.25 s)."""


@pytest.fixture(autouse=True)
def waits() -> list[float]:
    """Replaces conftest's: against a real service the clients really wait."""
    return []


@pytest.fixture
def client() -> Iterator[Client]:
    with Client(URL, api_key=KEY, timeout_s=10.0) as live:
        yield live


def run_id() -> str:
    return f"client-live-{uuid.uuid4().hex[:12]}"


def eventually(read: Callable[[], ExperimentReport], done: Callable[[ExperimentReport], bool]):
    """Read until ``done`` holds, for at most ``WAIT_S``; the last reading either way."""
    deadline = time.monotonic() + WAIT_S
    while True:
        report = read()
        if done(report) or time.monotonic() > deadline:
            return report
        time.sleep(0.2)  # a poll interval, not a wait for an outcome


def test_feedback_on_a_recommendation_shows_in_its_experiment_report(client):
    use_case, node = EXPERIMENT.split(".", 1)
    assert EXPERIMENT in client.experiments()
    before = client.experiment(EXPERIMENT).arms
    rec = client.recommend(use_case, run_id(), k=4)
    assert rec.items, "the use case answered no items"
    arm = rec.variant[node]
    counted = before.get(arm)
    requests, impressions, clicks = (
        (0, 0, 0) if counted is None else (counted.requests, counted.impressions, counted.clicks)
    )
    rid = rec.items[0].result_id
    events = [impression(rid), click(rid)]
    stored = client.feedback(events)
    assert (stored.accepted, stored.duplicates, stored.rejected) == (2, 0, [])
    assert client.feedback(events).duplicates == 2  # resent ids are stored once

    def reflected(report: ExperimentReport) -> bool:
        now = report.arms.get(arm)
        return now is not None and (now.requests, now.impressions, now.clicks) >= (
            requests + 1,
            impressions + 1,
            clicks + 1,
        )

    report = eventually(lambda: client.experiment(EXPERIMENT), reflected)
    assert reflected(report), f"arm {arm!r} of {EXPERIMENT} did not count it: {report.arms}"


def test_catalogue_put_get_patch_delete_round_trip(client):
    item_id = run_id()
    published = datetime.now(timezone.utc).replace(microsecond=0)
    put = client.put_item(
        item_id,
        title="A test article",
        category="tech",
        published_at=published,
        attributes={"author": "client-test"},
    )
    item = client.get_item(item_id)
    assert (item.item_id, item.title, item.category) == (item_id, "A test article", "tech")
    assert item.published_at == published and item.attributes == {"author": "client-test"}
    patched = client.patch_item(item_id, available=False)
    assert patched.item is not None and patched.item.available is False
    deleted = client.delete_item(item_id)
    assert put.version < patched.version < deleted.version
    with pytest.raises(NotFound):
        client.get_item(item_id)
    assert client.catalog_status().version >= deleted.version


def test_predict_on_the_click_model(client):
    row = {
        "category_affinity": 0.4,
        "log_item_popularity": 5.2,
        "item_age_hours": 3.0,
        "hour_of_day": 20,
    }
    prediction = client.predict("click_model", [row, row])
    assert prediction.model == "click_model" and prediction.version
    assert len(prediction.predictions) == 2
    assert all(0.0 <= p <= 1.0 for p in prediction.predictions)


def test_a_wrong_key_raises_unauthorized():
    with Client(URL, api_key="bsk_not_a_key") as stranger, pytest.raises(Unauthorized) as caught:
        stranger.recommend("home", run_id())
    assert (caught.value.status, caught.value.code) == (401, "unauthenticated")


def test_the_async_client_recommends():
    async def recommend() -> list[int]:
        async with AsyncClient(URL, api_key=KEY, timeout_s=10.0) as live:
            answers = await asyncio.gather(*(live.recommend("home", run_id(), k=3) for _ in "ab"))
        return [len(answer.items) for answer in answers]

    assert all(1 <= found <= 3 for found in asyncio.run(recommend()))


def test_filters_and_boosts_reach_the_blend(client):
    first = client.recommend("home", run_id(), k=10).items
    category = client.get_item(first[0].item_id).category
    assert category, "demo items have a category"
    rule = {"attribute": "category", "equals": category}
    filtered = client.recommend("home", run_id(), k=5, filters=[rule]).items
    assert filtered and all(client.get_item(i.item_id).category == category for i in filtered)
    boosted = client.recommend("home", run_id(), k=5, boosts=[{**rule, "multiply": 3.0}])
    assert any(c.role == "boost" for item in boosted.items for c in item.components)
