"""Interleaving by credited clicks: the share test, its always-valid version, and
what counting clicks buys over the sign test."""

from __future__ import annotations

import numpy as np
import pytest

from blending.evaluation.credit import MIN_LISTS, CreditTotals, credit_test
from blending.evaluation.experiment_reports import interleaving_report
from blending.evaluation.sequential import sequential_credit
from blending.evaluation.stats import sign_test


def _totals(a: np.ndarray, b: np.ndarray) -> CreditTotals:
    """The totals of lists with ``a[i]`` and ``b[i]`` credited clicks (clicked lists only)."""
    clicked = (a + b) > 0
    a, b = a[clicked].astype(int), b[clicked].astype(int)
    return CreditTotals(
        len(a), int(a.sum()), int(b.sum()), int((a * a).sum()), int((b * b).sum()),
        int((a * b).sum()),
    )  # fmt: skip


def _lists(
    rng: np.random.Generator, n: int, lift: float, clicky: float = 0.06
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` interleaved lists of users who click alike within a list: each team's
    five items are clicked with a user's own chance (mean ``2 * clicky``), the second
    team's ``lift`` more."""
    chance = rng.gamma(2.0, clicky, n)[:, None]
    a = (rng.random((n, 5)) < chance).sum(axis=1)
    b = (rng.random((n, 5)) < np.minimum(chance * (1 + lift), 1.0)).sum(axis=1)
    return a, b


def test_the_share_and_its_variance_are_the_ratio_estimate_over_lists() -> None:
    rng = np.random.default_rng(1)
    a, b = _lists(rng, 500, 0.2)
    totals = _totals(a, b)
    clicked = (a + b) > 0
    a, b = a[clicked], b[clicked]
    share = a.sum() / (a + b).sum()
    residual = a - share * (a + b)
    n = len(a)
    expected = (residual**2).sum() / (a + b).sum() ** 2 * n / (n - 1)
    assert totals.share() == pytest.approx(share)
    assert totals.share_variance() == pytest.approx(expected)
    assert CreditTotals().add(2, 1, lists=3) == CreditTotals(3, 6, 3, 12, 3, 6)


def test_the_credit_test_waits_for_enough_lists_and_reads_a_clear_split() -> None:
    few = CreditTotals().add(3, 0, lists=MIN_LISTS - 1)
    assert credit_test(few) is None
    one_sided = CreditTotals().add(1, 0, lists=30)
    assert credit_test(one_sided) == pytest.approx(0.0, abs=1e-6)
    even = CreditTotals().add(1, 1, lists=40)
    assert credit_test(even) == pytest.approx(1.0)


def test_on_aa_data_the_fixed_horizon_test_errs_about_five_percent_of_the_time() -> None:
    rng = np.random.default_rng(2)
    runs = 1500
    rejected = sum(credit_test(_totals(*_lists(rng, 400, 0.0))) < 0.05 for _ in range(runs))  # type: ignore[operator]
    assert 0.035 <= rejected / runs <= 0.065


def test_on_aa_data_the_always_valid_test_rarely_errs_however_often_it_is_read() -> None:
    rng = np.random.default_rng(3)
    runs, reads, per_read = 300, 60, 50
    errs = 0
    for _ in range(runs):
        a, b = _lists(rng, reads * per_read, 0.0)
        for stop in range(per_read, len(a) + 1, per_read):
            if sequential_credit(_totals(a[:stop], b[:stop])).decision == "stop":
                errs += 1
                break
    assert errs / runs <= 0.05


def test_counting_clicks_finds_a_preference_in_fewer_lists_than_the_sign_test() -> None:
    # The sign test counts a list won 3-0 like one won 1-0 and drops ties.
    rng = np.random.default_rng(4)
    runs, lists = 400, 150
    by_credit = by_sign = 0
    for _ in range(runs):
        a, b = _lists(rng, lists, 0.15, clicky=0.15)
        by_credit += credit_test(_totals(a, b)) < 0.05  # type: ignore[operator]
        p = sign_test(int((a > b).sum()), int((b > a).sum()))
        by_sign += p is not None and p < 0.05
    assert by_credit > 1.15 * by_sign and by_credit / runs > 0.45


def test_a_report_with_credited_clicks_decides_on_them_and_keeps_the_sign_test() -> None:
    credit = CreditTotals().add(0, 2, lists=30).add(1, 0, lists=20).add(1, 1, lists=10)
    report = interleaving_report(
        "mix", ("taste", "clicky"), {"taste": 20, "clicky": 30}, 10, credit=credit
    )
    assert report["method"] == "share of credited clicks"
    assert report["p_value"] == pytest.approx(credit_test(credit))
    assert report["sign_test_p_value"] == pytest.approx(sign_test(20, 30))
    assert report["p_value"] < 0.05 < report["sign_test_p_value"]
    assert report["preferred"] == "clicky"
    assert report["verdict"].startswith("clicky preferred over taste: 70 of 100 credited clicks")
    assert report["credited_clicks"] == {"taste": 30, "clicky": 70}
    assert report["click_share"]["taste"] == pytest.approx(0.3)
    assert report["sequential"]["decision"] in ("stop", "continue")
