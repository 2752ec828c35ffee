"""``make power``'s counterfactual part: do the estimates from the log hold the CTR a
candidate reaches when it is served?

Each run is two use cases of the live service:

* ``cfNNN``, the logging policy: the ``mf`` source, exploring (``explore``: in 30%
  of requests a random ordering of its top 10 and the 5 below);
* ``cfcNNN``, the candidate: the same source re-ranked by the click model over its
  top 15 (so every list it would show is one the logger could show).

The simulated users (``benchmarks/power_sim.py``) click by position and by each
item's appeal (a fixed value per item), so the two policies' CTRs differ. A run
serves ``sessions`` lists of the logging policy, then the same users, in the same
order, lists of the candidate. ``blendserve evaluate --counterfactual``'s function
then estimates the candidate's CTR from the Parquet log alone (IPS, SNIPS, DR), and
each interval is checked against the candidate's CTR on that traffic: the mean of
the click chances of the lists it was served (exact given those lists, no click
noise), with the clicks actually drawn beside it.
"""

from __future__ import annotations

import asyncio
import copy
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml

from benchmarks.power_sim import K, Population, session_events
from deployments.config import load_app
from deployments.events.store import open_dataset_root, read_events
from deployments.offline.counterfactual import evaluate_counterfactuals

if TYPE_CHECKING:
    from benchmarks.power import Driver  # it imports this module to run the trials

__all__ = [
    "CounterfactualTrial",
    "candidate_config",
    "counterfactual_markdown",
    "counterfactual_use_cases",
    "estimate_trials",
    "serve_trials",
]

EXPLORE = {"epsilon": 0.3, "pool": 5}
"""The logging policy's exploration."""
BUDGET_MS = 5000
"""Generous: a re-rank cut by the deadline would serve a list the offline replay
(which has no deadline) does not estimate; such answers are counted anyway."""
DEPTH = K + EXPLORE["pool"]
"""The candidate re-ranks the logger's top 15: every list it shows, the logger could."""
ESTIMATORS = ("ips", "snips", "dr")


def _logging_nodes() -> dict[str, Any]:
    return {"cf": {"kind": "source", "model": "mf", "candidates": 100}}


def _candidate_nodes() -> dict[str, Any]:
    return {
        **_logging_nodes(),
        "reranked": {"kind": "rerank", "input": "cf", "model": "click_model", "depth": DEPTH},
    }


def counterfactual_use_cases(runs: int) -> dict[str, Any]:
    """Every run's two use cases: ``cfNNN`` logs, ``cfcNNN`` is the candidate."""
    cases: dict[str, Any] = {}
    for n in range(runs):
        cases[f"cf{n:03d}"] = {
            "budget_ms": BUDGET_MS,
            "output": "cf",
            "explore": EXPLORE,
            "nodes": _logging_nodes(),
        }
        cases[f"cfc{n:03d}"] = {
            "budget_ms": BUDGET_MS,
            "output": "reranked",
            "nodes": _candidate_nodes(),
        }
    return cases


def candidate_config(serving: dict[str, Any], runs: int) -> dict[str, Any]:
    """The served config with each logging use case replaced by the candidate (what
    ``evaluate --counterfactual`` is given)."""
    config = copy.deepcopy(serving)
    for app in config["applications"]:
        for deployment in app.get("deployments", []):
            cases = (deployment.get("user_config") or {}).get("use_cases")
            if cases is None:
                continue
            for n in range(runs):
                cases[f"cf{n:03d}"] = copy.deepcopy(cases[f"cfc{n:03d}"])
    return config


@dataclass
class CounterfactualTrial:
    """One run: who was served, what the candidate reached, what was estimated."""

    use_case: str
    users: list[int] = field(default_factory=list)
    clicks_logged: int = 0
    expected: float = 0.0
    """The candidate's CTR on the run's traffic: mean click chance of its lists."""
    measured: float = 0.0
    """The candidate's CTR from the clicks drawn on its lists."""
    estimates: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Estimator -> (CTR, low, high)."""
    agreement: float = 0.0
    """The share of the candidate's positions where the logged list showed its item."""
    degraded: int = 0
    """Answers of either policy that missed a node (the run then proves nothing)."""


async def serve_trials(
    driver: Driver, population: Population, runs: int, sessions: int, seed: int
) -> list[CounterfactualTrial]:
    """Every run's logging sessions, then its candidate sessions for the same users;
    feedback through the API as ``make power`` sends it."""
    rng = random.Random(seed)
    trials = [CounterfactualTrial(f"cf{n:03d}") for n in range(runs)]
    for trial in trials:
        trial.users = [population.user(rng) for _ in range(sessions)]

    async def one(
        use_case: str, user: int, draw: random.Random
    ) -> tuple[float, int, list[dict[str, str]], bool]:
        answer = await driver.recommend(use_case, user)
        items = [item["item_id"] for item in answer["items"]]
        clicked = population.item_clicks(draw, user, items)
        events = session_events(answer, clicked)
        degraded = bool(answer.get("degraded"))
        return population.expected_clicks(user, items), len(clicked), events, degraded

    async def run(trial: CounterfactualTrial, draw: random.Random) -> None:
        for stage in ("log", "candidate"):
            use_case = trial.use_case if stage == "log" else f"cfc{trial.use_case[2:]}"
            for start in range(0, len(trial.users), 50):
                batch = trial.users[start : start + 50]
                answers = await asyncio.gather(*(one(use_case, u, draw) for u in batch))
                events = [event for _, _, listed, _ in answers for event in listed]
                trial.degraded += sum(d for *_, d in answers)
                await driver.send_feedback(use_case, events)
                if stage == "log":
                    trial.clicks_logged += sum(c for _, c, _, _ in answers)
                else:
                    trial.expected += sum(e for e, _, _, _ in answers)
                    trial.measured += sum(c for _, c, _, _ in answers)
        trial.expected /= len(trial.users) * K
        trial.measured /= len(trial.users) * K

    await asyncio.gather(*(run(t, random.Random(seed * 1000 + n)) for n, t in enumerate(trials)))
    return trials


def wait_logged(config: Path, trials: Sequence[CounterfactualTrial], timeout_s: float) -> None:
    """Until the Parquet log holds every logging list and every click sent for them."""
    _, app = load_app(config, "blendserve")
    if app.args.events is None:
        raise RuntimeError("the power config keeps no event log")
    filesystem, root = open_dataset_root(app.args.events.dataset_uri("blendserve"))
    wanted = {t.use_case: len(t.users) for t in trials}
    clicks = sum(t.clicks_logged for t in trials)
    deadline = time.monotonic() + timeout_s
    while True:
        served = read_events(filesystem, root, "served", ["use_case", "request_id"])
        mine = served.filter(pc.is_in(served["use_case"], pa.array(list(wanted), pa.string())))
        feedback = read_events(filesystem, root, "feedback", ["event", "request_id"])
        logged_clicks = feedback.filter(
            pc.and_(
                pc.equal(feedback["event"], "click"),
                pc.is_in(feedback["request_id"], mine["request_id"]),
            )
        ).num_rows
        if mine.num_rows >= sum(wanted.values()) and logged_clicks >= clicks:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the log holds {mine.num_rows} of {sum(wanted.values())} lists and "
                f"{logged_clicks} of {clicks} clicks after {timeout_s:.0f} s"
            )
        time.sleep(0.5)


def estimate_trials(
    config: Path, candidate: Path, users_csv: Path, trials: Sequence[CounterfactualTrial]
) -> None:
    """Each run's estimates, by the function behind ``evaluate --counterfactual``
    (reading the log and loading the models once for every run)."""
    runs = evaluate_counterfactuals(
        config, candidate, [t.use_case for t in trials], app="blendserve", users=users_csv
    )
    for trial in trials:
        run = runs[trial.use_case]
        if run.skipped:
            raise RuntimeError(f"{trial.use_case}: lists left out: {run.skipped}")
        trial.agreement = run.report.agreement
        for name in ESTIMATORS:
            estimate = getattr(run.report, name)
            trial.estimates[name] = (estimate.ctr, estimate.low, estimate.high)


def write_inputs(
    directory: Path, serving: dict[str, Any], runs: int, population: Population
) -> tuple[Path, Path, Path]:
    """The served config, the candidate config and the users file, in ``directory``."""
    config, candidate, users = (
        directory / "serving.yaml",
        directory / "candidate.yaml",
        directory / "users.csv",
    )
    config.write_text(yaml.safe_dump(serving, sort_keys=False), encoding="utf-8")
    candidate.write_text(
        yaml.safe_dump(candidate_config(serving, runs), sort_keys=False), encoding="utf-8"
    )
    users.write_text("user_id\n" + "\n".join(population.ids) + "\n", encoding="utf-8")
    return config, candidate, users


def counterfactual_markdown(trials: Sequence[CounterfactualTrial]) -> list[str]:
    """docs/MEASUREMENT.md's section: coverage per estimator."""
    if not trials:
        return []
    lines = [
        "## Counterfactual estimates against serving the candidate",
        "",
        f"{len(trials)} runs of {len(trials[0].users):,} sessions: the logging policy "
        f"(`mf`, exploring {EXPLORE['epsilon']:.0%} of lists over its top "
        f"{K + EXPLORE['pool']}) served them, `blendserve evaluate --counterfactual` "
        f"estimated the candidate (the same source re-ranked by the click model over its "
        f"top {DEPTH}) from the Parquet log, then the candidate served the same users. Clicks "
        "depend on the position and on each item's appeal. The truth: the candidate's CTR "
        "on that traffic (the mean click chance of the lists it was served); the clicks "
        "drawn on them are beside it. The candidate's list agreed with the logged one at "
        f"{sum(t.agreement for t in trials) / len(trials):.0%} of positions on average; "
        f"{sum(t.degraded for t in trials)} answers of either policy were degraded (a "
        "node missed), which would make the served list differ from the estimated one.",
        "",
        "| estimator | intervals holding the truth | holding the drawn CTR | mean estimate "
        "| mean truth |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ESTIMATORS:
        held = sum(lo <= t.expected <= hi for t in trials for _, lo, hi in [t.estimates[name]])
        drawn = sum(lo <= t.measured <= hi for t in trials for _, lo, hi in [t.estimates[name]])
        mean = sum(t.estimates[name][0] for t in trials) / len(trials)
        truth = sum(t.expected for t in trials) / len(trials)
        lines.append(
            f"| {name.upper()} | {held} of {len(trials)} ({held / len(trials):.0%}) | "
            f"{drawn} of {len(trials)} ({drawn / len(trials):.0%}) | {mean:.4f} | {truth:.4f} |"
        )
    return [*lines, ""]
