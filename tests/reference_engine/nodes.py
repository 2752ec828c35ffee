"""The old engine's node maths, over lists of Python candidates (the golden reference).

Every function returns a new list, best first, and keeps each item's provenance:
the components that explain where its score came from.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Sequence
from functools import partial

import msgspec

from blending.candidates import BlendContext, Component, ScoreResult, SourceResult
from reference_engine.candidates import Candidate
from reference_engine.normalize import NORMALIZERS

__all__ = [
    "apply_filter",
    "apply_rerank",
    "apply_slots",
    "apply_stack",
    "diversify",
    "from_source",
    "rrf_blend",
    "share_positions",
    "stack_features",
    "team_draft",
    "weighted_blend",
]


def from_source(source: str, result: SourceResult) -> list[Candidate]:
    """Turn a model's answer into candidates, keeping the first score of a repeated item."""
    seen: set[str] = set()
    candidates: list[Candidate] = []
    for item_id, score in result.items:
        if item_id in seen:
            continue
        seen.add(item_id)
        candidates.append(Candidate(item_id, score, build=partial(_sourced, source, result, score)))
    return candidates


def _sourced(source: str, result: SourceResult, score: float) -> tuple[Component, ...]:
    return (
        Component(source, result.model, result.version, 1.0, score, score, None, result.curated),
    )


def weighted_blend(
    inputs: Sequence[tuple[float, Sequence[Candidate]]], normalize: str
) -> list[Candidate]:
    """Sum ``weight * normalised score`` per item over ``inputs``, best first.

    An item missing from an input gets nothing from it. Ties keep the order in
    which items were first seen, so the result is deterministic.
    """
    normalizer = NORMALIZERS[normalize]
    return _sum_contributions(
        (weight, candidates, normalizer([c.score for c in candidates]))
        for weight, candidates in inputs
    )


def rrf_blend(inputs: Sequence[tuple[float, Sequence[Candidate]]], k: int) -> list[Candidate]:
    """Reciprocal-rank fusion: sum ``weight / (k + rank)`` per item, rank 1-based.

    Only ranks matter, so inputs on any scale fuse without normalisation; each
    component's ``score`` is its ``1 / (k + rank)``.
    """
    return _sum_contributions(
        (weight, candidates, [1.0 / (k + rank) for rank in range(1, len(candidates) + 1)])
        for weight, candidates in inputs
    )


def _sum_contributions(
    inputs: Iterable[tuple[float, Sequence[Candidate], Sequence[float]]],
) -> list[Candidate]:
    totals: dict[str, float] = {}
    parts: dict[str, list[tuple[Candidate, float, float]]] = {}
    for weight, candidates, scores in inputs:
        for candidate, score in zip(candidates, scores, strict=True):
            item = candidate.item_id
            if item in totals:
                totals[item] += weight * score
                parts[item].append((candidate, weight, score))
            else:
                totals[item] = weight * score
                parts[item] = [(candidate, weight, score)]
    ranked = sorted(totals, key=lambda item: -totals[item])
    return [Candidate(i, totals[i], build=partial(_combined, parts[i])) for i in ranked]


def _combined(parts: Sequence[tuple[Candidate, float, float]]) -> tuple[Component, ...]:
    return tuple(c for candidate, w, s in parts for c in _reweighted(candidate, w, s))


def _appended(candidate: Candidate, component: Component) -> tuple[Component, ...]:
    return (*candidate.components, component)


def _reweighted(candidate: Candidate, weight: float, score: float) -> list[Component]:
    # A source's single component takes the blend's view of it; components of a
    # nested node keep their own scores and multiply weights along the path.
    components = candidate.components
    if len(components) == 1:
        c = components[0]
        if c.slot is None and c.role is None:
            return [
                Component(c.source, c.model, c.version, weight, score, c.raw_score, None, c.curated)
            ]
    return [
        Component(
            c.source,
            c.model,
            c.version,
            None if c.weight is None else c.weight * weight,
            c.score,
            c.raw_score,
            c.slot,
            c.curated,
            c.role,
        )
        for c in components
    ]


def apply_rerank(
    ranked: Sequence[Candidate], scored: ScoreResult, node: str, depth: int
) -> list[Candidate]:
    """Order the top ``depth`` items by the model's ``scored.scores``; the rest follow.

    Re-scored items take the model's score and gain a ``rerank`` component; ties
    keep the input order. Items past ``depth`` keep their place and score.
    """
    return _rescored(ranked[:depth], scored, node, "rerank") + list(ranked[depth:])


def stack_features(
    inputs: Sequence[Sequence[Candidate]], normalize: str
) -> tuple[list[Candidate], list[list[float]]]:
    """The union of ``inputs`` (first-seen order) and one feature row per item.

    Feature ``j`` of an item is its normalised score in input ``j``, or 0 when that
    input lacks it. The first candidate seen for an item is returned for it, with
    the components of every input merged.
    """
    normalizer = NORMALIZERS[normalize]
    index: dict[str, int] = {}
    items: list[Candidate] = []
    parts: list[list[tuple[Candidate, float, float]]] = []
    rows: list[list[float]] = []
    for j, candidates in enumerate(inputs):
        for candidate, value in zip(
            candidates, normalizer([c.score for c in candidates]), strict=True
        ):
            at = index.get(candidate.item_id)
            if at is None:
                at = index[candidate.item_id] = len(items)
                items.append(candidate)
                parts.append([])
                rows.append([0.0] * len(inputs))
            if rows[at][j] == 0.0:
                rows[at][j] = value
                parts[at].append((candidate, 1.0, value))
    merged = [c.evolve(build=partial(_combined, p)) for c, p in zip(items, parts, strict=True)]
    return merged, rows


def apply_stack(items: Sequence[Candidate], scored: ScoreResult, node: str) -> list[Candidate]:
    """Order ``items`` by the combiner's scores (one per item), adding a ``stack`` component."""
    return _rescored(items, scored, node, "stack")


def _rescored(
    items: Sequence[Candidate], scored: ScoreResult, node: str, role: str
) -> list[Candidate]:
    """``items`` ordered by ``scored.scores`` (ties keep their order), each taking its
    model score and a component with ``role`` that says so."""
    if len(scored.scores) != len(items):
        raise ValueError(
            f"node {node!r}: model {scored.model!r} returned {len(scored.scores)} scores "
            f"for {len(items)} items"
        )
    rescored = []
    for i in sorted(range(len(items)), key=lambda i: -scored.scores[i]):
        candidate, score = items[i], float(scored.scores[i])
        component = Component(node, scored.model, scored.version, None, score, score, role=role)
        rescored.append(
            candidate.evolve(score=score, build=partial(_appended, candidate, component))
        )
    return rescored


def share_positions(share: float, k: int) -> list[int]:
    """1-based positions for ``share`` of a top ``k``, spread evenly from the first.

    ``round(share * k)`` positions, at least one: a share of 0.2 of 10 gives [1, 6].
    """
    n = min(k, max(1, round(share * k)))
    return [i * k // n + 1 for i in range(n)]


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
    result = [c for c in ranked if c.item_id not in pinned_ids]
    for position, pick in sorted(zip(positions, picks, strict=False), key=lambda p: p[0]):
        earlier = by_id.get(pick.item_id)
        slot_components = tuple(
            msgspec.structs.replace(c, weight=None, slot=position, role=None)
            for c in pick.components
        )
        merged = (earlier.components if earlier else ()) + slot_components
        result.insert(
            min(position - 1, len(result)), Candidate(pick.item_id, pick.score, merged, True)
        )
    return result


def apply_filter(
    candidates: Sequence[Candidate],
    ctx: BlendContext,
    drop: Collection[str] = ("excluded", "duplicates", "unavailable"),
    drop_unknown: bool = False,
    limit: int | None = None,
) -> list[Candidate]:
    """Drop the request's excluded items, repeats, and what the catalogue rules out.

    ``drop`` names the rules: ``excluded``, ``duplicates``, ``unavailable``. Items
    the catalogue does not know are kept unless ``drop_unknown``. With ``limit``,
    stop once that many are kept (the output needs only the top k).
    """
    exclude = ctx.exclude if "excluded" in drop else frozenset()
    dedupe = "duplicates" in drop
    catalog = ctx.catalog if ("unavailable" in drop or drop_unknown) else None
    seen: set[str] = set()
    kept: list[Candidate] = []
    for candidate in candidates:
        item = candidate.item_id
        if item in exclude or (dedupe and item in seen):
            continue
        if catalog is not None:
            info = catalog.get(item)
            if (info is None and drop_unknown) or (
                info is not None and not info.available and "unavailable" in drop
            ):
                continue
        seen.add(item)
        kept.append(candidate)
        if len(kept) == limit:
            break
    return kept


def diversify(
    candidates: Sequence[Candidate], ctx: BlendContext, max_per_category: int, top: int
) -> list[Candidate]:
    """At most ``max_per_category`` items of one category among the first ``top``.

    Walks the list in order; an item over its category's cap waits until the top
    is full, then follows in its original order. Items without a known category
    are never capped.
    """
    catalog = ctx.catalog
    if catalog is None:
        return list(candidates)
    counts: dict[str, int] = {}
    head: list[Candidate] = []
    deferred: list[Candidate] = []
    for position, candidate in enumerate(candidates):
        if len(head) >= top:
            return head + deferred + list(candidates[position:])
        info = catalog.get(candidate.item_id)
        category = info.category if info is not None else None
        if category is not None:
            if counts.get(category, 0) >= max_per_category:
                deferred.append(candidate)
                continue
            counts[category] = counts.get(category, 0) + 1
        head.append(candidate)
    return head + deferred


def team_draft(
    teams: tuple[tuple[str, Sequence[Candidate]], tuple[str, Sequence[Candidate]]],
    rng: random.Random,
) -> list[Candidate]:
    """Team-draft interleaving (Radlinski et al., 2008) of two rankings.

    In each round the team with fewer picks so far (a coin flip on a tie) adds its
    best item not yet shown and is credited with it (``Candidate.team``). Each item
    appears once; when one ranking runs out the other fills the rest.
    """
    (name_a, ranking_a), (name_b, ranking_b) = teams
    shown: set[str] = set()
    merged: list[Candidate] = []
    cursor = [0, 0]
    picks = [0, 0]
    rankings = (ranking_a, ranking_b)
    names = (name_a, name_b)
    while True:
        for side in (0, 1):
            ranking = rankings[side]
            while cursor[side] < len(ranking) and ranking[cursor[side]].item_id in shown:
                cursor[side] += 1
        left = [cursor[0] < len(ranking_a), cursor[1] < len(ranking_b)]
        if not (left[0] or left[1]):
            return merged
        if not left[1]:
            side = 0
        elif not left[0]:
            side = 1
        elif picks[0] != picks[1]:
            side = 0 if picks[0] < picks[1] else 1
        else:
            side = 0 if rng.random() < 0.5 else 1
        chosen = rankings[side][cursor[side]]
        shown.add(chosen.item_id)
        picks[side] += 1
        merged.append(chosen.evolve(team=names[side]))
