"""What pricing a ``bandit`` list costs a request: ``BlendPlan.run`` of a bandit use
case whose propensities are priced (the bandit's list, filtered), against the same
bandit blended with nothing else (its order re-scored, so its propensities are
logged as unknown and nothing is priced), in process, over snapshots of several
sizes. Run: ``.venv/bin/python -m benchmarks.bandit_odds``.
"""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np

from blending.candidates import BlendContext
from blending.dag import BlendPlan
from blending.online import OnlineSnapshot
from blending.spec import UseCaseSpec

__all__ = ["main", "request_ms"]

_SIZES = (10, 30, 60, 100)
_REQUESTS = 300


def _snapshot(items: int) -> OnlineSnapshot:
    """``items`` items, most barely seen (wide posteriors: the costly case)."""
    rng = np.random.default_rng(items)
    shown = rng.lognormal(3.0, 1.5, items)
    clicks = rng.binomial(shown.astype(int) + 1, rng.beta(2, 30, items))
    names = [f"i{n}" for n in range(items)]
    return OnlineSnapshot(
        at=0.0,
        impressions=dict(zip(names, shown.tolist(), strict=True)),
        clicks=dict(zip(names, clicks.astype(float).tolist(), strict=True)),
    )


def _plan(priced: bool) -> BlendPlan:
    nodes: dict[str, object] = {"hot": {"kind": "bandit", "candidates": 100}}
    if priced:
        nodes["out"] = {"kind": "filter", "input": "hot"}
    else:
        nodes["mix"] = {"kind": "blend", "weights": {"hot": 1.0}}
        nodes["out"] = {"kind": "filter", "input": "mix"}
    return BlendPlan("bench", UseCaseSpec.model_validate({"nodes": nodes, "output": "out"}))


def request_ms(plan: BlendPlan, snapshot: OnlineSnapshot) -> tuple[float, bool]:
    """Median milliseconds of one request, and whether its propensities were priced."""
    timings = []
    priced = False
    for n in range(_REQUESTS):
        ctx = BlendContext("u", 10, request_id=f"r{n}", online=snapshot)
        began = time.perf_counter()
        outcome = asyncio.run(plan.run(ctx, None))  # type: ignore[arg-type]
        timings.append((time.perf_counter() - began) * 1000.0)
        priced = not any(math.isnan(p) for p in outcome.propensities)
    return float(np.median(timings)), priced


def main() -> None:
    """Print one row per snapshot size: unpriced and priced request times, their ratio."""
    print("items  unpriced ms  priced ms  ratio  priced?")
    for items in _SIZES:
        snapshot = _snapshot(items)
        base, _ = request_ms(_plan(priced=False), snapshot)
        cost, priced = request_ms(_plan(priced=True), snapshot)
        print(f"{items:5d}  {base:11.2f}  {cost:9.2f}  {cost / base:5.1f}  {priced}")


if __name__ == "__main__":
    main()
