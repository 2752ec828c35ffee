"""The verdict of an ``experiment`` or ``interleave`` node, as one JSON-able report:
per arm its counts, CTR with its interval, lift against control, p-value and
probability to beat control; a sample-ratio check; for interleaving, a test of each
team's share of the credited clicks (the sign test beside it).
Beside these fixed-horizon numbers, each comparison gets an always-valid one
(``sequential``: the mSPRT's p-value, interval and a stop/continue recommendation),
the one to read when the dashboard is looked at before the planned sample size.
The statistics themselves are :mod:`blending.evaluation.stats` and
:mod:`blending.evaluation.sequential`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scipy import stats

from blending.evaluation.credit import CreditTotals, credit_test
from blending.evaluation.objective import DEFAULT_OBJECTIVE, objective_per_impression
from blending.evaluation.sequential import sequential_ab, sequential_credit, sequential_interleaving
from blending.evaluation.stats import (
    ArmTotals,
    lift_interval,
    prob_beat_control,
    relative_lift,
    sign_test,
    srm_check,
    two_proportion_p_value,
    wilson_interval,
)

__all__ = ["experiment_report", "interleaving_report"]


def _format_p(p: float) -> str:
    """``p = 0.003``, ``p = 1e-6``, ``p < 1e-16``: short enough for a sentence."""
    if p >= 0.001:
        return f"p = {p:.3f}"
    if p < 1e-16:
        return "p < 1e-16"
    mantissa, exponent = f"{p:.0e}".split("e")
    return f"p = {mantissa}e{int(exponent)}"


def _arm_row(
    weight: float, totals: ArmTotals, control: ArmTotals | None, significant_below: float
) -> dict[str, Any]:
    """One arm's entry of :func:`experiment_report`, compared with ``control`` if given."""
    row: dict[str, Any] = {
        "weight": weight,
        "requests": totals.requests,
        "impressions": totals.impressions,
        "clicks": totals.clicks,
        "ctr": None,
        "ctr_low": None,
        "ctr_high": None,
        "lift": None,
        "lift_low": None,
        "lift_high": None,
        "p_value": None,
        "prob_beat_control": None,
        "significant": False,
    }
    if totals.impressions == 0:
        return row
    row["ctr"] = totals.clicks / totals.impressions
    row["ctr_low"], row["ctr_high"] = wilson_interval(totals.clicks, totals.impressions)
    variance = totals.ratio_variance()
    if variance is not None:
        half = _Z95 * math.sqrt(variance)
        row["ctr_low"], row["ctr_high"] = max(0.0, row["ctr"] - half), min(1.0, row["ctr"] + half)
    if control is None or control.impressions == 0:
        return row
    clustered = _clustered_comparison(totals, control)
    if clustered is not None:
        row.update(clustered)
        row["significant"] = row["p_value"] is not None and row["p_value"] < significant_below
        return row
    c, n = control.clicks, control.impressions
    row["lift"] = relative_lift(row["ctr"], c / n)
    interval = lift_interval(c, n, totals.clicks, totals.impressions)
    if interval is not None:
        row["lift_low"], row["lift_high"] = interval
    row["p_value"] = two_proportion_p_value(totals.clicks, totals.impressions, c, n)
    row["prob_beat_control"] = prob_beat_control(c, n, totals.clicks, totals.impressions)
    row["significant"] = row["p_value"] is not None and row["p_value"] < significant_below
    return row


_Z95 = float(stats.norm.ppf(0.975))


def _clustered_comparison(arm: ArmTotals, control: ArmTotals) -> dict[str, Any] | None:
    """Lift, its interval, p-value and probability to beat control from delta-method
    variances (normal approximations); None without units on both sides."""
    var_a, var_c = arm.ratio_variance(), control.ratio_variance()
    if var_a is None or var_c is None:
        return None
    ctr_a, ctr_c = arm.clicks / arm.impressions, control.clicks / control.impressions
    result: dict[str, Any] = {"lift": relative_lift(ctr_a, ctr_c)}
    spread = math.sqrt(var_a + var_c)
    if spread > 0:
        z = (ctr_a - ctr_c) / spread
        result["p_value"] = float(2 * stats.norm.sf(abs(z)))
        result["prob_beat_control"] = float(stats.norm.cdf(z))
    else:
        result["p_value"], result["prob_beat_control"] = None, None
    if ctr_a > 0 and ctr_c > 0:
        log_spread = math.sqrt(var_a / ctr_a**2 + var_c / ctr_c**2)
        log_ratio = math.log(ctr_a / ctr_c)
        result["lift_low"] = math.exp(log_ratio - _Z95 * log_spread) - 1
        result["lift_high"] = math.exp(log_ratio + _Z95 * log_spread) - 1
    return result


def experiment_report(
    name: str,
    control: str,
    weights: Mapping[str, float],
    totals: Mapping[str, ArmTotals],
    alpha: float = 0.05,
    objective: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The verdict on one A/B/n experiment, as JSON-able data.

    Beside CTR, each arm shows every outcome per impression and the use case's
    ``objective`` (weights over outcomes; default: clicks), with its lift over
    control's.

    Each arm gets its CTR with a Wilson interval; every other arm is compared with
    ``control`` (lift and its interval, z-test p-value, probability to beat
    control). An arm is ``significant`` when its p-value is below ``alpha`` divided
    by the number of arms compared with control (Bonferroni: with three challengers
    at 0.05 each needs p < 0.0167). The winner is the significant arm with the
    highest CTR above control's; if none is better but one is significantly worse,
    control holds and wins. A sample ratio mismatch (:func:`srm_check` on requests)
    withholds any winner. Arms missing from ``totals`` count as empty.
    """
    if control not in weights:
        raise ValueError(f"experiment {name!r}: control {control!r} is not an arm {list(weights)}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    empty = ArmTotals(0, 0, 0)
    order = [control, *(arm for arm in weights if arm != control)]
    got = {arm: totals.get(arm, empty) for arm in order}
    compared = len(order) - 1
    threshold = alpha / max(compared, 1)
    arms = {
        arm: _arm_row(weights[arm], got[arm], None if arm == control else got[control], threshold)
        for arm in order
    }
    srm = srm_check({arm: t.requests for arm, t in got.items()}, weights)
    winner, verdict = _experiment_verdict(control, arms, srm, compared)
    for arm in order[1:]:
        checked = sequential_ab(got[control], got[arm], (control, arm), threshold)
        arms[arm]["sequential"] = checked.as_dict()
    weighted = dict(objective or DEFAULT_OBJECTIVE)
    base = objective_per_impression(got[control].outcomes, got[control].impressions, weighted)
    for arm in order:
        totals_arm = got[arm]
        value = objective_per_impression(totals_arm.outcomes, totals_arm.impressions, weighted)
        arms[arm]["outcomes"] = {
            name: {
                "total": amount,
                "per_impression": amount / totals_arm.impressions
                if totals_arm.impressions
                else None,
            }
            for name, amount in sorted(totals_arm.outcomes.items())
        }
        arms[arm]["objective"] = value
        arms[arm]["objective_lift"] = (
            value / base - 1 if value is not None and base and arm != control else None
        )
    return {
        "name": name,
        "kind": "experiment",
        "control": control,
        "arms": arms,
        "srm": srm,
        "winner": winner,
        "verdict": verdict,
        "stopping": _stopping(control, arms, srm),
        "objective": weighted,
    }


def _stopping(
    control: str, arms: Mapping[str, dict[str, Any]], srm: Mapping[str, Any]
) -> dict[str, Any]:
    """Whether the experiment may stop now, by the always-valid tests (safe to read at
    any time, unlike ``verdict``): stop when an arm differs from control."""
    if srm["mismatch"]:
        return {"decision": "investigate", "reason": "sample ratio mismatch"}
    decided = {
        arm: row["sequential"]
        for arm, row in arms.items()
        if "sequential" in row and row["sequential"]["decision"] == "stop"
    }
    if not decided:
        return {"decision": "continue", "reason": f"no arm differs from {control} yet"}
    better = [arm for arm, s in decided.items() if s["winner"] == arm]
    if better:
        best = max(better, key=lambda arm: arms[arm]["ctr"])
        return {"decision": "stop", "winner": best, "reason": f"{best} beats {control}"}
    worse = sorted(decided)
    return {
        "decision": "stop",
        "winner": control,
        "reason": f"{control} holds: {', '.join(worse)} worse",
    }


def _experiment_verdict(
    control: str, arms: Mapping[str, dict[str, Any]], srm: Mapping[str, Any], compared: int
) -> tuple[str | None, str]:
    """The winner (or ``None``) and one sentence a person can act on."""
    if srm["mismatch"]:
        return None, (
            f"sample ratio mismatch: do not trust these numbers ({_format_p(srm['p_value'])})"
        )
    if compared == 0:
        return None, f"only the control {control} runs: nothing to compare"
    if arms[control]["ctr"] is None:
        return None, f"no impressions for the control {control} yet"
    significant = {arm: row for arm, row in arms.items() if row["significant"]}
    base = arms[control]["ctr"]
    better = {arm: row for arm, row in significant.items() if row["ctr"] > base}
    if better:
        best = max(better, key=lambda arm: better[arm]["ctr"])
        row = better[best]
        lift = "" if row["lift"] is None else f"CTR {row['lift'] * 100:+.1f}% "
        return best, (
            f"{best} beats {control}: {lift}({_format_p(row['p_value'])}, "
            f"{row['prob_beat_control'] * 100:.1f}% to beat control)"
        )
    if significant:
        worst = min(significant, key=lambda arm: significant[arm]["ctr"])
        row = significant[worst]
        lift = "" if row["lift"] is None else f"CTR {row['lift'] * 100:+.1f}%, "
        return control, (f"{control} holds: {worst} does worse ({lift}{_format_p(row['p_value'])})")
    return None, f"no arm differs from {control} yet (need more impressions)"


def interleaving_report(
    name: str,
    teams: tuple[str, str],
    wins: Mapping[str, int],
    ties: int,
    alpha: float = 0.05,
    credit: CreditTotals | None = None,
) -> dict[str, Any]:
    """The verdict on one interleaving node, as JSON-able data.

    ``wins`` counts, per team, the requests in which more of that team's items were
    clicked than the other's (the caller counts them); ``ties`` the clicked
    requests with equal credit. With ``credit`` (the teams' credited clicks per
    list), the verdict tests each team's share of the clicks
    (:mod:`blending.evaluation.credit`): it weighs every click, ties included, and
    so needs fewer lists for the same power. Without it, the sign test over decided requests
    decides. A team is ``preferred`` when it is ahead and the test gives p <
    ``alpha``; ``sign_test_p_value`` is reported either way.
    """
    first, second = teams
    if first == second:
        raise ValueError(f"interleave {name!r}: teams must differ, got {first!r} twice")
    if ties < 0:
        raise ValueError(f"ties: expected a count >= 0, got {ties}")
    a, b = int(wins.get(first, 0)), int(wins.get(second, 0))
    sign_p = sign_test(a, b)
    if credit is None:
        p_value, ahead, method = sign_p, (a > b) - (a < b), "sign test over decided requests"
        sequential = sequential_interleaving(a, b, teams, alpha)
    else:
        p_value, method = credit_test(credit), "share of credited clicks"
        ahead = (credit.a > credit.b) - (credit.a < credit.b)
        sequential = sequential_credit(credit, teams, alpha)
    preferred: str | None = None
    if p_value is None:
        verdict = f"not enough clicked requests to tell {first} and {second} apart yet"
    elif p_value < alpha and ahead != 0:
        preferred, other = (first, second) if ahead > 0 else (second, first)
        evidence = _evidence(preferred, a, b, teams, credit)
        verdict = f"{preferred} preferred over {other}: {evidence} ({_format_p(p_value)})"
    else:
        verdict = (
            f"no preference between {first} and {second} yet "
            f"({a} against {b} wins, {_format_p(p_value)})"
        )
    report: dict[str, Any] = {
        "name": name,
        "kind": "interleave",
        "teams": [first, second],
        "requests_with_clicks": a + b + ties,
        "wins": {first: a, second: b},
        "ties": ties,
        "method": method,
        "p_value": p_value,
        "sign_test_p_value": sign_p,
        "preferred": preferred,
        "verdict": verdict,
        "sequential": sequential.as_dict(),
    }
    if credit is not None:
        report["credited_clicks"] = {first: credit.a, second: credit.b}
        share = credit.share()
        report["click_share"] = None if share is None else {first: share, second: 1.0 - share}
    return report


def _evidence(
    preferred: str, a: int, b: int, teams: tuple[str, str], credit: CreditTotals | None
) -> str:
    """What the preferred team won: its wins, and its clicks when they are counted."""
    won = a if preferred == teams[0] else b
    text = f"won {won} of {a + b} decided requests ({won / max(a + b, 1) * 100:.0f}%)"
    if credit is None:
        return text
    clicks = credit.a if preferred == teams[0] else credit.b
    return f"{clicks} of {credit.a + credit.b} credited clicks, {text}"
