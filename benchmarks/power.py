"""``make power``: are the service's verdicts right? A simulated population with a
known truth (``benchmarks/power_sim.py``) drives the real HTTP service started as
``make run`` starts it: each session asks ``POST /v1/recommend/<run>``, clicks by
position and ranker quality, and sends its impressions and clicks through ``POST
/v1/feedback``; verdicts are read from ``GET /v1/experiments/<run>.exp``, as a person
on the dashboard would read them. Writes docs/MEASUREMENT.md.

Many short experiments run at once, each its own use case (its own salt and counts),
so the run takes minutes: sessions are sent as fast as the service answers them
(faster than real time; nothing in the service depends on the wall clock between
sessions but the online state, which no run uses).

Usage: ``python -m benchmarks.power [--quick] [--seed N] [--out docs/MEASUREMENT.md]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import uvloop

from benchmarks.power_counterfactual import (
    CounterfactualTrial,
    counterfactual_use_cases,
    estimate_trials,
    serve_trials,
    wait_logged,
    write_inputs,
)
from benchmarks.power_markdown import markdown
from benchmarks.power_report import decided, summary
from benchmarks.power_sim import (
    RUN_KINDS,
    K,
    Population,
    RunKind,
    qualities_of,
    serve_use_cases,
    session_events,
)
from benchmarks.power_small_change import PROBES, boosted_appeal, probe_use_cases
from benchmarks.systems import RayServeSystem
from benchmarks.variants import ROOT, blendserve_config, ingress_deployment, load_yaml

__all__ = ["Driver", "Plan", "RunResult", "main", "simulate"]

CONCURRENCY = 32
"""Requests in flight at once, over all runs."""
_ENCODE = msgspec.json.encode
_DECODE = msgspec.json.decode


@dataclass(frozen=True)
class Plan:
    """How many runs of each kind, how many sessions each, when reports are read."""

    runs: Mapping[str, int]
    sessions: Mapping[str, int]
    checkpoints: Mapping[str, tuple[int, ...]]
    """Session counts at which a run's report is read (every batch where absent)."""
    max_sessions: int
    """A staged experiment's first stage ends after this many clicked lists at most."""
    counterfactual_runs: int = 0
    counterfactual_sessions: int = 0
    """Runs of the counterfactual check, and sessions of each policy in each."""
    batch: int = 50
    """Sessions a run sends before its feedback goes out and its report may be read."""

    def use_cases(self) -> list[tuple[str, str]]:
        """Every run's use case and kind (``ab007``, ``ab``)."""
        return [(f"{kind}{n:03d}", kind) for kind, count in self.runs.items() for n in range(count)]

    @classmethod
    def full(cls) -> Plan:
        """``make power``: about 300,000 sessions."""
        grid = (100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000)
        return cls(
            runs={
                **{"aa": 50, "ab": 30, "il": 30, "abn": 8, "staged": 8},
                **{"ab_small": 20, "il_small": 20},
            },
            # A/B/n is read until it decides (not capped below its median).
            sessions={
                **{"aa": 400, "ab": 3000, "il": 2000, "abn": 10000, "staged": 10000},
                **{"ab_small": 3000, "il_small": 1000},
            },
            checkpoints={
                "ab": grid,
                "il": tuple(c for c in grid if c <= 2000),
                "ab_small": grid,
                "il_small": tuple(c for c in grid if c <= 1000),
            },
            max_sessions=1000,
            counterfactual_runs=60,
            counterfactual_sessions=500,
        )

    @classmethod
    def quick(cls) -> Plan:
        """A smoke run of every kind (a minute): numbers too noisy to read."""
        return cls(
            runs={"aa": 4, "ab": 3, "il": 3, "abn": 2, "staged": 2, "ab_small": 2, "il_small": 2},
            sessions={
                **{"aa": 150, "ab": 300, "il": 300, "abn": 600, "staged": 600},
                **{"ab_small": 300, "il_small": 300},
            },
            checkpoints={
                "ab": (100, 200, 300),
                "il": (100, 200, 300),
                "ab_small": (100, 200, 300),
                "il_small": (100, 200, 300),
            },
            max_sessions=100,
            counterfactual_runs=2,
            counterfactual_sessions=100,
        )


@dataclass
class RunResult:
    """One run: its kind, and each report read, by sessions sent before it."""

    use_case: str
    kind: str
    readings: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    sessions: int = 0


class Driver:
    """Sessions of every run through one HTTP client, at most ``CONCURRENCY`` at once.

    aiohttp and msgspec, not httpx: the client shares the two cores with the service,
    and httpx cost about four times the CPU per request here."""

    def __init__(self, http: aiohttp.ClientSession, population: Population, seed: int) -> None:
        self.http = http
        self.population = population
        self.rng = random.Random(seed)
        self.limit = asyncio.Semaphore(CONCURRENCY)
        self.sent = 0
        self.appeal: dict[str, float] = {}
        """Item -> appeal in the small-change runs (1 where absent)."""

    async def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """One API call (retried while the service sheds load); its JSON answer."""
        data = None if body is None else _ENCODE(body)
        async with self.limit:
            for attempt in range(5):
                async with self.http.request(method, path, data=data) as answer:
                    status, text = answer.status, await answer.read()
                if status not in (429, 503):
                    break
                await asyncio.sleep(0.2 * (attempt + 1))
        if status >= 300:
            raise RuntimeError(f"{method} {path}: {status} {text[:300]!r}")
        result: dict[str, Any] = _DECODE(text)
        return result

    async def recommend(self, use_case: str, user: int) -> dict[str, Any]:
        """``user``'s list of ``use_case``, checked to hold ``K`` items."""
        body = {"user_id": self.population.ids[user], "k": K}
        answer = await self.call("POST", f"/v1/recommend/{use_case}", body)
        if len(answer["items"]) != K:
            raise RuntimeError(f"{use_case}: {len(answer['items'])} items, not {K}")
        return answer

    async def send_feedback(self, use_case: str, events: list[dict[str, str]]) -> None:
        """``events`` through ``POST /v1/feedback``, each stored once (or an error)."""
        for start in range(0, len(events), 1000):  # the API's limit per call
            chunk = events[start : start + 1000]
            stored = await self.call("POST", "/v1/feedback", {"events": chunk})
            if stored["accepted"] != len(chunk) or stored["duplicates"]:
                raise RuntimeError(f"{use_case}: feedback of {len(chunk)} events: {stored}")

    async def session(self, use_case: str, kind: RunKind) -> list[dict[str, str]]:
        """One session: a list served, looked at and clicked; its feedback events."""
        user = self.population.user(self.rng)
        answer = await self.recommend(use_case, user)
        if kind.item_clicks:
            items = [item["item_id"] for item in answer["items"]]
            of = self.appeal.get
            clicked = self.population.item_clicks(self.rng, user, items, lambda i: of(i, 1.0))
        else:
            clicked = self.population.clicks(self.rng, user, qualities_of(kind, answer))
        self.sent += 1
        return session_events(answer, clicked)

    async def run(self, use_case: str, kind: RunKind, sessions: int, plan: Plan) -> RunResult:
        """Sessions in batches; feedback after each batch; reports at the checkpoints
        (every batch without any), stopping a staged or A/B/n run once decided."""
        result = RunResult(use_case, kind.name)
        checkpoints = plan.checkpoints.get(kind.name)
        while result.sessions < sessions:
            size = min(plan.batch, sessions - result.sessions)
            batches = await asyncio.gather(*(self.session(use_case, kind) for _ in range(size)))
            await self.send_feedback(use_case, [event for batch in batches for event in batch])
            result.sessions += size
            if checkpoints is None or result.sessions in checkpoints:
                report = await self.call("GET", f"/v1/experiments/{use_case}.exp")
                _check_counts(use_case, kind, report, result.sessions)
                result.readings.append((result.sessions, report))
                if kind.name in ("abn", "staged") and decided(report) is not None:
                    break
        return result


def _check_counts(use_case: str, kind: RunKind, report: dict[str, Any], sessions: int) -> None:
    """The report counts this run's sessions and no others (its feedback was
    acknowledged before it was read): every impression of an A/B run, at most one
    clicked list per session otherwise."""
    if kind.experiment == "experiment":
        counted = sum(row["impressions"] for row in report["arms"].values())
        if counted != sessions * K:
            raise RuntimeError(f"{use_case}: {counted} impressions, not {sessions * K}")
        return
    staged = kind.experiment == "staged"
    clicked = report["stages"]["clicked_lists"] if staged else report["requests_with_clicks"]
    if clicked > sessions:
        raise RuntimeError(f"{use_case}: {clicked} clicked lists in {sessions} sessions")


def _client(base_url: str, headers: Mapping[str, str]) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base_url,
        headers={**headers, "Content-Type": "application/json"},
        timeout=aiohttp.ClientTimeout(total=30),
        connector=aiohttp.TCPConnector(limit=CONCURRENCY),
    )


async def serve_counterfactual(
    base_url: str, headers: Mapping[str, str], plan: Plan, population: Population, seed: int
) -> list[CounterfactualTrial]:
    """The counterfactual runs' sessions (``benchmarks/power_counterfactual.py``)."""
    async with _client(base_url, headers) as http:
        driver = Driver(http, population, seed)
        return await serve_trials(
            driver, population, plan.counterfactual_runs, plan.counterfactual_sessions, seed
        )


async def simulate(base_url: str, headers: Mapping[str, str], plan: Plan, seed: int) -> Any:
    """Every run of ``plan`` against the service at ``base_url``; their results."""
    population = Population(20_000, seed)
    async with _client(base_url, headers) as http:
        driver = Driver(http, population, seed)
        # The small-change runs' two lists are everyone's: read them once, set the boost.
        lists = {
            ranker: [item["item_id"] for item in (await driver.recommend(use_case, 0))["items"]]
            for use_case, ranker in PROBES.items()
        }
        driver.appeal = boosted_appeal(population, lists["pop"], lists["pop_picks"])
        jobs = [
            driver.run(use_case, RUN_KINDS[kind], plan.sessions[kind], plan)
            for use_case, kind in plan.use_cases()
        ]
        started = time.monotonic()
        results = await asyncio.gather(*jobs)
        seconds = time.monotonic() - started
        return results, population, seconds, driver.sent, driver.appeal


def _config(plan: Plan, events_dir: Path) -> dict[str, Any]:
    """configs/default.yaml (no per-key rate limit: one key sends every session) with
    the runs' use cases instead of the demo's, and an event log of its own in
    ``events_dir``: runs of earlier invocations share the use case names, and their
    counts must not add to this one's."""
    config = blendserve_config(load_yaml(ROOT / "configs" / "default.yaml"), 0)
    runs = [(use_case, RUN_KINDS[kind]) for use_case, kind in plan.use_cases()]
    app = config["applications"][0]
    app["args"]["events"] = {
        **(app["args"].get("events") or {}),
        "uri": str(events_dir / "events"),
        "wal_dir": str(events_dir / "wal"),
    }
    ingress_deployment(app)["user_config"]["use_cases"] = {
        **serve_use_cases(runs, plan.max_sessions),
        **counterfactual_use_cases(plan.counterfactual_runs),
        **probe_use_cases(),
    }
    return config


def main(argv: list[str] | None = None) -> int:
    """Start the service, run the simulation, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (numbers are noise)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "MEASUREMENT.md")
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan.full()
    with (
        tempfile.TemporaryDirectory(prefix="blendserve-power-") as events_dir,
        RayServeSystem(
            "power",
            _config(plan, Path(events_dir)),
            ROOT,
            ("/v1/recommend/aa000", {"user_id": "probe", "k": K}),
            ready_path="/readyz",
        ) as system,
    ):
        # The counterfactual runs first, alone: their estimates read the Parquet log.
        population = Population(20_000, args.seed)
        inputs = write_inputs(Path(events_dir), system.config, plan.counterfactual_runs, population)
        trials = uvloop.run(
            serve_counterfactual(system.base_url, system.headers, plan, population, args.seed)
        )
        wait_logged(inputs[0], trials, timeout_s=120)
        estimate_trials(*inputs, trials)
        results, population, seconds, sent, appeal = uvloop.run(
            simulate(system.base_url, system.headers, plan, args.seed)
        )
    command = "make power" + (" (--quick)" if args.quick else "")
    page = markdown(results, population, plan, seconds, sent, command, trials, appeal)
    args.out.write_text(page)
    raw = ROOT / "benchmarks" / "results" / ("power-quick.json" if args.quick else "power.json")
    raw.write_bytes(msgspec.json.format(_ENCODE(summary(results, population)), indent=1))
    print(f"{sent} sessions in {seconds:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
