"""Experiment intervals cluster on the user (issue 23, A/B coverage): arms are
assigned by user, so a returning user's lists are correlated; counting each list as
its own unit makes CTR intervals too narrow. Feedback carries the user's unit (a
bucket of the pseudonym, in the result id) and the counts sum per unit."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import numpy as np

from blending.result_ids import UNITS, ResultIdCodec, ResultRef, user_unit
from deployments.events.counts import EventCounts

USERS, SESSIONS, SHOWN = 60, 8, 4
TRUTH = 0.2
"""Each user's click chance is drawn from Beta(1, 4): mean 0.2, users differ a lot."""


def _interval(rng: np.random.Generator, with_units: bool) -> tuple[float, float]:
    """One A/B arm's 95% CTR interval from the counts, over returning users."""
    counts = EventCounts()
    chances = rng.beta(1.0, 4.0, USERS)
    for user, chance in enumerate(chances):
        for session in range(SESSIONS):
            request = f"r{user}-{session}"
            for position in range(SHOWN):
                for event in ("impression", "click"):
                    if event == "click" and rng.random() >= chance:
                        continue
                    counts.add_feedback(
                        {
                            "event": event,
                            "result_id": f"{request}/{position}",
                            "use_case": "home",
                            "variant": {"ab": "a"},
                            "request_id": request,
                            "served_at": 1_700_000_000.0,
                            "ts": 1_700_000_000.0,
                            "unit": user if with_units else None,
                        }
                    )
    totals = counts.arm_totals("home", "ab")["a"]
    variance = totals.ratio_variance()
    assert variance is not None
    ctr, half = totals.clicks / totals.impressions, 1.96 * math.sqrt(variance)
    return ctr - half, ctr + half


def test_intervals_over_user_units_hold_the_truth_where_per_list_ones_do_not() -> None:
    rng = np.random.default_rng(11)
    runs = 120
    held = {units: 0 for units in (True, False)}
    for _ in range(runs):
        for units in held:
            low, high = _interval(rng, units)
            held[units] += low <= TRUTH <= high
    assert held[True] / runs >= 0.9, held
    assert held[False] / runs < 0.85, held


def test_a_users_unit_travels_in_the_result_id_and_is_coarse() -> None:
    codec = ResultIdCodec(b"k" * 32)
    unit = user_unit("9f3a0c11d2e4b5a6")
    assert unit is not None and 0 <= unit < UNITS
    ref = ResultRef("r1", "home", 1, "i1", 1_700_000_000, {"ab": "a"}, unit=unit)
    assert codec.decode(codec.encode(ref)).unit == unit
    plain = ResultRef("r1", "home", 1, "i1", 1_700_000_000)
    assert codec.decode(codec.encode(plain)).unit is None, "no experiment, no unit"
    assert user_unit("") is None
    units = Counter(user_unit(hashlib.sha256(str(n).encode()).hexdigest()) for n in range(20_000))
    assert len(units) > 0.95 * UNITS and np.median(list(units.values())) >= 4, "users share units"
