"""``blendserve demo-traffic``: simulated readers for the demo, so that ``/dashboard``
and ``/v1/experiments`` have something to show.

Each simulated reader is a user of the demo dataset. They ask for a use case, see
every item (an impression each) and click an item with a probability that grows
with their taste for its category (their share of clicks on it in
``train.parquet``) and falls with its position. Blends that follow readers' tastes
therefore earn more clicks, as they would with real readers. Plain Python + httpx.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pandas as pd

from models.errors import ConfigError

__all__ = ["Readers", "TrafficTotals", "run_demo_traffic"]

BASE_CLICK = 0.01
"""Click probability of an item in a category the reader never clicked."""

TASTE_CLICK = 0.6
"""Added click probability of an item in the reader's only category."""


@dataclass
class Readers:
    """The demo's readers and their tastes: reader -> category -> share of clicks."""

    taste: dict[str, dict[str, float]]
    category: dict[str, str]

    @classmethod
    def from_demo_data(cls, data_dir: Path) -> Readers:
        """Tastes from ``train.parquet`` (else ``interactions.parquet``) and categories
        from ``items.parquet``, as ``blendserve demo-train`` writes them."""
        clicks = data_dir / "train.parquet"
        if not clicks.is_file():
            clicks = data_dir / "interactions.parquet"
        items = data_dir / "items.parquet"
        if not clicks.is_file() or not items.is_file():
            raise ConfigError(f"{data_dir}: no demo data (run `make demo` first)")
        catalogue = pd.read_parquet(items, columns=["item_id", "category"])
        category = dict(zip(catalogue["item_id"].astype(str), catalogue["category"], strict=True))
        history = pd.read_parquet(clicks, columns=["user_id", "item_id"])
        history["category"] = history["item_id"].astype(str).map(category)
        shares = history.groupby("user_id")["category"].value_counts(normalize=True)
        taste: dict[str, dict[str, float]] = {}
        for (user, cat), share in shares.items():
            taste.setdefault(str(user), {})[str(cat)] = float(share)
        return cls(taste, category)

    def click_probability(self, reader: str, item: str, position: int) -> float:
        """How likely ``reader`` clicks ``item`` shown at ``position`` (1-based)."""
        share = self.taste.get(reader, {}).get(self.category.get(item, ""), 0.0)
        return float((BASE_CLICK + TASTE_CLICK * share) / position**0.5)


@dataclass
class TrafficTotals:
    """What a run sent and got back."""

    requests: int = 0
    impressions: int = 0
    clicks: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


async def run_demo_traffic(
    url: str,
    api_key: str | None,
    readers: Readers,
    use_case: str = "discover",
    rate: float = 20.0,
    duration_s: float = 60.0,
    seed: int = 7,
    report: Callable[[str], None] = print,
    report_every_s: float = 5.0,
) -> TrafficTotals:
    """Send ``rate`` readers a second for ``duration_s``; return the totals."""
    if rate <= 0 or duration_s <= 0:
        raise ConfigError("rate and duration must be positive")
    rng = random.Random(seed)
    names = sorted(readers.taste)
    totals = TrafficTotals()
    headers: Mapping[str, str] = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(base_url=url, headers=dict(headers), timeout=10) as http:

        async def one(reader: str) -> None:
            served = await http.post(f"/v1/recommend/{use_case}", json={"user_id": reader})
            totals.statuses[served.status_code] += 1
            if served.status_code != 200:
                return
            events = []
            for position, item in enumerate(served.json()["items"], start=1):
                events.append({"result_id": item["result_id"], "event": "impression"})
                if rng.random() < readers.click_probability(reader, item["item_id"], position):
                    events.append({"result_id": item["result_id"], "event": "click"})
            answer = await http.post("/v1/feedback", json={"events": events})
            totals.statuses[answer.status_code] += 1
            if answer.status_code == 202:
                totals.requests += 1
                totals.impressions += sum(e["event"] == "impression" for e in events)
                totals.clicks += sum(e["event"] == "click" for e in events)

        tasks: list[asyncio.Task[None]] = []
        start = next_report = time.monotonic()
        sent = 0
        while time.monotonic() - start < duration_s:
            tasks.append(asyncio.create_task(one(rng.choice(names))))
            sent += 1
            if time.monotonic() >= next_report:
                next_report += report_every_s
                report(
                    f"{time.monotonic() - start:5.0f}s  lists {totals.requests}  impressions "
                    f"{totals.impressions}  clicks {totals.clicks}  answers {dict(totals.statuses)}"
                )
            await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
        await asyncio.gather(*tasks, return_exceptions=True)
    return totals
