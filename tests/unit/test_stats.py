"""Online-experiment statistics, checked against numbers computed independently here."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from blending.evaluation.experiment_reports import experiment_report, interleaving_report
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

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal

ARM_KEYS = {
    "weight",
    "requests",
    "impressions",
    "clicks",
    "ctr",
    "ctr_low",
    "ctr_high",
    "lift",
    "lift_low",
    "lift_high",
    "p_value",
    "prob_beat_control",
    "significant",
}


def _normal_two_sided(z: float) -> float:
    """2 * (1 - Phi(|z|)) without scipy."""
    return math.erfc(abs(z) / math.sqrt(2))


def _exact_prob_b_beats_a(a_succ: int, a_fail: int, b_succ: int, b_fail: int) -> float:
    """P(p_B > p_A) for Beta(1+s, 1+f) posteriors, in closed form (Evan Miller, 2015,
    "Formulas for Bayesian A/B Testing"): sum over i < alpha_B of
    B(alpha_A + i, beta_A + beta_B) / ((beta_B + i) B(1 + i, beta_B) B(alpha_A, beta_A))."""
    alpha_a, beta_a, alpha_b, beta_b = 1 + a_succ, 1 + a_fail, 1 + b_succ, 1 + b_fail

    def log_beta(x: float, y: float) -> float:
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    return sum(
        math.exp(
            log_beta(alpha_a + i, beta_a + beta_b)
            - math.log(beta_b + i)
            - log_beta(1 + i, beta_b)
            - log_beta(alpha_a, beta_a)
        )
        for i in range(alpha_b)
    )


def test_wilson_interval_of_5_in_10_matches_the_hand_computation() -> None:
    # p = 0.5, n = 10, z^2 = 3.8415: centre = (0.5 + 0.19207) / 1.38415 = 0.5,
    # half = 1.95996 / 1.38415 * sqrt(0.025 + 0.0096036) = 0.263406.
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.236594, 0.763406), abs=1e-6)


def test_wilson_interval_of_no_successes_starts_at_zero() -> None:
    # p = 0: centre = half = (z^2/20) / (1 + z^2/10) = 0.138767, so (0, 0.277533).
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_two_proportion_p_value_is_the_pooled_z_test() -> None:
    # 45/100 against 30/100: pooled 0.375, se = sqrt(0.375 * 0.625 * 0.02) = 0.0684653,
    # z = 0.15 / 0.0684653 = 2.19089, two-sided p = 0.02846.
    z = 0.15 / math.sqrt(0.375 * 0.625 * (1 / 100 + 1 / 100))
    p = two_proportion_p_value(45, 100, 30, 100)
    assert p == pytest.approx(_normal_two_sided(z), rel=1e-9)
    assert p == pytest.approx(0.02846, abs=1e-5)


def test_two_proportion_p_value_is_undefined_without_data_or_variance() -> None:
    assert two_proportion_p_value(0, 0, 3, 10) is None
    assert two_proportion_p_value(0, 100, 0, 100) is None  # no clicks anywhere
    assert two_proportion_p_value(10, 10, 5, 5) is None  # every impression clicked


def test_prob_beat_control_agrees_with_the_closed_form_and_is_stable() -> None:
    exact = _exact_prob_b_beats_a(40, 960, 55, 945)
    estimate = prob_beat_control(40, 1000, 55, 1000)
    assert estimate == pytest.approx(exact, abs=0.01)
    assert prob_beat_control(40, 1000, 55, 1000) == estimate  # fixed seed: same answer
    assert prob_beat_control(50, 1000, 50, 1000) == pytest.approx(0.5, abs=0.015)


def test_relative_lift_and_its_log_ratio_interval() -> None:
    assert relative_lift(0.06, 0.05) == pytest.approx(0.2)
    assert relative_lift(0.06, 0.0) is None
    # 150/1000 against 100/1000: log ratio ln 1.5, se = sqrt(1/150 - 1/1000 + 1/100 - 1/1000).
    se = math.sqrt(1 / 150 - 1 / 1000 + 1 / 100 - 1 / 1000)
    expected = (1.5 * math.exp(-Z95 * se) - 1, 1.5 * math.exp(Z95 * se) - 1)
    assert lift_interval(100, 1000, 150, 1000) == pytest.approx(expected, rel=1e-9)
    assert lift_interval(100, 1000, 150, 1000) == pytest.approx((0.18305, 0.90186), abs=1e-5)
    assert lift_interval(0, 1000, 150, 1000) is None


def test_srm_flags_a_60_40_split_against_50_50() -> None:
    # chi^2 = 2 * 1000^2 / 5000 = 400 with one degree of freedom.
    result = srm_check({"a": 6000, "b": 4000}, {"a": 50, "b": 50})
    assert result["mismatch"] is True
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(400 / 2)), rel=1e-6)
    assert result["observed"] == {"a": 6000, "b": 4000}
    assert result["expected_share"] == {"a": 0.5, "b": 0.5}


def test_srm_accepts_a_5020_4980_split() -> None:
    # chi^2 = 2 * 20^2 / 5000 = 0.16: p = erfc(sqrt(0.08)) = 0.6892.
    result = srm_check({"a": 5020, "b": 4980}, {"a": 1, "b": 1})
    assert result["mismatch"] is False
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(0.08)), rel=1e-9)


def test_srm_leaves_out_arms_with_no_weight() -> None:
    result = srm_check({"a": 5000, "b": 5000, "paused": 0}, {"a": 1, "b": 1, "paused": 0})
    assert set(result["expected_share"]) == {"a", "b"}
    assert result["p_value"] == pytest.approx(1.0)
    assert srm_check({"a": 10}, {"a": 1})["p_value"] is None  # one arm: nothing to test


def test_sign_test_is_the_exact_binomial_test() -> None:
    # 15 wins against 5: 2 * P(X <= 5), X ~ Binomial(20, 1/2).
    expected = 2 * sum(math.comb(20, i) for i in range(6)) / 2**20
    assert sign_test(15, 5) == pytest.approx(expected, rel=1e-9)
    assert sign_test(15, 5) == pytest.approx(0.041389, abs=1e-6)
    assert sign_test(0, 0) is None


def test_a_clear_winner_is_named_with_its_lift() -> None:
    report = experiment_report(
        "discover.ab",
        "taste",
        {"taste": 40, "clicky": 40},
        {"taste": ArmTotals(1200, 9000, 450), "clicky": ArmTotals(1210, 9000, 600)},
    )
    assert set(report) == {
        "name",
        "kind",
        "control",
        "arms",
        "srm",
        "winner",
        "verdict",
        "stopping",
        "objective",
    }
    assert report["kind"] == "experiment" and report["control"] == "taste"
    assert list(report["arms"]) == ["taste", "clicky"]
    outcome_keys = {"outcomes", "objective", "objective_lift"}
    assert set(report["arms"]["taste"]) == {*ARM_KEYS, *outcome_keys}
    assert set(report["arms"]["clicky"]) == {*ARM_KEYS, *outcome_keys, "sequential"}
    # The always-valid test agrees here, and says the experiment may stop.
    assert report["arms"]["clicky"]["sequential"]["decision"] == "stop"
    assert report["stopping"] == {
        "decision": "stop",
        "winner": "clicky",
        "reason": "clicky beats taste",
    }
    control, clicky = report["arms"]["taste"], report["arms"]["clicky"]
    assert control["ctr"] == pytest.approx(0.05) and control["lift"] is None
    assert control["p_value"] is None and control["significant"] is False
    assert clicky["lift"] == pytest.approx(1 / 3)
    assert clicky["significant"] is True and clicky["prob_beat_control"] > 0.99
    assert report["winner"] == "clicky"
    assert report["verdict"].startswith("clicky beats taste: CTR +33.3% (p = ")
    assert report["srm"]["mismatch"] is False
    json.dumps(report)  # JSON-able as it is


def test_few_impressions_name_no_winner() -> None:
    report = experiment_report(
        "x",
        "taste",
        {"taste": 1, "clicky": 1},
        {"taste": ArmTotals(20, 100, 5), "clicky": ArmTotals(20, 100, 7)},
    )
    assert report["winner"] is None
    assert report["verdict"] == "no arm differs from taste yet (need more impressions)"


def test_bonferroni_raises_the_bar_with_three_challengers() -> None:
    # 130/1000 against 100/1000: p = 0.0355, under 0.05 but over 0.05 / 3.
    control = ArmTotals(1000, 1000, 100)
    b = ArmTotals(1000, 1000, 130)
    same = ArmTotals(1000, 1000, 100)
    alone = experiment_report("x", "a", {"a": 1, "b": 1}, {"a": control, "b": b})
    assert alone["arms"]["b"]["p_value"] == pytest.approx(0.0355, abs=1e-4)
    assert alone["arms"]["b"]["significant"] is True and alone["winner"] == "b"
    crowded = experiment_report(
        "x",
        "a",
        {"a": 1, "b": 1, "c": 1, "d": 1},
        {"a": control, "b": b, "c": same, "d": same},
    )
    assert crowded["arms"]["b"]["significant"] is False
    assert crowded["winner"] is None


def test_a_significantly_worse_arm_lets_control_hold() -> None:
    report = experiment_report(
        "x",
        "taste",
        {"taste": 1, "clicky": 1},
        {"taste": ArmTotals(1200, 9000, 450), "clicky": ArmTotals(1200, 9000, 300)},
    )
    assert report["winner"] == "taste"
    assert report["verdict"].startswith("taste holds: clicky does worse (CTR -33.3%, p = ")


def test_a_sample_ratio_mismatch_withholds_the_winner() -> None:
    report = experiment_report(
        "x",
        "taste",
        {"taste": 1, "clicky": 1},
        {"taste": ArmTotals(1500, 9000, 450), "clicky": ArmTotals(900, 9000, 600)},
    )
    assert report["srm"]["mismatch"] is True
    assert report["arms"]["clicky"]["significant"] is True  # the numbers are still shown
    assert report["winner"] is None
    assert report["verdict"].startswith("sample ratio mismatch: do not trust these numbers (p ")


def test_arms_without_impressions_have_null_rates() -> None:
    report = experiment_report(
        "x", "taste", {"taste": 1, "new": 1}, {"taste": ArmTotals(10, 100, 5)}
    )
    new = report["arms"]["new"]
    assert new["requests"] == 0 and new["ctr"] is None and new["ctr_low"] is None
    assert new["p_value"] is None and new["significant"] is False
    assert report["winner"] is None
    json.dumps(report)


def test_zero_clicks_everywhere_gives_rates_but_no_test() -> None:
    report = experiment_report(
        "x",
        "taste",
        {"taste": 1, "clicky": 1},
        {"taste": ArmTotals(100, 1000, 0), "clicky": ArmTotals(100, 1000, 0)},
    )
    clicky = report["arms"]["clicky"]
    assert clicky["ctr"] == 0.0 and clicky["ctr_low"] == 0.0
    assert clicky["lift"] is None and clicky["lift_low"] is None and clicky["p_value"] is None
    assert report["winner"] is None


def test_a_single_arm_has_nothing_to_compare() -> None:
    report = experiment_report("x", "only", {"only": 1}, {"only": ArmTotals(10, 100, 5)})
    assert report["srm"]["p_value"] is None
    assert report["winner"] is None and "nothing to compare" in report["verdict"]


def test_an_unknown_control_is_refused() -> None:
    with pytest.raises(ValueError, match="control 'z' is not an arm"):
        experiment_report("x", "z", {"a": 1}, {})


def test_interleaving_prefers_a_team_that_wins_clearly() -> None:
    report = interleaving_report("mix", ("taste", "clicky"), {"taste": 30, "clicky": 70}, 12)
    assert report == {
        "name": "mix",
        "kind": "interleave",
        "teams": ["taste", "clicky"],
        "requests_with_clicks": 112,
        "wins": {"taste": 30, "clicky": 70},
        "ties": 12,
        "method": "sign test over decided requests",
        "p_value": pytest.approx(sign_test(30, 70)),
        "sign_test_p_value": pytest.approx(sign_test(30, 70)),
        "preferred": "clicky",
        "verdict": report["verdict"],
        "sequential": report["sequential"],
    }
    assert report["verdict"].startswith("clicky preferred over taste: won 70 of 100")
    # The always-valid test, safe to read at any time, agrees: stop, clicky wins (its
    # interval is of the first team's win share, taste's, well below a half).
    sequential = report["sequential"]
    assert sequential["decision"] == "stop" and sequential["winner"] == "clicky"
    assert sequential["p_value"] > report["p_value"], "peeking-safe costs some power"
    assert sequential["interval"][1] < 0.5


def test_interleaving_with_a_close_count_has_no_preference() -> None:
    report = interleaving_report("mix", ("taste", "clicky"), {"taste": 60, "clicky": 40}, 0)
    assert report["p_value"] == pytest.approx(0.0569, abs=1e-4)
    assert report["preferred"] is None
    assert report["verdict"].startswith("no preference between taste and clicky yet (60 against 40")


def test_interleaving_without_clicks_says_so() -> None:
    report = interleaving_report("mix", ("taste", "clicky"), {}, 3)
    assert report["p_value"] is None and report["preferred"] is None
    assert report["requests_with_clicks"] == 3
    assert "yet" in report["verdict"]


def _clustered(per_list: list[tuple[int, int]]) -> ArmTotals:
    """Totals of served lists given as (clicks, impressions) each."""
    return ArmTotals(
        requests=len(per_list),
        impressions=sum(n for _, n in per_list),
        clicks=sum(c for c, _ in per_list),
        units=len(per_list),
        clicks_sq=sum(c * c for c, _ in per_list),
        impressions_sq=sum(n * n for _, n in per_list),
        cross=sum(c * n for c, n in per_list),
    )


def test_clustered_ctr_variance_is_the_delta_method() -> None:
    lists = [(0, 10), (5, 10), (1, 8), (0, 10), (3, 12)]
    totals = _clustered(lists)
    c = np.array([x for x, _ in lists], dtype=float)
    n = np.array([y for _, y in lists], dtype=float)
    ratio = c.sum() / n.sum()
    # Deng et al. (2018): Var(C/N) = (s_c^2 - 2 R s_cn + R^2 s_n^2) / (m * mean_n^2)
    s_cc, s_nn = c.var(ddof=1), n.var(ddof=1)
    s_cn = np.cov(c, n, ddof=1)[0, 1]
    expected = (s_cc - 2 * ratio * s_cn + ratio**2 * s_nn) / (len(lists) * n.mean() ** 2)
    assert totals.ratio_variance() == pytest.approx(expected)


def test_clicks_bunched_in_few_lists_are_less_significant_than_independent_ones() -> None:
    # Same totals (control 20 of 1,000, arm 40 of 1,000), clicks bunched in a few
    # lists of heavy clickers: the impression-level test would call it at p ~ 0.01.
    control = _clustered([(10, 10)] * 2 + [(0, 10)] * 98)
    arm = _clustered([(10, 10)] * 4 + [(0, 10)] * 96)
    naive = two_proportion_p_value(40, 1000, 20, 1000)
    report = experiment_report("e", "a", {"a": 50, "b": 50}, {"a": control, "b": arm})
    row = report["arms"]["b"]
    assert naive is not None and naive < 0.02
    assert row["p_value"] > 0.3 and not row["significant"] and report["winner"] is None
    assert row["ctr_high"] - row["ctr_low"] > 0.05  # the interval reflects the bunching
