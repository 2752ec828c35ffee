"""``make power``'s small-change runs: popularity against popularity with the staff
picks mixed in (``ab_small``, ``il_small``).

Most experiments compare a ranking with a variant of it, not two rankings that share
nothing. Here the rankers share most of their top items, and clicks follow the
items a user sees: each item's appeal is 1, the challenger's new items'
``1 + boost``, so the challenger's edge lies only where the lists differ. The boost
is set so that the challenger's true session CTR over the population is exactly
``1 + LIFT`` times the control's, as in the other runs. Both lists are the same for
every user (popularity and the staff picks are not personal), so they are read once
from the service (``probe_use_cases``) and the truth is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize

from benchmarks.power_sim import BASE_QUALITY, EXAMINE, LIFT, K, Population, ranker_nodes

__all__ = ["PROBES", "boosted_appeal", "list_ctr", "probe_use_cases"]

PROBES = {"probe_pop": "pop", "probe_pop_picks": "pop_picks"}
"""Use case -> the ranker it serves alone (read once, before the runs)."""


def probe_use_cases() -> dict[str, Any]:
    """The Ingress ``use_cases`` that serve each small-change ranker on its own."""
    return {
        use_case: {"budget_ms": 500, "output": ranker, "nodes": ranker_nodes(ranker)}
        for use_case, ranker in PROBES.items()
    }


def list_ctr(population: Population, items: Sequence[str], appeal: dict[str, float]) -> float:
    """Clicks per impression of one list shown to every session (users weighted by
    activity): exact."""
    examine = np.array(EXAMINE[: len(items)])
    weights = np.array([appeal.get(item, 1.0) for item in items])
    chances = np.minimum(1.0, BASE_QUALITY * population.propensity[:, None] * weights[None, :])
    per_user = (chances * examine[None, :]).sum(axis=1) / K
    return float(np.average(per_user, weights=population.activity))


def boosted_appeal(
    population: Population, control: Sequence[str], challenger: Sequence[str]
) -> dict[str, float]:
    """Appeal of the challenger's items that the control's list lacks, set so the
    challenger's CTR is ``1 + LIFT`` times the control's (every other item: 1)."""
    new = [item for item in challenger if item not in set(control)]
    if not new:
        raise ValueError(f"the challenger's list adds nothing to the control's: {challenger}")

    def gap(boost: float) -> float:
        appeal = dict.fromkeys(new, 1.0 + boost)
        return list_ctr(population, challenger, appeal) / list_ctr(population, control, {}) - (
            1.0 + LIFT
        )

    boost = float(optimize.brentq(gap, 0.0, 50.0))
    return dict.fromkeys(new, 1.0 + boost)
