"""docs/MEASUREMENT.md from ``make power``'s runs (the figures are
``benchmarks/power_report.py``'s)."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from scipy import stats

from benchmarks.power_counterfactual import (
    ESTIMATORS,
    CounterfactualTrial,
    counterfactual_markdown,
)
from benchmarks.power_report import (
    aa_rates,
    coverage,
    decisions,
    fitted_sessions_to,
    power_curve,
    sessions_to,
)
from benchmarks.power_sim import BASE_QUALITY, EXAMINE, LIFT, RUN_KINDS, K, Population
from benchmarks.power_variance import variance_markdown
from blending.evaluation.stats import wilson_interval

if TYPE_CHECKING:
    from benchmarks.power import Plan, RunResult

__all__ = ["markdown"]


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


def _power_table(
    ab: Sequence[tuple[int, float]],
    credit: Sequence[tuple[int, float]],
    sign: Sequence[tuple[int, float]],
) -> list[str]:
    """A/B's power by sessions beside interleaving's, by both interleaving tests."""
    by_credit, by_sign = dict(credit), dict(sign)

    def cell(share: float | None) -> str:
        return "-" if share is None else f"{share:.0%}"

    return [
        "| sessions | A/B power | interleaving power | interleaving, sign test |",
        "|---:|---:|---:|---:|",
        *(
            f"| {n:,} | {share:.0%} | {cell(by_credit.get(n))} | {cell(by_sign.get(n))} |"
            for n, share in ab
        ),
    ]


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
    appeal: Mapping[str, float] | None = None,
) -> str:
    """docs/MEASUREMENT.md (``appeal``: the small-change runs' boosted items)."""
    aa = aa_rates(results)
    ab_held, ab_whole, ab_total = coverage(results, population, "ab")
    aa_held, aa_whole, aa_total = coverage(results, population, "aa")
    ab_curve, il_curve = power_curve(results, "ab"), power_curve(results, "il")
    sign_curve = power_curve(results, "il", sign_test=True)
    ab_n, il_n = fitted_sessions_to(ab_curve), fitted_sessions_to(il_curve)
    sign_n = fitted_sessions_to(sign_curve)
    ab_seen, il_seen = sessions_to(ab_curve), sessions_to(il_curve)
    ratio = ab_n / il_n if ab_n and il_n else None
    small_ab, small_il = power_curve(results, "ab_small"), power_curve(results, "il_small")
    small_sign = power_curve(results, "il_small", sign_test=True)
    small_ab_n, small_il_n = fitted_sessions_to(small_ab), fitted_sessions_to(small_il)
    small_ratio = small_ab_n / small_il_n if small_ab_n and small_il_n else None
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
            f"crosses 80%: A/B {_fmt(ab_seen)}, interleaving {_fmt(il_seen)}). Interleaving's "
            "verdict tests each team's share of the credited clicks; the sign test over "
            f"won lists, read on the same runs, needs {_fmt(sign_n)}",
        ),
        (
            "... the same, for a small change (staff picks mixed into popularity's list)",
            small_ratio is not None and small_ratio >= 3,
            f"A/B {_fmt(small_ab_n)} sessions, interleaving {_fmt(small_il_n)}: "
            + (f"{small_ratio:.1f}x" if small_ratio else "no signal")
            + f" (sign test: {_fmt(fitted_sessions_to(small_sign))}; see below)",
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
        *_power_table(ab_curve, il_curve, sign_curve),
    ]
    boost = max(appeal.values()) - 1.0 if appeal else float("nan")
    lines += [
        "",
        "## A small change: staff picks mixed into a list",
        "",
        "Control: popularity's list; challenger: popularity blended with the staff picks "
        "(0.7 and 0.3, min-max scaled; `benchmarks/power_small_change.py`), which brings "
        f"{len(appeal or {})} picks into the top {K} and keeps the other items (some move). "
        "Clicks follow the items a user sees: every item has appeal 1, the items only "
        f"the challenger shows {1 + boost:.2f}, set so "
        f"the challenger's true session CTR is exactly {1 + LIFT:.2f} times the "
        "control's. This is where interleaving is known to shine: both rankers agree on "
        "most of the list, and only the items they differ on can win a list. Runs: "
        f"{plan.runs.get('ab_small', 0)} A/B and {plan.runs.get('il_small', 0)} interleaving.",
        "",
        *_power_table(small_ab, small_il, small_sign),
    ]
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
