"""Propensities in the log and counterfactual evaluation from it (issue 23), on the real
service: the main app's ``home_explore`` (``home`` with ``explore``) serves simulated
readers whose clicks depend on the position only, so every policy over the same items
has the same expected CTR; the Parquet log holds each position's exact propensity
(pinned slots never explore); and `blendserve evaluate --counterfactual`, given the
served blend without exploration as the candidate, estimates a CTR within three
standard errors of the one the simulation makes true, written to its HTML report."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from pathlib import Path
from typing import Any

import httpx
import pyarrow.compute as pc
import pytest
import yaml
from serving_cluster import EXPLORE, EXPLORE_USE_CASE, Deployed, app_config, deployment, until

from deployments.cli.main import main
from deployments.config import parse_app_args
from deployments.events.store import open_dataset_root, read_events

pytestmark = pytest.mark.integration

READERS = 240
K = 8
CLICK_AT = [0.5 / (position + 1) for position in range(K)]
"""A reader clicks position p (from 0) with this chance, whatever the item."""
TRUE_CTR = sum(CLICK_AT) / K
"""Every policy's expected CTR: each list fills all K positions."""


async def _readers(url: str, headers: dict[str, str], users: list[str], seed: int) -> int:
    """Each reader asks once, sees every item and clicks by position; the clicks sent."""
    rng = random.Random(seed)
    limit = asyncio.Semaphore(16)
    clicks = 0
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:

        async def one(user: str) -> None:
            nonlocal clicks
            async with limit:
                served = await http.post(
                    f"/v1/recommend/{EXPLORE_USE_CASE}", json={"user_id": user, "k": K}
                )
                assert served.status_code == 200, served.text
                events = []
                for position, item in enumerate(served.json()["items"]):
                    events.append({"result_id": item["result_id"], "event": "impression"})
                    if rng.random() < CLICK_AT[position]:
                        events.append({"result_id": item["result_id"], "event": "click"})
                        clicks += 1
                answer = await http.post("/v1/feedback", json={"events": events})
                assert answer.status_code == 202, answer.text

        await asyncio.gather(*(one(user) for user in users))
    return clicks


def _served(deployed: Deployed) -> Any:
    args = parse_app_args(app_config(deployed.config, "blendserve")["args"])
    assert args.events is not None
    filesystem, path = open_dataset_root(args.events.dataset_uri("blendserve"))
    table = read_events(filesystem, path, "served", ["use_case", "items", "propensities"])
    return table.filter(pc.equal(table["use_case"], EXPLORE_USE_CASE))


def test_propensities_are_logged_and_a_candidate_is_estimated_from_them(
    client: httpx.Client,
    deployed: Deployed,
    serve_home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = json.loads((serve_home / "artifacts" / "mf" / "1" / "ids.json").read_text())
    users = [str(u) for u in ids["users"][:READERS]]
    clicks = asyncio.run(_readers(deployed.url, dict(client.headers), users, seed=5))
    assert clicks > 50
    table = until(
        lambda: (t := _served(deployed)).num_rows >= READERS and t,
        30,
        "the explored lists in the Parquet log",
    )
    pool = K + EXPLORE["pool"] - 2  # the two pinned slots never move
    own, other = 1 - EXPLORE["epsilon"] + EXPLORE["epsilon"] / pool, EXPLORE["epsilon"] / pool
    explored_lists = 0
    for items, chances in zip(
        table["items"].to_pylist(), table["propensities"].to_pylist(), strict=True
    ):
        assert len(chances) == len(items) == K
        assert chances[0] == 1.0 and chances[4] == 1.0, "pinned slots 1 and 5 stay"
        free = [c for position, c in enumerate(chances) if position not in (0, 4)]
        assert all(c == pytest.approx(own) or c == pytest.approx(other) for c in free), chances
        explored_lists += any(c == pytest.approx(other) for c in free)
    assert 0.15 * READERS <= explored_lists <= 0.45 * READERS, explored_lists

    # The candidate: the same blend without exploring. Clicks depend on the position
    # only, so its true CTR is the logged one.
    candidate = copy.deepcopy(deployed.config)
    cases = deployment(app_config(candidate, "blendserve"))["user_config"]["use_cases"]
    cases[EXPLORE_USE_CASE].pop("explore")
    candidate_path = tmp_path / "candidate.yaml"
    candidate_path.write_text(yaml.safe_dump(candidate))
    report = tmp_path / "counterfactual.html"
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            "--config",
            str(deployed.config_path),
            "--app",
            "blendserve",
            "--use-case",
            EXPLORE_USE_CASE,
            "--counterfactual",
            str(candidate_path),
            "--out",
            str(report),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    print(out)
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:6]}
    logged_ctr = float(rows["logged"][1])
    assert abs(logged_ctr - clicks / (table.num_rows * K)) < 0.02
    # Each estimate is compared with the CTR the simulation makes true, within three
    # of its own standard errors (a 95% interval misses one run in twenty by design,
    # and the logged CTR is itself a noisy sample of the truth).
    for name in ("logged", "IPS", "SNIPS", "DR"):
        estimate, low, high = (float(rows[name][i]) for i in (1, 2, 4))
        standard_error = (high - low) / (2 * 1.96)
        assert 0 < standard_error < 0.05, (name, out)
        assert abs(estimate - TRUE_CTR) <= 3 * standard_error, (name, TRUE_CTR, out)
    assert "agrees with" in out.splitlines()[0]
    page = report.read_text()
    assert "Counterfactual evaluation of use case home_explore" in page and "doubly robust" in page
