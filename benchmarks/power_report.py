"""What ``make power``'s runs say (``benchmarks/power.py``): A/A false positives with
continuous peeking, interval coverage, sessions to 80% power, staged experiments
against A/B/n, as docs/MEASUREMENT.md."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import optimize, stats

from benchmarks.power_counterfactual import (
    ESTIMATORS,
    CounterfactualTrial,
    counterfactual_markdown,
)
from benchmarks.power_sim import BASE_QUALITY, EXAMINE, LIFT, RUN_KINDS, Population
from benchmarks.power_variance import variance_markdown
from blending.evaluation.stats import wilson_interval

if TYPE_CHECKING:
    from benchmarks.power import Plan, RunResult

__all__ = [
    "aa_rates",
    "coverage",
    "decided",
    "decisions",
    "fitted_sessions_to",
    "markdown",
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


def _ab_found(report: Mapping[str, Any]) -> bool:
    row, control = report["arms"][RUN_KINDS["ab"].best], report["arms"][report["control"]]
    return bool(row["significant"] and row["ctr"] > control["ctr"])


def _il_found(report: Mapping[str, Any]) -> bool:
    p_value = report["p_value"]
    return p_value is not None and p_value < 0.05 and report["preferred"] == RUN_KINDS["il"].best


def power_curve(results: Sequence[RunResult], kind: str) -> list[tuple[int, float]]:
    """(sessions, share of runs whose fixed-horizon test, read once at that many
    sessions, finds the better ranker better)."""
    found = _ab_found if kind == "ab" else _il_found
    runs = _of(results, kind)
    points: dict[int, list[bool]] = {}
    for run in runs:
        for sessions, report in run.readings:
            points.setdefault(sessions, []).append(found(report))
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


def _fmt(value: float | None, digits: int = 0) -> str:
    return "never" if value is None else f"{value:,.{digits}f}"


def _bonferroni_cost(tests: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """How many times the sessions per arm a two-sided test at ``alpha / tests`` needs
    against one at ``alpha``, at the same power (normal approximation)."""
    beta_z = float(stats.norm.ppf(power))
    corrected = float(stats.norm.ppf(1 - alpha / (2 * tests))) + beta_z
    return (corrected / (float(stats.norm.ppf(1 - alpha / 2)) + beta_z)) ** 2


def _share_interval(held: int, runs: int) -> str:
    """The 95% Wilson interval of a coverage share, as text: how far the share of a
    few dozen runs may be from the coverage itself."""
    low, high = wilson_interval(held, runs)
    return f"{low:.0%}-{high:.0%}"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def markdown(
    results: Sequence[RunResult],
    population: Population,
    plan: Plan,
    seconds: float,
    sent: int,
    command: str,
    trials: Sequence[CounterfactualTrial] = (),
) -> str:
    """docs/MEASUREMENT.md."""
    aa = aa_rates(results)
    ab_held, ab_whole, ab_total = coverage(results, population, "ab")
    aa_held, aa_whole, aa_total = coverage(results, population, "aa")
    ab_curve, il_curve = power_curve(results, "ab"), power_curve(results, "il")
    ab_n, il_n = fitted_sessions_to(ab_curve), fitted_sessions_to(il_curve)
    ab_seen, il_seen = sessions_to(ab_curve), sessions_to(il_curve)
    ratio = ab_n / il_n if ab_n and il_n else None
    staged, abn = decisions(results, "staged"), decisions(results, "abn")
    cap = plan.sessions["staged"]
    candidates = {a: q for a, q in RUN_KINDS["staged"].quality.items() if a != "control"}
    best = RUN_KINDS["staged"].best

    def median_sessions(rows: list[tuple[int, str | None]]) -> float:
        # An undecided run counts at the cap: the median is then a lower bound.
        return float(statistics.median(s for s, _ in rows)) if rows else float("nan")

    staged_n, abn_n = median_sessions(staged), median_sessions(abn)
    cut = abn_n / staged_n if staged_n else None
    truth = {q: population.true_ctr(q) for q in (1.0, 1.0 + LIFT)}
    lift = truth[1.0 + LIFT] / truth[1.0] - 1
    rows = [
        (
            "A/A, continuous peeking: the always-valid test declares a winner in <= 5% of runs",
            aa and aa["sequential_peeking"] <= 0.05,
            f"{aa.get('sequential_peeking', 0):.1%} of {aa.get('runs', 0)} runs "
            f"(fixed-horizon, read the same way: {aa.get('fixed_peeking', 0):.1%}; read once "
            f"at the end: {aa.get('fixed_once', 0):.1%})",
        ),
        (
            "A/B 95% intervals hold the true CTR in >= 93% of runs",
            ab_total > 0 and ab_held / ab_total >= 0.93,
            f"{ab_held} of {ab_total} arm intervals ({ab_held / max(ab_total, 1):.1%}) hold "
            f"the CTR of the arm's users; A/A arms {aa_held} of {aa_total} "
            f"({aa_held / max(aa_total, 1):.1%}). Against the whole population's CTR: "
            f"{ab_whole} of {ab_total} and {aa_whole} of {aa_total} (an arm's users are one "
            "fixed draw of the population; its sessions' interval cannot see that draw)",
        ),
        (
            "interleaving reaches 80% power with >= 3x fewer sessions than A/B",
            ratio is not None and ratio >= 3,
            f"A/B {_fmt(ab_n)} sessions, interleaving {_fmt(il_n)}: "
            + (f"{ratio:.1f}x" if ratio else "no signal")
            + " (fitted to every reading of the power table below; where the table first "
            f"crosses 80%: A/B {_fmt(ab_seen)}, interleaving {_fmt(il_seen)})",
        ),
        (
            "the two-stage experiment cuts sessions to a decision >= 3x against A/B/n",
            cut is not None and cut >= 3,
            f"median {staged_n:,.0f} sessions staged against {abn_n:,.0f} A/B/n over four "
            f"candidates ({cut:.1f}x)"
            if cut
            else "no decision",
        ),
    ]
    if trials:
        held = {
            name: sum(lo <= t.expected <= hi for t in trials for _, lo, hi in [t.estimates[name]])
            for name in ESTIMATORS
        }
        rows.append(
            (
                "counterfactual 95% intervals hold the candidate's served CTR in >= 90% of runs",
                all(h / len(trials) >= 0.9 for h in held.values()),
                ", ".join(
                    f"{n.upper()} {h} of {len(trials)} ({h / len(trials):.0%}, "
                    f"{_share_interval(h, len(trials))})"
                    for n, h in held.items()
                )
                + " (in brackets: the 95% Wilson interval of the share itself, from "
                f"{len(trials)} runs)",
            )
        )
    lines = [
        "# Measurement you can trust",
        "",
        "Written by `make power` (`benchmarks/power.py`); rerun it to refresh. A simulated "
        "population with a known truth drives the real service through HTTP, started as "
        "`make run` starts it (the demo's models; one use case per run): each session "
        "asks `POST /v1/recommend/<run>` for "
        f"{len(EXAMINE)} items, clicks, and sends its impressions and clicks through "
        "`POST /v1/feedback`; verdicts are read from `GET /v1/experiments/<run>.exp`, as "
        "the dashboard reads them. The counterfactual runs go first, on their own: the "
        "logging policy serves, `blendserve evaluate --counterfactual` estimates a "
        "candidate from the Parquet log, then the candidate serves the same users.",
        "",
        f"Last run: `{command}`, {sent:,} sessions in {seconds:.0f} s "
        f"({sent / max(seconds, 1e-9):.0f} sessions/s, all runs at once).",
        "",
        "## The simulation",
        "",
        "- **Users**: 20,000, each session's user drawn by a log-normal activity weight "
        "(a few users have many sessions); each has a click propensity u (gamma, mean 1, "
        "sd 0.5) kept across their sessions.",
        f"- **Clicks**: position p (from 0) is examined with chance 1/(1+p)^0.7 and clicked "
        f"with chance min(1, {BASE_QUALITY} x q x u), q being the quality of the ranker "
        "that put the item there (the user's arm; in interleaving the item's team).",
        f"- **Rankers**: real nodes of the served config (popularity, `mf`, blends of "
        f"both); qualities: control 1, better ranker {1 + LIFT:.2f}. True CTR per "
        f"impression: {truth[1.0]:.4f} and {truth[1.0 + LIFT]:.4f}, a session-CTR lift "
        f"of {lift:+.1%} (the issue's +11%, less where the cap at 1 binds).",
        f"- **Runs**: {', '.join(f'{n} x {k}' for k, n in plan.runs.items())}; "
        f"sessions per run {', '.join(f'{k} {n:,}' for k, n in plan.sessions.items())}. "
        f"Feedback is sent after every {plan.batch} sessions of a run; A/A reports are "
        "read after every batch (continuous peeking); A/B and interleaving at fixed "
        "session counts (each a fixed-horizon test read once there); staged and A/B/n "
        "runs after every batch until a candidate is shown better than the control.",
        "",
        "## Targets",
        "",
        "| target | status | measured |",
        "|---|---|---|",
        *(f"| {name} | {_verdict(bool(ok))} | {text} |" for name, ok, text in rows),
        "",
        "## Power by sessions (fixed-horizon tests, +11%)",
        "",
        "| sessions | A/B power | interleaving power |",
        "|---:|---:|---:|",
    ]
    il = dict(il_curve)
    for sessions, share in ab_curve:
        other = il.get(sessions)
        lines.append(f"| {sessions:,} | {share:.0%} | {'-' if other is None else f'{other:.0%}'} |")
    lines += [
        "",
        "## Staged experiment against A/B/n",
        "",
        "Five arms: the control (popularity) and four candidates of qualities "
        + ", ".join(f"{a} {q:.2f}" for a, q in candidates.items())
        + f". Staged: the candidates multileaved until one beats the rest (always valid) or "
        f"{plan.max_sessions:,} clicked lists, then the survivor against the control. A/B/n: "
        f"the five arms split evenly. A run ends when a candidate is shown better than the "
        f"control by the always-valid test, or at {cap:,} sessions (undecided).",
        "",
        "A staged experiment still ends in a two-arm A/B of the survivor against the "
        "control, each arm with half the traffic. In A/B/n each of the five arms has a "
        "fifth, and each of the four candidates is tested against the control at alpha/4 "
        f"(Bonferroni), so A/B/n needs about {len(candidates) + 1}/2 x "
        f"{_bonferroni_cost(len(candidates)):.2f} = "
        f"{(len(candidates) + 1) / 2 * _bonferroni_cost(len(candidates)):.1f}x the sessions "
        "of that final A/B at the same lift (fixed-horizon arithmetic at 80% power; the "
        "always-valid test's is close). The first stage only adds to the staged total, so "
        "a 3x cut needs a first stage that costs less than about a fifth of the final A/B. "
        "What the first stage buys besides is the pick: the survivor is nearly always the "
        "best candidate.",
        "",
        f"| design | runs | median sessions | decided | picked the best ({best}) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rows_ in (("staged", staged), ("A/B/n", abn)):
        made = [w for s, w in rows_ if w is not None]
        lines.append(
            f"| {name} | {len(rows_)} | {median_sessions(rows_):,.0f} | {len(made)} | "
            f"{sum(w == best for w in made)} |"
        )
    lines += ["", *variance_markdown(ratio), *counterfactual_markdown(trials)]
    return "\n".join(lines) + "\n"
