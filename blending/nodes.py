"""The node kinds as pure functions over candidate lists."""

from __future__ import annotations

from collections.abc import Sequence

from blending.candidates import BlendContext, Candidate, Component, SourceResult
from blending.normalize import NORMALIZERS

__all__ = ["apply_filter", "apply_slots", "from_source", "weighted_blend"]


def from_source(source: str, result: SourceResult) -> list[Candidate]:
    """Turn a model's answer into candidates, keeping the first score of a repeated item."""
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for item_id, score in result.items:
        if item_id in seen:
            continue
        seen.add(item_id)
        component = Component(source, result.model, result.version, 1.0, score, score)
        candidates.append(Candidate(item_id, score, (component,)))
    return candidates


def weighted_blend(
    inputs: Sequence[tuple[float, Sequence[Candidate]]], normalize: str
) -> list[Candidate]:
    """Sum ``weight * normalised score`` per item over ``inputs``, best first.

    An item missing from an input gets nothing from it. Ties keep the order in
    which items were first seen, so the result is deterministic.
    """
    normalizer = NORMALIZERS[normalize]
    totals: dict[str, float] = {}
    components: dict[str, list[Component]] = {}
    for weight, candidates in inputs:
        normalised = normalizer([c.score for c in candidates])
        for candidate, score in zip(candidates, normalised, strict=True):
            totals[candidate.item_id] = totals.get(candidate.item_id, 0.0) + weight * score
            parts = components.setdefault(candidate.item_id, [])
            parts.extend(_reweighted(candidate, weight, score))
    ranked = sorted(totals, key=lambda item: -totals[item])
    return [Candidate(item, totals[item], tuple(components[item])) for item in ranked]


def _reweighted(candidate: Candidate, weight: float, score: float) -> list[Component]:
    # A source's single component takes the blend's view of it; components of a
    # nested blend keep their own scores and multiply weights along the path.
    if len(candidate.components) == 1 and candidate.components[0].slot is None:
        only = candidate.components[0]
        return [Component(only.source, only.model, only.version, weight, score, only.raw_score)]
    return [
        Component(
            c.source,
            c.model,
            c.version,
            None if c.weight is None else c.weight * weight,
            c.score,
            c.raw_score,
            c.slot,
        )
        for c in candidate.components
    ]


def apply_slots(
    ranked: Sequence[Candidate],
    curated: Sequence[Candidate],
    positions: Sequence[int],
    ctx: BlendContext,
) -> list[Candidate]:
    """Pin curated items, in their order, at the 1-based ``positions``.

    Curated items the request excludes are skipped. A pinned item is removed from
    its old place in ``ranked``, so it appears once; positions past the end of the
    list append in order.
    """
    picks = [c for c in curated if c.item_id not in ctx.exclude][: len(positions)]
    pinned_ids = {c.item_id for c in picks}
    by_id = {c.item_id: c for c in ranked}
    rest = [c for c in ranked if c.item_id not in pinned_ids]
    result = list(rest)
    for position, pick in sorted(zip(positions, picks, strict=False), key=lambda p: p[0]):
        earlier = by_id.get(pick.item_id)
        slot_components = tuple(
            Component(c.source, c.model, c.version, None, c.score, c.raw_score, position)
            for c in pick.components
        )
        merged = (earlier.components if earlier else ()) + slot_components
        result.insert(
            min(position - 1, len(result)), Candidate(pick.item_id, pick.score, merged, True)
        )
    return result


def apply_filter(candidates: Sequence[Candidate], ctx: BlendContext) -> list[Candidate]:
    """Drop items the request excludes and every repeat of an item already kept."""
    seen: set[str] = set()
    kept: list[Candidate] = []
    for candidate in candidates:
        if candidate.item_id in ctx.exclude or candidate.item_id in seen:
            continue
        seen.add(candidate.item_id)
        kept.append(candidate)
    return kept
