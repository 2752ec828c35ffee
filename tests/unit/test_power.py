"""``make power``'s simulation and its reading of reports (the run itself is
``make power``; ``make power POWER_ARGS=--quick`` is its smoke run)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats

from benchmarks.power import RunResult
from benchmarks.power_report import decided, fitted_sessions_to, sessions_to, summary
from benchmarks.power_sim import LIFT, RUN_KINDS, K, Population, qualities_of, serve_use_cases
from benchmarks.power_small_change import PROBES, boosted_appeal, list_ctr, probe_use_cases
from blending.spec import UseCaseSpec


def test_the_true_ctr_is_what_simulated_sessions_click() -> None:
    population = Population(2_000, seed=3)
    rng = random.Random(4)
    for quality in (1.0, 1.0 + LIFT):
        clicks = 0
        sessions = 40_000
        for _ in range(sessions):
            clicks += len(population.clicks(rng, population.user(rng), [quality] * K))
        simulated = clicks / (sessions * K)
        assert simulated == pytest.approx(population.true_ctr(quality), rel=0.02)
    lift = population.true_ctr(1.0 + LIFT) / population.true_ctr(1.0) - 1
    assert 0.09 < lift <= LIFT


def test_an_arms_truth_is_over_the_users_the_service_puts_in_it() -> None:
    population = Population(4_000, seed=3)
    users = population.arm_users("ab007", RUN_KINDS["ab"])
    control, challenger = users["control"], users["challenger"]
    assert not (control & challenger).any() and (control | challenger).all()
    assert 0.45 < control.mean() < 0.55, "two arms of equal weight"
    assert population.arm_users("ab008", RUN_KINDS["ab"])["control"].tolist() != control.tolist()
    whole = population.true_ctr(1.0)
    halves = [population.true_ctr(1.0, users[arm]) for arm in ("control", "challenger")]
    assert halves[0] != halves[1] and min(halves) < whole < max(halves)


def test_active_users_have_many_sessions_and_most_users_few() -> None:
    population = Population(20_000, seed=1)
    rng = random.Random(2)
    counts = np.bincount([population.user(rng) for _ in range(40_000)], minlength=20_000)
    assert counts.max() >= 20 and np.median(counts[counts > 0]) <= 2


def test_every_run_kind_is_a_valid_use_case() -> None:
    runs = [(f"{name}000", kind) for name, kind in RUN_KINDS.items()]
    for use_case, spec in serve_use_cases(runs, max_sessions=100).items():
        checked = UseCaseSpec.model_validate(spec)
        assert checked.output == "exp", use_case
    staged = serve_use_cases([("s", RUN_KINDS["staged"])], 100)["s"]["nodes"]["exp"]
    assert staged["prune"] == {"max_sessions": 100} and staged["salt"] == "s"


def test_each_position_gets_its_rankers_quality() -> None:
    answer = {
        "variant": {"exp": "challenger"},
        "items": [{"item_id": "a", "team": None}, {"item_id": "b"}],
    }
    assert qualities_of(RUN_KINDS["ab"], answer) == [1 + LIFT, 1 + LIFT]
    teams = {"items": [{"item_id": "a", "team": "pop"}, {"item_id": "b", "team": "cf"}]}
    assert qualities_of(RUN_KINDS["il"], teams) == [1.0, 1 + LIFT]
    with pytest.raises(ValueError, match="cannot tell who ranked"):
        qualities_of(RUN_KINDS["ab"], {"items": [{"item_id": "a"}]})


def test_sessions_to_power_interpolates_between_readings() -> None:
    assert sessions_to([(100, 0.2), (200, 0.6), (300, 0.9)]) == pytest.approx(200 + 100 * 2 / 3)
    assert sessions_to([(100, 0.85)]) == pytest.approx(100 * 0.8 / 0.85)
    assert sessions_to([(100, 0.2), (200, 0.5)]) is None


def test_the_fitted_sessions_to_power_recover_a_known_curve_from_noisy_readings() -> None:
    # Readings of a test that needs 1,500 sessions for 80% power, each the share of 30
    # runs (as make power reads them): the fit lands near 1,500 though single
    # readings cross 80% anywhere from about 1,000 to 2,500.
    rng = np.random.default_rng(5)
    slope = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / np.sqrt(1500)
    grid = (100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000)
    estimates = []
    for _ in range(40):
        curve = [
            (n, rng.binomial(30, stats.norm.cdf(slope * np.sqrt(n) - stats.norm.ppf(0.975))) / 30)
            for n in grid
        ]
        estimates.append(fitted_sessions_to(curve))
    assert all(e is not None for e in estimates)
    assert 1300 < float(np.median([e for e in estimates if e is not None])) < 1700
    assert fitted_sessions_to([(100, 0.0), (200, 0.0)]) is None, "no signal, no figure"


def test_a_decision_is_a_candidate_shown_better_than_the_control() -> None:
    def report(winner: str | None) -> dict[str, object]:
        return {
            "control": "control",
            "arms": {
                "control": {"sequential": {"winner": None}},
                "c1": {"sequential": {"winner": winner}},
            },
        }

    assert decided(report("c1")) == "c1"
    assert decided(report("control")) is None, "the control holding is not a new winner"
    assert decided(report(None)) is None


def test_the_raw_results_keep_each_arms_interval_beside_its_truth() -> None:
    population = Population(100, seed=1)
    run = RunResult("ab000", "ab")
    arm = {"requests": 5, "impressions": 50, "clicks": 9, "ctr": 0.18}
    run.readings.append(
        (
            50,
            {
                "control": "control",
                "arms": {
                    "control": {**arm, "ctr_low": 0.1, "ctr_high": 0.26},
                    "challenger": {**arm, "ctr_low": 0.1, "ctr_high": 0.26},
                },
            },
        )
    )
    (row,) = summary([run], population)
    assert row["sessions"] == 50 and row["decided"] is None
    assert row["arms"]["challenger"]["true_ctr"] == population.true_ctr(1 + LIFT)
    assert row["arms"]["control"]["ctr_high"] == 0.26


def test_the_small_change_boost_makes_the_challenger_exactly_the_lift_better() -> None:
    population = Population(3_000, seed=5)
    control = [f"i{n}" for n in range(K)]
    challenger = ["i0", "new1", "i1", "i2", "new2", *control[3:8]]
    appeal = boosted_appeal(population, control, challenger)
    assert set(appeal) == {"new1", "new2"} and min(appeal.values()) > 1.0
    ratio = list_ctr(population, challenger, appeal) / list_ctr(population, control, {})
    assert ratio == pytest.approx(1 + LIFT, rel=1e-6)
    # Sessions clicked by appeal click that often.
    rng = random.Random(6)
    sessions = 40_000
    clicks = sum(
        len(
            population.item_clicks(
                rng, population.user(rng), challenger, lambda i: appeal.get(i, 1.0)
            )
        )
        for _ in range(sessions)
    )
    assert clicks / (sessions * K) == pytest.approx(
        list_ctr(population, challenger, appeal), rel=0.03
    )
    with pytest.raises(ValueError, match="adds nothing"):
        boosted_appeal(population, control, list(reversed(control)))


def test_the_probe_use_cases_are_valid_and_serve_one_ranker_each() -> None:
    for use_case, spec in probe_use_cases().items():
        parsed = UseCaseSpec.model_validate(spec)
        assert parsed.output == PROBES[use_case]
