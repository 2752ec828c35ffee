"""The demo storefront end to end in Debian's headless Chromium: recommendations render
through the JavaScript client, impressions and a click reach the event log, and the
experiment's statistics move."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow.fs as pafs
import pytest
from browser import chromium_page
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from serving_cluster import Deployed

from deployments.events.store import read_events

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _arms(client: httpx.Client) -> dict[str, Any]:
    report = client.get("/v1/experiments/discover.ab")
    assert report.status_code == 200, report.text
    arms: dict[str, Any] = report.json()["arms"]
    return arms


def _clicks_in_parquet(home: Path) -> list[dict[str, Any]]:
    root = str(home / "events" / "blendserve")
    table = read_events(pafs.LocalFileSystem(), root, "feedback")
    return [r for r in table.to_pylist() if r["event"] == "click"]


def test_the_storefront_shows_items_and_its_clicks_reach_the_experiment(
    deployed: Deployed, client: httpx.Client, serve_home: Path
) -> None:
    before = _arms(client)
    key = deployed.cluster.auth_headers()["Authorization"].removeprefix("Bearer ")
    reader = f"shopper-{int(time.time())}"
    with chromium_page(base_url=deployed.url, timeout_s=20) as page:
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(f"/demo#key={key}&user={reader}&use_case=discover")
        try:
            page.wait_for_selector("body[data-ready='true']")
        except PlaywrightTimeout:
            status = page.get_by_test_id("status").inner_text()
            pytest.fail(f"the storefront did not render: {status!r}; console: {console}")
        assert "key=" not in page.url, "the key left the address bar"
        items = page.get_by_test_id("item")
        assert items.count() == 12
        assert "items for " + reader in page.get_by_test_id("status").inner_text()
        first = items.first
        item_id = first.get_attribute("data-item-id")
        first.locator("button").click()
        page.wait_for_selector("li[data-clicked='true']")
        assert "recorded" in page.get_by_test_id("status").inner_text()
        page.wait_for_timeout(2500)  # the tracker reports what stayed in view

    def clicked() -> bool:
        return any(r["item_id"] == item_id for r in _clicks_in_parquet(serve_home))

    deadline = time.monotonic() + 20
    while not clicked() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert clicked(), "the click is in the event log's Parquet dataset"
    after = _arms(client)
    moved = {
        arm: (
            after[arm]["clicks"] - before[arm]["clicks"],
            after[arm]["impressions"] - before[arm]["impressions"],
        )
        for arm in after
    }
    assert sum(c for c, _ in moved.values()) == 1, moved
    assert sum(i for _, i in moved.values()) >= 1, "impressions of what the reader saw"
