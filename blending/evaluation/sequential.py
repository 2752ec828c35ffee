"""Always-valid (peeking-safe) tests for experiments: the mixture sequential
probability ratio test (mSPRT).

A fixed-horizon test is right once, at the sample size chosen in advance; looked at
every few minutes on a dashboard, and stopped the first time p < 0.05, it declares a
false winner far more often than 5%. The mSPRT's p-value and confidence interval
stay valid however often they are read: the chance that an A/A test *ever* shows
p <= alpha is at most alpha.

Method: Johari, Koomen, Pekelis & Walsh (2017), "Peeking at A/B Tests: Why it
matters, and what to do about it", KDD; and Johari, Pekelis & Walsh (2022),
"Always Valid Inference: Continuous Monitoring of A/B Tests", Operations Research
70(3). For an estimate ``theta`` that is approximately normal with variance ``V``,
and a normal mixing distribution N(0, tau^2) over the effect, the mixture
likelihood ratio against ``theta = 0`` is

    Lambda = sqrt(V / (V + tau^2)) * exp(theta^2 tau^2 / (2 V (V + tau^2)))

The always-valid p-value is ``min(1, 1 / Lambda)``, and the confidence sequence is
``theta +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)))``.

The effect is measured where a default ``tau`` means the same thing at any base
rate: for A/B, the log of the CTR ratio (``tau = 0.1``: lifts of about 10%), with the
clustered (delta-method) variance when the counts carry it; for interleaving, the
share of decided requests the first team won minus one half, or its share of the
credited clicks minus one half (``tau = 0.05``: a 55/45 split). The normal
approximation needs a few clicks per arm first: until ``MIN_CLICKS`` each, the test
says to continue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from blending.evaluation.credit import CreditTotals
from blending.evaluation.stats import ArmTotals

__all__ = [
    "AB_TAU",
    "INTERLEAVING_TAU",
    "MIN_CLICKS",
    "SequentialResult",
    "confidence_sequence",
    "mixture_likelihood_ratio",
    "sequential_ab",
    "sequential_credit",
    "sequential_interleaving",
]

AB_TAU = 0.1
"""Default mixing scale of an A/B test's effect, on the log CTR ratio."""

INTERLEAVING_TAU = 0.05
"""Default mixing scale of an interleaving test's effect, on the win share - 0.5."""

MIN_CLICKS = 20
"""Clicks (or decided requests) each side needs before the test may decide."""


def mixture_likelihood_ratio(theta: float, variance: float, tau: float) -> float:
    """The mSPRT statistic of an estimate ``theta`` with ``variance`` against 0, under
    a N(0, tau^2) mixture over the effect (``inf`` when it overflows)."""
    if variance <= 0 or tau <= 0:
        raise ValueError(f"need variance > 0 and tau > 0, got {variance} and {tau}")
    t2 = tau * tau
    exponent = theta * theta * t2 / (2.0 * variance * (variance + t2))
    if exponent > 700:  # exp would overflow: the evidence is overwhelming
        return math.inf
    return math.sqrt(variance / (variance + t2)) * math.exp(exponent)


def confidence_sequence(
    theta: float, variance: float, tau: float, alpha: float
) -> tuple[float, float]:
    """The always-valid ``1 - alpha`` interval around ``theta``."""
    t2 = tau * tau
    half = math.sqrt(
        variance
        * (variance + t2)
        / t2
        * (2 * math.log(1 / alpha) + math.log((variance + t2) / variance))
    )
    return theta - half, theta + half


@dataclass(frozen=True)
class SequentialResult:
    """An always-valid verdict: p-value, interval of the effect, and what to do."""

    p_value: float
    """Always valid: P(ever <= alpha | no difference) <= alpha."""
    interval: tuple[float, float] | None
    """On the scale of the report (A/B: relative lift; interleaving: the first team's
    win share); ``None`` while there is too little data."""
    decision: str
    """``stop``: a winner at ``alpha``, whenever the test is read; else ``continue``."""
    winner: str | None
    reason: str

    def as_dict(self) -> dict[str, object]:
        """JSON-able, for reports and the experiment API."""
        return {
            "method": "mSPRT (always valid)",
            "p_value": self.p_value,
            "interval": list(self.interval) if self.interval else None,
            "decision": self.decision,
            "winner": self.winner,
            "reason": self.reason,
        }


def _ctr_and_variance(arm: ArmTotals) -> tuple[float, float]:
    ctr = arm.clicks / arm.impressions
    clustered = arm.ratio_variance()
    variance = clustered if clustered is not None else ctr * (1 - ctr) / arm.impressions
    return ctr, variance


def sequential_ab(
    control: ArmTotals,
    arm: ArmTotals,
    names: tuple[str, str] = ("control", "arm"),
    alpha: float = 0.05,
    tau: float = AB_TAU,
) -> SequentialResult:
    """Always-valid comparison of ``arm``'s CTR with ``control``'s (two-sided), on the
    log of their ratio; the interval is of the relative lift (0.1 is +10%)."""
    if min(control.clicks, arm.clicks) < MIN_CLICKS:
        return SequentialResult(
            1.0, None, "continue", None, f"fewer than {MIN_CLICKS} clicks in an arm"
        )
    ctr_c, var_c = _ctr_and_variance(control)
    ctr_a, var_a = _ctr_and_variance(arm)
    theta = math.log(ctr_a / ctr_c)
    variance = var_a / ctr_a**2 + var_c / ctr_c**2
    if variance <= 0:
        return SequentialResult(1.0, None, "continue", None, "no variation in the clicks yet")
    p_value = min(1.0, 1.0 / mixture_likelihood_ratio(theta, variance, tau))
    low, high = confidence_sequence(theta, variance, tau, alpha)
    interval = (math.expm1(low), math.expm1(high))
    if p_value <= alpha:
        winner = names[1] if theta > 0 else names[0]
        return SequentialResult(p_value, interval, "stop", winner, f"{winner} wins at {alpha:g}")
    return SequentialResult(p_value, interval, "continue", None, "no difference shown yet")


def sequential_interleaving(
    wins_a: int,
    wins_b: int,
    names: tuple[str, str] = ("a", "b"),
    alpha: float = 0.05,
    tau: float = INTERLEAVING_TAU,
) -> SequentialResult:
    """Always-valid test that the first team wins half the decided requests; the
    interval is of its win share."""
    n = wins_a + wins_b
    if min(wins_a, wins_b) < 0:
        raise ValueError(f"wins: expected counts >= 0, got {wins_a} and {wins_b}")
    if n < 2 * MIN_CLICKS:
        return SequentialResult(
            1.0, None, "continue", None, f"fewer than {2 * MIN_CLICKS} decided requests"
        )
    # The variance under the null, which the test's validity is about.
    return _share_test(wins_a / n, 0.25 / n, names, alpha, tau)


def sequential_credit(
    totals: CreditTotals,
    names: tuple[str, str] = ("a", "b"),
    alpha: float = 0.05,
    tau: float = INTERLEAVING_TAU,
) -> SequentialResult:
    """Always-valid test that the first team gets half the credited clicks
    (:mod:`blending.evaluation.credit`); the interval is of its click share."""
    if totals.lists < MIN_CLICKS:
        return SequentialResult(
            1.0, None, "continue", None, f"fewer than {MIN_CLICKS} clicked requests"
        )
    share, variance = totals.share(), totals.share_variance()
    if share is None or variance is None:
        return SequentialResult(1.0, None, "continue", None, "no clicks yet")
    return _share_test(share, variance, names, alpha, tau)


def _share_test(
    share: float, variance: float, names: tuple[str, str], alpha: float, tau: float
) -> SequentialResult:
    """The always-valid test that the first team's ``share`` (of won requests or of
    credited clicks, with its ``variance``) is one half; the interval is of the share."""
    theta = share - 0.5
    p_value = min(1.0, 1.0 / mixture_likelihood_ratio(theta, variance, tau))
    low, high = confidence_sequence(theta, variance, tau, alpha)
    interval = (max(0.0, 0.5 + low), min(1.0, 0.5 + high))
    if p_value <= alpha:
        winner = names[0] if theta > 0 else names[1]
        return SequentialResult(p_value, interval, "stop", winner, f"{winner} wins at {alpha:g}")
    return SequentialResult(p_value, interval, "continue", None, "no difference shown yet")
