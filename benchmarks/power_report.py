"""What ``make power``'s runs say (``benchmarks/power.py``): A/A false positives with
continuous peeking, interval coverage, sessions to 80% power, staged experiments
against A/B/n (``benchmarks/power_markdown.py`` writes them as docs/MEASUREMENT.md)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize, stats

from benchmarks.power_sim import RUN_KINDS, Population

if TYPE_CHECKING:
    from benchmarks.power import RunResult

__all__ = [
    "aa_rates",
    "coverage",
    "decided",
    "decisions",
    "fitted_sessions_to",
    "power_curve",
    "sessions_to",
    "summary",
]

POWER = 0.8


def _of(results: Sequence[RunResult], kind: str) -> list[RunResult]:
    return [r for r in results if r.kind == kind]


def _challengers(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    control = report.get("control")
    return [row for arm, row in (report.get("arms") or {}).items() if arm != control]


def decided(report: Mapping[str, Any]) -> str | None:
    """The candidate an experiment's always-valid tests show beating the control, if
    any (for a staged one: only in its second stage, the first compares none)."""
    for row_arm, row in (report.get("arms") or {}).items():
        sequential = row.get("sequential") or {}
        if row_arm != report.get("control") and sequential.get("winner") == row_arm:
            return str(row_arm)
    return None


def summary(results: Sequence[RunResult], population: Population) -> list[dict[str, Any]]:
    """Each run's last report, trimmed to what the tables use, with each arm's true CTR
    (``benchmarks/results/power.json``: to check a figure run by run)."""
    rows = []
    for run in results:
        sessions, report = run.readings[-1]
        kind = RUN_KINDS[run.kind]
        qualities = kind.quality
        users = population.arm_users(run.use_case, kind) if kind.experiment == "experiment" else {}
        arms = {
            arm: {
                key: row.get(key)
                for key in ("requests", "impressions", "clicks", "ctr", "ctr_low", "ctr_high")
            }
            | {
                "true_ctr": population.true_ctr(qualities[arm]) if arm in qualities else None,
                "true_ctr_of_its_users": population.true_ctr(qualities[arm], users[arm])
                if arm in users
                else None,
            }
            for arm, row in (report.get("arms") or {}).items()
        }
        rows.append(
            {
                "use_case": run.use_case,
                "kind": run.kind,
                "sessions": sessions,
                "arms": arms,
                "decided": decided(report),
                "stages": report.get("stages"),
                "p_value": report.get("p_value"),
                "sign_test_p_value": report.get("sign_test_p_value"),
            }
        )
    return rows


def aa_rates(results: Sequence[RunResult]) -> dict[str, float]:
    """Share of A/A runs in which a winner is ever declared, reading the report after
    every batch: by the fixed-horizon test, by the always-valid one; and the fixed
    test read once, at the end (its nominal 5%)."""
    runs = _of(results, "aa")
    if not runs:
        return {}

    def fixed(report: Mapping[str, Any]) -> bool:
        return any(row["significant"] for row in _challengers(report))

    def sequential(report: Mapping[str, Any]) -> bool:
        return bool(report["stopping"]["decision"] == "stop")

    return {
        "runs": len(runs),
        "peeks": statistics.mean(len(r.readings) for r in runs),
        "fixed_peeking": sum(any(fixed(rep) for _, rep in r.readings) for r in runs) / len(runs),
        "sequential_peeking": sum(any(sequential(rep) for _, rep in r.readings) for r in runs)
        / len(runs),
        "fixed_once": sum(fixed(r.readings[-1][1]) for r in runs) / len(runs),
    }


def coverage(
    results: Sequence[RunResult], population: Population, kind: str
) -> tuple[int, int, int]:
    """(intervals holding their arm's true CTR, intervals holding the whole
    population's, intervals) over the final reports.

    An arm's truth is the CTR over the users the service assigns to it: sticky
    assignment makes an arm's users one fixed draw of the population, and an
    interval over the arm's sessions estimates the CTR of those users' sessions.
    How far that draw sits from the population's CTR is printed beside it."""
    held = held_population = total = 0
    kind_ = RUN_KINDS[kind]
    for run in _of(results, kind):
        users = population.arm_users(run.use_case, kind_)
        for arm, row in run.readings[-1][1]["arms"].items():
            if row["ctr_low"] is None:
                total += 1
                continue
            quality = kind_.quality[arm]
            low, high = row["ctr_low"], row["ctr_high"]
            total += 1
            held += low <= population.true_ctr(quality, users[arm]) <= high
            held_population += low <= population.true_ctr(quality) <= high
    return held, held_population, total


def _ab_found(report: Mapping[str, Any], best: str) -> bool:
    row, control = report["arms"][best], report["arms"][report["control"]]
    return bool(row["significant"] and row["ctr"] > control["ctr"])


def _il_found(report: Mapping[str, Any], best: str) -> bool:
    p_value = report["p_value"]
    return p_value is not None and p_value < 0.05 and report["preferred"] == best


def _il_sign_found(report: Mapping[str, Any], best: str) -> bool:
    """The sign test's verdict on the same report: the better team won more lists,
    significantly."""
    p_value, wins = report.get("sign_test_p_value"), report["wins"]
    ahead = wins[best] > max(v for team, v in wins.items() if team != best)
    return p_value is not None and p_value < 0.05 and ahead


def power_curve(
    results: Sequence[RunResult], kind: str, sign_test: bool = False
) -> list[tuple[int, float]]:
    """(sessions, share of runs whose fixed-horizon test, read once at that many
    sessions, finds the better ranker better); for interleaving with ``sign_test``,
    the sign test's verdict on the same readings."""
    run_kind = RUN_KINDS[kind]
    ab = run_kind.experiment == "experiment"
    found = _ab_found if ab else _il_sign_found if sign_test else _il_found
    runs = _of(results, kind)
    points: dict[int, list[bool]] = {}
    for run in runs:
        for sessions, report in run.readings:
            points.setdefault(sessions, []).append(found(report, run_kind.best))
    return [(s, sum(v) / len(v)) for s, v in sorted(points.items())]


def sessions_to(curve: Sequence[tuple[int, float]], target: float = POWER) -> float | None:
    """Sessions at which ``curve`` first reaches ``target`` (linear between readings);
    ``None`` if it never does."""
    previous = (0, 0.0)
    for sessions, share in curve:
        if share >= target:
            (s0, p0) = previous
            if share == p0:
                return float(sessions)
            return s0 + (target - p0) * (sessions - s0) / (share - p0)
        previous = (sessions, share)
    return None


def fitted_sessions_to(curve: Sequence[tuple[int, float]], target: float = POWER) -> float | None:
    """Sessions to ``target`` power from a fit of every reading of ``curve`` to the
    normal-theory shape ``power(n) = Phi(a * sqrt(n) - 1.96)`` (maximum likelihood
    over ``a``): one reading per point is too noisy to find where 80% is crossed with
    30 runs a point (each share is off by about 9 points). None without a signal."""
    if not curve:
        return None
    sessions = np.array([n for n, _ in curve], dtype=np.float64)
    shares = np.clip(np.array([p for _, p in curve]), 1e-6, 1 - 1e-6)
    z_alpha = float(stats.norm.ppf(0.975))

    def loss(a: float) -> float:
        power = np.clip(stats.norm.cdf(a * np.sqrt(sessions) - z_alpha), 1e-9, 1 - 1e-9)
        return float(-np.sum(shares * np.log(power) + (1 - shares) * np.log(1 - power)))

    fit = optimize.minimize_scalar(loss, bounds=(0.0, 2.0), method="bounded")
    a = float(fit.x)
    if a <= 1e-4:
        return None
    return float(((z_alpha + stats.norm.ppf(target)) / a) ** 2)


def decisions(results: Sequence[RunResult], kind: str) -> list[tuple[int, str | None]]:
    """Per run: sessions sent until a candidate was shown better than the control
    (or the cap, undecided), and that candidate."""
    out = []
    for run in _of(results, kind):
        sessions, report = run.readings[-1]
        out.append((sessions, decided(report)))
    return out
