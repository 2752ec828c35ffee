"""Statistics for online experiments: A/B/n tests on click-through rate, and interleaving.

Plain functions over counts (numpy and scipy only), deterministic given their
arguments. :mod:`blending.evaluation.experiment_reports` turns the counts of an ``experiment`` or
``interleave`` node into one JSON-able verdict each.

Methods, and where they come from:

* CTR intervals: Wilson score interval (Wilson 1927; Agresti & Coull 1998 compare
  it with the Wald interval, which fails near 0 and 1, where CTRs live).
* Arm against control: pooled two-proportion z-test (e.g. Kohavi, Tang & Xu,
  *Trustworthy Online Controlled Experiments*, 2020, ch. 17), Bonferroni-corrected
  over the arms compared with control.
* Probability to beat control: Beta-Binomial posteriors with a uniform prior,
  estimated by Monte Carlo with a fixed seed so a report reads the same twice.
* Lift interval: delta method on the log of the CTR ratio (Katz et al. 1978,
  "Obtaining confidence intervals for the risk ratio in cohort studies").
* Sample ratio mismatch: chi-square goodness of fit of requests per arm against
  the configured split (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in
  Online Controlled Experiments", KDD).
* Clustered CTR: when the counts carry per-list sums of squares, CTR is a ratio
  of per-list totals and its variance comes from the delta method (Deng, Knoblich
  & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD); the interval,
  z-test, lift interval and probability to beat control then use it (normal
  approximations). Impressions of one list share a user, so the impression-level
  tests above would be far too confident.
* Interleaving: two-sided sign test over the requests one team won (Chapelle et al.
  2012, "Large-scale validation and analysis of interleaved search evaluation", TOIS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "ArmTotals",
    "lift_interval",
    "prob_beat_control",
    "relative_lift",
    "sign_test",
    "srm_check",
    "two_proportion_p_value",
    "wilson_interval",
]


def _z(confidence: float) -> float:
    """The two-sided standard normal quantile for ``confidence`` (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    return float(stats.norm.ppf(1.0 - (1.0 - confidence) / 2.0))


def _check_counts(successes: int, trials: int, what: str = "successes") -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"expected 0 <= {what} <= trials, got {what}={successes}, trials={trials}")


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; ``(0.0, 1.0)`` with no trials.

    With p = successes / n and z the normal quantile::

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) * sqrt(p(1-p)/n + z²/4n²)

    Wilson, E. B. (1927), "Probable inference, the law of succession, and
    statistical inference", JASA 22(158).
    """
    _check_counts(successes, trials)
    z = _z(confidence)
    if trials == 0:
        return 0.0, 1.0
    n = float(trials)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; the formula leaves rounding dust.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def two_proportion_p_value(c1: int, n1: int, c2: int, n2: int) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test of c1/n1 against c2/n2.

    ``z = (p1 - p2) / sqrt(P(1-P)(1/n1 + 1/n2))`` with the pooled ``P = (c1+c2)/(n1+n2)``;
    ``None`` when a sample is empty or ``P`` is 0 or 1 (no variance: undefined).
    Reference: Kohavi, Tang & Xu (2020), *Trustworthy Online Controlled Experiments*,
    ch. 17; any statistics text's "test for two proportions".
    """
    _check_counts(c1, n1, "c1")
    _check_counts(c2, n2, "c2")
    if n1 == 0 or n2 == 0:
        return None
    pooled = (c1 + c2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return None
    z = (c1 / n1 - c2 / n2) / math.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def prob_beat_control(
    c_ctrl: int, n_ctrl: int, c_arm: int, n_arm: int, draws: int = 20_000, seed: int = 0
) -> float:
    """P(arm's CTR > control's CTR) under Beta(1 + c, 1 + n - c) posteriors.

    A uniform Beta(1, 1) prior updated with the clicks and non-clicks; estimated from
    ``draws`` Monte Carlo samples of each posterior with a fixed ``seed`` so the same
    counts always give the same answer (standard error below 0.004 at 20,000 draws).
    Reference: Gelman et al., *Bayesian Data Analysis* (3rd ed.), ch. 2.4 (the
    beta-binomial model); its use for A/B tests e.g. Stucchio (2015), "Bayesian A/B
    Testing at VWO".
    """
    _check_counts(c_ctrl, n_ctrl, "c_ctrl")
    _check_counts(c_arm, n_arm, "c_arm")
    if draws < 1:
        raise ValueError(f"draws: expected at least 1, got {draws}")
    rng = np.random.default_rng(seed)
    control = rng.beta(1 + c_ctrl, 1 + n_ctrl - c_ctrl, size=draws)
    arm = rng.beta(1 + c_arm, 1 + n_arm - c_arm, size=draws)
    return float(np.mean(arm > control))


def relative_lift(ctr_arm: float, ctr_ctrl: float) -> float | None:
    """``ctr_arm / ctr_ctrl - 1`` (0.21 is +21%); ``None`` when the control's CTR is 0."""
    if ctr_ctrl <= 0:
        return None
    return ctr_arm / ctr_ctrl - 1.0


def lift_interval(
    c_ctrl: int, n_ctrl: int, c_arm: int, n_arm: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """A confidence interval for :func:`relative_lift`; ``None`` when either CTR is 0.

    Delta method on the log ratio: ``Var(log(p_arm / p_ctrl)) ≈ 1/c_arm - 1/n_arm +
    1/c_ctrl - 1/n_ctrl``; the interval ``exp(log r ± z·se) - 1`` stays above -100%.
    Katz, D. et al. (1978), "Obtaining confidence intervals for the risk ratio in
    cohort studies", Biometrics 34(3).
    """
    _check_counts(c_ctrl, n_ctrl, "c_ctrl")
    _check_counts(c_arm, n_arm, "c_arm")
    z = _z(confidence)
    if c_ctrl == 0 or c_arm == 0:
        return None
    log_ratio = math.log((c_arm / n_arm) / (c_ctrl / n_ctrl))
    se = math.sqrt(1 / c_arm - 1 / n_arm + 1 / c_ctrl - 1 / n_ctrl)
    return math.exp(log_ratio - z * se) - 1.0, math.exp(log_ratio + z * se) - 1.0


def srm_check(
    observed: Mapping[str, int], weights: Mapping[str, float], threshold: float = 0.001
) -> dict[str, Any]:
    """Sample ratio mismatch: do requests per arm match the configured split?

    Pearson's chi-square goodness of fit of the observed request counts against
    ``total * weight / sum(weights)``. Arms with weight 0 take no part (their
    requests would be a bug of another kind). ``mismatch`` when ``p_value <
    threshold``: a split this far off means the assignment or the logging is
    broken, and no other number of the experiment can be trusted. With fewer than
    two weighted arms or no requests there is nothing to test (``p_value`` ``None``).
    Fabijan, A. et al. (2019), "Diagnosing Sample Ratio Mismatch in Online
    Controlled Experiments", KDD.
    """
    arms = [arm for arm, weight in weights.items() if weight > 0]
    total_weight = sum(weights[arm] for arm in arms)
    counts = {arm: int(observed.get(arm, 0)) for arm in arms}
    shares = {arm: weights[arm] / total_weight for arm in arms}
    total = sum(counts.values())
    p_value: float | None = None
    if len(arms) >= 2 and total > 0:
        expected = [total * shares[arm] for arm in arms]
        result = stats.chisquare([counts[arm] for arm in arms], f_exp=expected)
        p_value = float(result.pvalue)
    return {
        "p_value": p_value,
        "mismatch": p_value is not None and p_value < threshold,
        "observed": counts,
        "expected_share": shares,
    }


def sign_test(wins_a: int, wins_b: int) -> float | None:
    """Two-sided exact binomial (sign) test of ``wins_a`` against ``wins_b``.

    Under "no preference" each decided request is a fair coin; ties are left out
    by the caller. ``None`` when no request was decided. Chapelle, O. et al.
    (2012), "Large-scale validation and analysis of interleaved search
    evaluation", ACM TOIS 30(1).
    """
    if wins_a < 0 or wins_b < 0:
        raise ValueError(f"wins: expected counts >= 0, got {wins_a} and {wins_b}")
    n = wins_a + wins_b
    if n == 0:
        return None
    return float(stats.binomtest(wins_a, n, 0.5, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class ArmTotals:
    """What one experiment arm collected: requests served, items shown, items clicked.

    With ``units`` (served lists that got feedback) and the sums of squares over them,
    CTR is analysed as a ratio of per-list totals (the delta method): a list's
    impressions are not independent (one user's taste drives all of them), and
    treating them as such makes A/B tests claim significance far too early.
    """

    requests: int
    impressions: int
    clicks: int
    units: int = 0
    clicks_sq: float = 0.0
    impressions_sq: float = 0.0
    cross: float = 0.0
    """Sums over units of clicks squared, impressions squared and clicks * impressions."""
    outcomes: Mapping[str, float] = field(default_factory=dict)
    """Every outcome's total (counts; dwell in seconds), clicks included."""

    def ratio_variance(self) -> float | None:
        """Variance of clicks / impressions by the delta method over units; None with
        fewer than two units. Deng, Knoblich & Lu (2018), "Applying the Delta Method
        in Metric Analytics", KDD, section 3."""
        m = self.units
        if m < 2 or self.impressions == 0:
            return None
        ratio = self.clicks / self.impressions
        mean_c, mean_n = self.clicks / m, self.impressions / m
        var_c = (self.clicks_sq / m - mean_c**2) * m / (m - 1)
        var_n = (self.impressions_sq / m - mean_n**2) * m / (m - 1)
        cov = (self.cross / m - mean_c * mean_n) * m / (m - 1)
        return max(0.0, (var_c - 2 * ratio * cov + ratio**2 * var_n) / (m * mean_n**2))
