"""A staged experiment on the real service (issue 23, item 4): simulated readers
(``benchmarks/power_sim.py``: position-biased clicks, candidate ``c1`` the best) get
one multileaved list of the four candidates until the event log keeps one of them,
then every ingress replica splits its users between the control and that survivor;
the experiment API shows each stage."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx
import pyarrow.compute as pc
import pytest
from cluster_config import STAGED_MAX_SESSIONS, STAGED_USE_CASE
from serving_cluster import Deployed, app_config, until

from benchmarks.power import Driver, Plan
from benchmarks.power_sim import RUN_KINDS, K, Population
from deployments.config import parse_app_args
from deployments.events.store import open_dataset_root, read_events

pytestmark = pytest.mark.integration

KIND = RUN_KINDS["staged"]
CANDIDATES = {"c1", "c2", "c3", "c4"}


def _served(deployed: Deployed) -> Any:
    """The staged use case's served lists in the Parquet log."""
    args = parse_app_args(app_config(deployed.config, "blendserve")["args"])
    assert args.events is not None
    filesystem, path = open_dataset_root(args.events.dataset_uri("blendserve"))
    table = read_events(filesystem, path, "served", ["use_case", "variant", "propensities"])
    return table.filter(pc.equal(table["use_case"], STAGED_USE_CASE))


def _answer(client: httpx.Client, user: str) -> dict[str, Any]:
    served = client.post(f"/v1/recommend/{STAGED_USE_CASE}", json={"user_id": user, "k": K})
    assert served.status_code == 200, served.text
    answer: dict[str, Any] = served.json()
    return answer


def _report(client: httpx.Client) -> dict[str, Any]:
    answer = client.get(f"/v1/experiments/{STAGED_USE_CASE}.exp")
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def test_a_staged_experiment_prunes_by_multileaving_then_ab_tests_the_survivor(
    client: httpx.Client, deployed: Deployed
) -> None:
    first = _answer(client, "reader-0")
    assert first["variant"] == {"exp": "_prune"}
    assert {item["team"] for item in first["items"]} == CANDIDATES, "every candidate shows"
    before = _report(client)
    assert before["stages"]["stage"] == "prune" and before["stopping"]["decision"] == "continue"

    # Readers until the first stage has had its clicked lists (a batch at a time, as
    # `make power` sends them), then a little more for the ingresses to follow.
    population = Population(500, seed=5)
    plan = Plan(runs={}, sessions={}, checkpoints={}, max_sessions=STAGED_MAX_SESSIONS, batch=25)

    async def readers() -> None:
        headers = {**client.headers, "Content-Type": "application/json"}
        async with aiohttp.ClientSession(base_url=deployed.url, headers=headers) as http:
            await Driver(http, population, seed=5).run(STAGED_USE_CASE, KIND, 3 * 25, plan)

    asyncio.run(readers())
    report = until(
        lambda: (r := _report(client))["stages"]["stage"] == "ab" and r,
        10,
        "the first stage to end",
    )
    stage = report["stages"]
    survivor = stage["survivor"]
    assert survivor in CANDIDATES
    assert stage["clicked_lists"] >= STAGED_MAX_SESSIONS or "beats every" in stage["reason"]
    assert set(report["arms"]) == {"control", survivor}
    pairwise = stage["pairwise_wins"]
    assert set(pairwise) == CANDIDATES and sum(pairwise[survivor].values()) > 0

    # Every replica now splits users between the two, each user sticking to one.
    def second_stage() -> list[str] | None:
        arms = [_answer(client, f"late-reader-{n}")["variant"]["exp"] for n in range(30)]
        return arms if "_prune" not in arms else None

    arms = until(second_stage, 10, "every ingress replica to serve the second stage")
    assert set(arms) == {"control", survivor}, arms
    again = [_answer(client, f"late-reader-{n}")["variant"]["exp"] for n in range(30)]
    assert again == arms, "a user keeps their arm"
    answer = _answer(client, "late-reader-0")
    assert all(item.get("team") is None for item in answer["items"])

    # The Parquet log prices each stage's lists: a multileaved list at the draft's
    # chances (its first place goes to one of four teams' tops), an arm's own at 1.
    def logged() -> Any:
        table = _served(deployed)
        stages = [dict(v).get("exp") for v in table["variant"].to_pylist()]
        enough = stages.count("_prune") >= STAGED_MAX_SESSIONS and survivor in stages
        return table if enough else None

    table = until(logged, 30, "both stages' lists in the Parquet log")
    for variant, chances in zip(
        table["variant"].to_pylist(), table["propensities"].to_pylist(), strict=True
    ):
        assert len(chances) == K
        if dict(variant)["exp"] == "_prune":
            assert all(0 < c <= 1 for c in chances) and min(chances) < 1, chances
        else:
            assert chances == [1.0] * K, chances
