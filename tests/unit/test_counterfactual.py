"""Counterfactual estimates (issue 23), checked in simulation: a logging policy with
exploration serves simulated users whose clicks follow a known position-based model;
a candidate blend is estimated from that log by IPS, SNIPS and DR; then the candidate
is served to fresh users and its CTR measured. Over repeated runs each estimator's
95% interval must cover the measured CTR in at least 90% of runs. Plus each
estimator on a small case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from blending.evaluation.counterfactual import (
    LoggedLists,
    PositionClickModel,
    counterfactual_estimates,
)

K, POOL, ITEMS, EPSILON = 5, 5, 30, 0.3
BIAS = np.array([1.0, 0.7, 0.5, 0.4, 0.3])
T = K + POOL


def _world(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each item's appeal (its click chance at the top position) and the logger's
    base score for it: fixed for a run, the logging and the measuring alike."""
    return rng.uniform(0.02, 0.3, size=ITEMS), rng.normal(size=ITEMS)


def _requests(
    rng: np.random.Generator, world: tuple[np.ndarray, np.ndarray], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per request, the logger's top k + pool (its order) and the candidate's top k."""
    appeal, base = world
    logger_scores = base + rng.normal(scale=1.0, size=(n, ITEMS))
    top = np.argsort(-logger_scores, axis=1)[:, :T]
    # The candidate reorders the logger's top items by their (noisily known) appeal.
    sensed = appeal[top] + rng.normal(scale=0.05, size=top.shape)
    candidate = np.take_along_axis(top, np.argsort(-sensed, axis=1), axis=1)[:, :K]
    return top, candidate


def _clicks(rng: np.random.Generator, appeal: np.ndarray, shown: np.ndarray) -> np.ndarray:
    return (rng.random(shown.shape) < BIAS[None, :] * appeal[shown]).astype(np.float64)


def _log(rng: np.random.Generator, world: tuple[np.ndarray, np.ndarray], n: int) -> LoggedLists:
    """n lists served by the logger with the `explore` draw and its propensities."""
    top, candidate = _requests(rng, world, n)
    appeal = world[0]
    shown = top[:, :K].copy()
    explored = rng.random(n) < EPSILON
    shuffled = rng.permuted(top[explored], axis=1)[:, :K]
    shown[explored] = shuffled
    own = shown == top[:, :K]
    propensity = np.where(own, 1 - EPSILON + EPSILON / T, EPSILON / T)
    return LoggedLists(shown, propensity, _clicks(rng, appeal, shown), candidate)


@pytest.mark.parametrize(("lists", "runs"), [(3000, 120), (250, 200)], ids=["many", "few"])
def test_intervals_cover_the_candidates_measured_ctr_in_90_percent_of_runs(
    lists: int, runs: int
) -> None:
    # With few lists a handful of explored ones carry most of the weight: SNIPS's
    # ratio is skewed and a delta-method interval held the truth in 87% of runs.
    covered = {"ips": 0, "snips": 0, "dr": 0}
    rng = np.random.default_rng(23)
    for _ in range(runs):
        world = _world(rng)
        estimates = counterfactual_estimates(_log(rng, world, lists))
        # Serve the candidate to fresh users and measure.
        _, served = _requests(rng, world, 40_000)
        measured = _clicks(rng, world[0], served).mean()
        for name in covered:
            estimate = getattr(estimates, name)
            covered[name] += estimate.low <= measured <= estimate.high
    print("coverage of the measured CTR:", {name: hits / runs for name, hits in covered.items()})
    for name, hits in covered.items():
        assert hits / runs >= 0.9, f"{name}: covered {hits} of {runs}"


def test_each_estimator_on_a_case_worked_by_hand() -> None:
    # Two lists of two positions. List 1 showed items 0, 1 (propensities 0.5, 0.25),
    # item 0 clicked; list 2 showed 2, 1 (0.5, 0.5), nothing clicked. The candidate
    # proposes 0, 3 for list 1 and 2, 1 for list 2.
    lists = LoggedLists(
        logged=np.array([[0, 1], [2, 1]]),
        propensity=np.array([[0.5, 0.25], [0.5, 0.5]]),
        clicks=np.array([[1.0, 0.0], [0.0, 0.0]]),
        candidate=np.array([[0, 3], [2, 1]]),
    )
    # Weights: [[2, 0], [2, 2]]. IPS clicks per list: (2 + 0) / 2 = 1, CTR 1 / 2.
    result = counterfactual_estimates(lists)
    assert result.ips.ctr == pytest.approx(0.5)
    # SNIPS: position 1: (2*1 + 2*0) / (2 + 2) = 0.5; position 2: 0 / 2 = 0: 0.5 per
    # list, CTR 0.25.
    assert result.snips.ctr == pytest.approx(0.25)
    assert result.logged.ctr == pytest.approx(0.25)
    # Effective lists: list weights 2 and 4: 36 / 20.
    assert result.ips.effective_lists == pytest.approx(1.8)
    assert result.agreement == pytest.approx(0.75)
    # DR with a click model that knows the truth exactly equals the model's value
    # plus the weighted residuals.
    model = PositionClickModel(lists)
    predicted = model.predict(lists.candidate).sum(axis=1)
    residual = (lists.weights * (lists.clicks - model.predict(lists.logged))).sum(axis=1)
    assert result.dr.ctr == pytest.approx((predicted + residual).mean() / 2)


def test_the_click_model_recovers_position_bias_and_appeal() -> None:
    rng = np.random.default_rng(5)
    world = _world(rng)
    appeal = world[0]
    lists = _log(rng, world, 40_000)
    model = PositionClickModel(lists)
    assert model.bias / model.bias[0] == pytest.approx(BIAS, abs=0.05)
    fitted = dict(zip(model.items.tolist(), (model.appeal * model.bias[0]).tolist(), strict=True))
    errors = [abs(fitted[i] - appeal[i]) for i in fitted]
    assert np.median(errors) < 0.02


def test_a_bad_log_is_refused() -> None:
    with pytest.raises(ValueError, match="propensity"):
        LoggedLists(
            logged=np.array([[0]]),
            propensity=np.array([[0.0]]),
            clicks=np.array([[0.0]]),
            candidate=np.array([[0]]),
        )
    with pytest.raises(ValueError, match="shape"):
        LoggedLists(np.zeros((2, 2)), np.ones((2, 3)), np.zeros((2, 2)), np.zeros((2, 2)))
