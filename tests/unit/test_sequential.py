"""The always-valid tests (issue 23): on simulated A/A data read after every batch of
traffic, the mSPRT declares a winner in at most 5% of runs while the fixed-horizon
z-test read the same way does far more often; with a real difference it stops, on the
right side; its interval covers the truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from blending.evaluation.sequential import (
    MIN_CLICKS,
    confidence_sequence,
    mixture_likelihood_ratio,
    sequential_ab,
    sequential_interleaving,
)
from blending.evaluation.stats import ArmTotals, two_proportion_p_value

RUNS = 1000
PEEKS = 50
PER_PEEK = 400
"""Impressions per arm between two looks."""


def _cumulative_clicks(rng: np.random.Generator, ctr: float) -> np.ndarray:
    return np.cumsum(rng.binomial(PER_PEEK, ctr, size=(RUNS, PEEKS)), axis=1)


def _ever_significant(ctr_a: float, ctr_b: float, seed: int) -> tuple[float, float, list[str]]:
    """Share of runs in which the sequential and the fixed-horizon test ever said
    p <= 0.05, read after every batch; and the sequential test's winners."""
    rng = np.random.default_rng(seed)
    clicks_a, clicks_b = _cumulative_clicks(rng, ctr_a), _cumulative_clicks(rng, ctr_b)
    sequential = fixed = 0
    winners: list[str] = []
    for run in range(RUNS):
        stopped = peeked = False
        for peek in range(PEEKS):
            n = PER_PEEK * (peek + 1)
            a, b = int(clicks_a[run, peek]), int(clicks_b[run, peek])
            if not peeked:
                p = two_proportion_p_value(a, n, b, n)
                peeked = p is not None and p <= 0.05
            if not stopped:
                result = sequential_ab(ArmTotals(n, n, a), ArmTotals(n, n, b), ("a", "b"))
                if result.decision == "stop":
                    stopped = True
                    winners.append(str(result.winner))
        sequential += stopped
        fixed += peeked
    return sequential / RUNS, fixed / RUNS, winners


def test_an_aa_test_read_continuously_declares_a_winner_at_most_5_percent_of_the_time() -> None:
    sequential, fixed, _ = _ever_significant(0.05, 0.05, seed=3)
    assert sequential <= 0.05, f"mSPRT declared a winner in {sequential:.1%} of A/A runs"
    # The same looks with the fixed-horizon test: the reason the sequential one exists.
    assert fixed >= 3 * 0.05, f"fixed-horizon peeking: {fixed:.1%}"


def test_a_real_lift_is_found_on_the_right_side() -> None:
    sequential, _, winners = _ever_significant(0.05, 0.065, seed=4)  # +30%
    assert sequential >= 0.8
    assert winners.count("b") / len(winners) >= 0.99


def test_the_interval_covers_the_true_lift() -> None:
    rng = np.random.default_rng(5)
    covered = 0
    runs = 400
    for _ in range(runs):
        n = 20_000
        a, b = int(rng.binomial(n, 0.05)), int(rng.binomial(n, 0.055))
        interval = sequential_ab(ArmTotals(n, n, a), ArmTotals(n, n, b)).interval
        assert interval is not None
        covered += interval[0] <= 0.1 <= interval[1]
    assert covered / runs >= 0.95


def test_interleaving_aa_read_continuously_stays_within_5_percent() -> None:
    rng = np.random.default_rng(6)
    wins = np.cumsum(rng.binomial(100, 0.5, size=(RUNS, PEEKS)), axis=1)
    ever = 0
    for run in range(RUNS):
        for peek in range(PEEKS):
            n = 100 * (peek + 1)
            a = int(wins[run, peek])
            if sequential_interleaving(a, n - a).decision == "stop":
                ever += 1
                break
    assert ever / RUNS <= 0.05
    found = sequential_interleaving(700, 500, ("new", "old"))
    assert found.decision == "stop" and found.winner == "new"
    assert found.interval is not None and found.interval[0] > 0.5


def test_too_little_data_says_continue_and_the_formulas_match_the_paper() -> None:
    few = sequential_ab(ArmTotals(100, 100, MIN_CLICKS - 1), ArmTotals(100, 100, 60))
    assert few.decision == "continue" and few.interval is None and few.p_value == 1.0
    # Lambda at theta = 0 is sqrt(V / (V + tau^2)) < 1: no evidence, p = 1.
    assert mixture_likelihood_ratio(0.0, 0.01, 0.1) == pytest.approx(math.sqrt(0.5))
    low, high = confidence_sequence(0.0, 0.01, 0.1, 0.05)
    assert high == pytest.approx(math.sqrt(0.01 * 2 * (2 * math.log(20) + math.log(2))))
    assert low == -high
    with pytest.raises(ValueError, match="variance > 0"):
        mixture_likelihood_ratio(0.1, 0.0, 0.1)
