"""The AIMD batch controller: grows under load inside the target, backs off past it."""

from __future__ import annotations

import pytest

from deployments.hosting.batching import AdaptiveBatching


def test_lone_calls_never_wait_and_do_not_grow_the_batch_past_two() -> None:
    control = AdaptiveBatching(max_size=32, max_wait_s=0.01, target_s=0.02)
    for _ in range(100):
        control.observe(1, 0.001)
    assert control.wait_s == 0.0
    assert control.size == 2  # one full batch of one grew it once; lone calls never fill 2


def test_full_batches_inside_the_target_grow_additively_up_to_the_cap() -> None:
    control = AdaptiveBatching(max_size=8, max_wait_s=0.0, target_s=0.05)
    sizes = []
    for _ in range(10):
        control.observe(control.size, 0.01)
        sizes.append(control.size)
    assert sizes == [2, 3, 4, 5, 6, 7, 8, 8, 8, 8]


def test_an_overrun_cuts_the_batch_multiplicatively_and_stops_waiting() -> None:
    control = AdaptiveBatching(max_size=64, max_wait_s=0.01, target_s=0.02, decrease=0.75)
    control.size, control.wait_s = 40, 0.004
    control.observe(40, 0.03)
    assert (control.size, control.wait_s) == (30, 0.0)
    control.observe(30, 0.025)
    assert control.size == 22


def test_it_settles_under_the_largest_batch_that_fits_the_target() -> None:
    # A model taking 1 ms + 1 ms per call, target 20 ms: 19 calls fit.
    control = AdaptiveBatching(max_size=128, max_wait_s=0.0, target_s=0.02)
    seen = []
    for _ in range(300):
        control.observe(control.size, 0.001 + 0.001 * control.size)
        seen.append(control.size)
    assert max(seen[100:]) <= 20 and min(seen[100:]) >= 13


def test_partial_batches_wait_longer_within_the_targets_room() -> None:
    control = AdaptiveBatching(max_size=16, max_wait_s=0.004, target_s=0.02)
    control.size = 16
    waits = []
    for _ in range(6):
        control.observe(4, 0.002)
        waits.append(control.wait_s)
    assert waits == pytest.approx([0.0005, 0.001, 0.002, 0.004, 0.004, 0.004])
    control.observe(16, 0.002)  # full: halve
    assert control.wait_s == pytest.approx(0.002)
    tight = AdaptiveBatching(max_size=16, max_wait_s=0.01, target_s=0.02)
    tight.size, tight.wait_s = 16, 0.008
    tight.observe(4, 0.0195)  # only 0.5 ms of room left
    assert tight.wait_s == pytest.approx(0.0005)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        AdaptiveBatching(max_size=0, max_wait_s=0, target_s=0.01)
    with pytest.raises(ValueError):
        AdaptiveBatching(max_size=4, max_wait_s=0, target_s=0.01, decrease=1.0)
