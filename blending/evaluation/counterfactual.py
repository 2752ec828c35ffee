"""Counterfactual evaluation: the CTR another blend would have reached, from the log.

Each logged list says, per position, which item was shown, the probability that
the serving policy shows that item there (its *propensity*,
``blending/exploration.py``) and whether it was clicked. A candidate blend, run on
the same requests, proposes its own list. Where the two agree, the logged click is
evidence about the candidate, weighted by how unlikely the logged policy was to
show that item there. Under the position-based view of a list (a click depends on
the item and its position, not on the rest of the list), three estimators of the
candidate's clicks per list:

* **IPS** (inverse propensity scoring; Horvitz & Thompson 1952, for rankings Li et
  al. 2018, "Offline Evaluation of Ranking Policies with Click Models", KDD): the
  sum over positions of ``1[same item] * click / propensity``. Unbiased where the
  logged policy could show the candidate's item (propensity > 0), high variance.
* **SNIPS** (self-normalised IPS; Swaminathan & Joachims 2015, "The
  Self-Normalized Estimator for Counterfactual Learning", NeurIPS): per position,
  the weighted clicks divided by the sum of the weights. Slightly biased, far
  steadier.
* **DR** (doubly robust; Dudik, Langford & Li 2011, "Doubly Robust Policy
  Evaluation and Learning", ICML): a click model's prediction for the candidate's
  item, corrected by the weighted error of the model where the lists agree. The
  click model (:class:`PositionClickModel`) is the position-based model:
  ``P(click) = bias(position) * appeal(item)``, fitted to the same log.

Each comes with a 95% interval over lists (one user's positions are not
independent): normal from per-list terms for IPS and DR, a percentile bootstrap over
lists for SNIPS (a ratio, skewed when a few lists carry large weights), and the
effective sample size of the weights. CTR is clicks per position shown, as the dashboard counts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CounterfactualEstimate",
    "CounterfactualReport",
    "LoggedLists",
    "PositionClickModel",
    "counterfactual_estimates",
]

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class LoggedLists:
    """N logged lists of up to k positions, as arrays (row n, column j).

    Items are integer codes (the same code for the same id in ``logged`` and
    ``candidate``), -1 where a list is shorter than k.
    """

    logged: np.ndarray
    """(N, k) int: the item shown at each position."""
    propensity: np.ndarray
    """(N, k) float: the chance the logged policy shows that item there."""
    clicks: np.ndarray
    """(N, k) float: 1 where the shown item was clicked."""
    candidate: np.ndarray
    """(N, k) int: the item the candidate blend puts at each position."""

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.logged, self.propensity, self.clicks, self.candidate)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"expected four arrays of one (N, k) shape, got {sorted(shapes)}")
        shown = self.logged >= 0
        if np.any(shown & ~(self.propensity > 0)) or np.any(self.propensity > 1):
            raise ValueError("a shown position's propensity must be in (0, 1]")

    @property
    def weights(self) -> np.ndarray:
        """``1[candidate's item was shown there] / propensity`` per position."""
        same = (self.candidate == self.logged) & (self.logged >= 0)
        out = np.zeros(self.logged.shape, dtype=np.float64)
        out[same] = 1.0 / self.propensity[same]
        return out


class PositionClickModel:
    """``P(click at position j of item i) = bias[j] * appeal[i]``, fitted by a few
    rounds of alternating means over the log (appeal smoothed towards the mean
    with ``prior`` pseudo-exposures, so an item seen twice is not 0 or 1)."""

    def __init__(self, lists: LoggedLists, rounds: int = 10, prior: float = 20.0) -> None:
        shown = lists.logged >= 0
        items, codes = np.unique(lists.logged[shown], return_inverse=True)
        positions = np.nonzero(shown)[1]
        clicks = lists.clicks[shown]
        k = lists.logged.shape[1]
        bias = np.ones(k)
        mean = clicks.mean() if len(clicks) else 0.0
        appeal = np.full(len(items), mean)
        for _ in range(rounds):
            exposure = np.bincount(codes, weights=bias[positions], minlength=len(items))
            clicked = np.bincount(codes, weights=clicks, minlength=len(items))
            overall = clicked.sum() / max(exposure.sum(), 1e-12)
            appeal = (clicked + prior * overall) / (exposure + prior)
            per_position = np.bincount(positions, weights=appeal[codes], minlength=k)
            clicked_at = np.bincount(positions, weights=clicks, minlength=k)
            bias = np.where(per_position > 0, clicked_at / np.maximum(per_position, 1e-12), 0.0)
        self.items = items
        self.appeal = appeal
        self.bias = bias
        self.default_appeal = float(np.average(appeal)) if len(appeal) else 0.0

    def predict(self, items: np.ndarray) -> np.ndarray:
        """Click probability of each item at its column's position (0 where -1)."""
        where = np.searchsorted(self.items, items).clip(0, max(len(self.items) - 1, 0))
        known = (items >= 0) & (len(self.items) > 0)
        if len(self.items):
            known &= self.items[where] == items
        appeal = np.where(
            known, self.appeal[where] if len(self.items) else 0.0, self.default_appeal
        )
        return np.where(items >= 0, np.clip(self.bias[None, :] * appeal, 0.0, 1.0), 0.0)


@dataclass(frozen=True)
class CounterfactualEstimate:
    """One estimator's CTR for the candidate, with its 95% interval."""

    estimator: str
    ctr: float
    low: float
    high: float
    effective_lists: float
    """The effective sample size of the list weights: how many lists the estimate is
    as good as (far fewer than logged when the candidate differs a lot)."""

    def as_dict(self) -> dict[str, object]:
        """JSON-able."""
        return {
            "estimator": self.estimator,
            "ctr": self.ctr,
            "ctr_low": self.low,
            "ctr_high": self.high,
            "effective_lists": self.effective_lists,
        }


_REPLICATES = 1000
"""Bootstrap replicates of the SNIPS interval."""
_CHUNK = 50
"""Replicates drawn at once (memory: this many times the lists)."""


def _snips_interval(
    weighted_clicks: np.ndarray, weights: np.ndarray, positions: float
) -> tuple[float, float]:
    """The 95% percentile interval of SNIPS's CTR over lists resampled (Poisson
    bootstrap, seeded: a report reads the same twice). SNIPS is a ratio per position,
    skewed when a few lists carry large weights, and the delta method's normal
    interval is then too narrow; resampling the lists sees the skew."""
    rng = np.random.default_rng(0)
    replicates: list[np.ndarray] = []
    for start in range(0, _REPLICATES, _CHUNK):
        draws = rng.poisson(1.0, size=(min(_CHUNK, _REPLICATES - start), len(weights)))
        top, bottom = draws @ weighted_clicks, draws @ weights
        ratio = np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)
        replicates.append(ratio.sum(axis=1))
    low, high = np.quantile(np.concatenate(replicates), [0.025, 0.975])
    return float(low / positions), float(high / positions)


def _estimate(name: str, terms: np.ndarray, positions: float, ess: float) -> CounterfactualEstimate:
    """Mean of per-list terms (clicks per list), as a CTR with a normal interval."""
    n = len(terms)
    mean = float(terms.mean()) if n else math.nan
    spread = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    scale = 1.0 / positions
    return CounterfactualEstimate(
        name, mean * scale, (mean - _Z95 * spread) * scale, (mean + _Z95 * spread) * scale, ess
    )


@dataclass(frozen=True)
class CounterfactualReport:
    """The logged policy's CTR and the candidate's by each estimator."""

    lists: int
    logged: CounterfactualEstimate
    ips: CounterfactualEstimate
    snips: CounterfactualEstimate
    dr: CounterfactualEstimate
    agreement: float
    """The share of the candidate's positions where the logged list showed the same
    item: the evidence the estimates rest on."""

    def as_dict(self) -> dict[str, object]:
        """JSON-able."""
        return {
            "lists": self.lists,
            "agreement": self.agreement,
            "estimates": [e.as_dict() for e in (self.logged, self.ips, self.snips, self.dr)],
        }


def counterfactual_estimates(
    lists: LoggedLists, model: PositionClickModel | None = None
) -> CounterfactualReport:
    """The logged policy's CTR and the candidate's by IPS, SNIPS and DR, each with a
    95% interval and the effective number of lists (``model``: the click model DR
    uses; by default one fitted to ``lists``)."""
    shown = lists.logged >= 0
    positions = float(shown.sum(axis=1).mean()) if len(lists.logged) else 1.0
    positions = max(positions, 1.0)
    weights = lists.weights
    clicks = lists.clicks * shown
    per_list = weights.sum(axis=1)
    ess = float(per_list.sum() ** 2 / max((per_list**2).sum(), 1e-300))
    ips = (weights * clicks).sum(axis=1)
    # SNIPS per position: the weighted clicks over the weights; its per-list influence
    # terms give the interval (delta method for a ratio of means).
    mean_w = weights.mean(axis=0)
    safe_w = np.where(mean_w > 0, mean_w, 1.0)
    value_j = np.where(mean_w > 0, (weights * clicks).mean(axis=0) / safe_w, 0.0)
    influence = np.where(mean_w > 0, (weights * clicks - weights * value_j) / safe_w, 0.0)
    snips = value_j.sum() + influence.sum(axis=1)
    snips_estimate = _estimate("snips", snips, positions, ess)
    if len(lists.logged) > 1:
        low, high = _snips_interval(weights * clicks, weights, positions)
        snips_estimate = CounterfactualEstimate("snips", snips_estimate.ctr, low, high, ess)
    model = model or PositionClickModel(lists)
    predicted_candidate = model.predict(lists.candidate)
    predicted_logged = model.predict(np.where(shown, lists.logged, -1))
    dr = predicted_candidate.sum(axis=1) + (weights * (clicks - predicted_logged)).sum(axis=1)
    proposed = lists.candidate >= 0
    return CounterfactualReport(
        lists=len(lists.logged),
        logged=_estimate("logged", clicks.sum(axis=1), positions, float(len(lists.logged))),
        ips=_estimate("ips", ips, positions, ess),
        snips=snips_estimate,
        dr=_estimate("dr", dr, positions, ess),
        agreement=float((proposed & (weights > 0)).sum() / max(proposed.sum(), 1)),
    )
