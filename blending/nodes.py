"""The node kinds' maths, over columns.

Every function takes and returns :class:`Ranked` lists (item indices and float64
scores, best first, each item once) and works with numpy over whole lists: unions
by ``np.unique``, sums by ``np.bincount``, orders by stable ``argsort``, filters by
boolean masks. Provenance is recorded once per node (:mod:`blending.ranked`) and
built only for the rows returned. Ties keep the order in which items were first
seen, so every result is deterministic.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

import numpy as np

from blending.candidates import ScoreResult, SourceResult
from blending.items import NO_CATEGORY, ItemTable
from blending.normalize import NORMALIZERS
from blending.ranked import (
    Gathered,
    Ranked,
    Rescored,
    Slotted,
    Sourced,
    Summed,
    empty_ranked,
)
from blending.request_items import RequestItems

__all__ = [
    "RequestItems",
    "apply_filter",
    "apply_rerank",
    "apply_slots",
    "apply_stack",
    "diversify",
    "draft_turn",
    "from_source",
    "rrf_blend",
    "share_positions",
    "stack_features",
    "team_draft",
    "weighted_blend",
]


def from_source(source: str, result: SourceResult, table: ItemTable) -> Ranked:
    """A model's answer as a list, keeping the first score of a repeated item."""
    ids = result.item_ids
    scores = np.asarray(result.scores, dtype=np.float64)
    if len(ids) != len(scores):
        raise ValueError(
            f"source {source!r}: model {result.model!r} returned {len(ids)} items "
            f"and {len(scores)} scores"
        )
    items, keep = table.distinct_indices(ids if type(ids) is tuple else result.id_list())
    if keep is not None:
        scores = scores[keep]
    why = Sourced(source, result.model, result.version, scores, result.curated)
    return Ranked(items, scores, why)


def _member(items: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of ``items`` is one of ``values`` (``np.isin``, with a cheaper
    path for the few values of pins and exclusions)."""
    if len(values) > 8:
        return np.isin(items, values)
    found = np.zeros(len(items), dtype=bool)
    for value in values.tolist():
        found |= items == value
    return found


def _first_seen(items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``items`` in first-seen order, each element's group (its item's
    place in that order), and where each distinct item was first seen."""
    unique, first, inverse = np.unique(items, return_index=True, return_inverse=True)
    seen = np.argsort(first, kind="stable")
    place = np.empty(len(seen), dtype=np.int64)
    place[seen] = np.arange(len(seen))
    return unique[seen], place[inverse.reshape(-1)], first[seen]


def _positions(
    inputs: Sequence[Ranked], groups: np.ndarray, row_of_group: np.ndarray, n: int
) -> list[np.ndarray]:
    """For each input, the input row of each of the ``n`` output rows (-1: absent)."""
    positions = []
    offset = 0
    for ranked in inputs:
        size = len(ranked)
        at = np.full(n, -1, dtype=np.int64)
        at[row_of_group[groups[offset : offset + size]]] = np.arange(size)
        positions.append(at)
        offset += size
    return positions


def _summed(inputs: Sequence[tuple[float, Ranked]], values: Sequence[np.ndarray]) -> Ranked:
    """Sum ``weight * value`` per item over the inputs, best first."""
    if not any(len(ranked) for _, ranked in inputs):
        return empty_ranked()
    items = np.concatenate([ranked.items for _, ranked in inputs])
    weighted = np.concatenate([weight * v for (weight, _), v in zip(inputs, values, strict=True)])
    union, groups, _ = _first_seen(items)
    # bincount adds in array order, input by input: the sums of a loop over the inputs.
    totals = np.bincount(groups, weights=weighted, minlength=len(union))
    order = np.argsort(-totals, kind="stable")
    row_of_group = np.empty(len(order), dtype=np.int64)
    row_of_group[order] = np.arange(len(order))
    positions = _positions([r for _, r in inputs], groups, row_of_group, len(order))
    return Ranked(union[order], totals[order], Summed(inputs, positions, values))


def weighted_blend(inputs: Sequence[tuple[float, Ranked]], normalize: str) -> Ranked:
    """Sum ``weight * normalised score`` per item over ``inputs``, best first.

    An item missing from an input gets nothing from it. Ties keep the order in
    which items were first seen, so the result is deterministic.
    """
    normalizer = NORMALIZERS[normalize]
    return _summed(inputs, [normalizer(ranked.scores) for _, ranked in inputs])


def rrf_blend(inputs: Sequence[tuple[float, Ranked]], k: int) -> Ranked:
    """Reciprocal-rank fusion: sum ``weight / (k + rank)`` per item, rank 1-based.

    Only ranks matter, so inputs on any scale fuse without normalisation; each
    component's ``score`` is its ``1 / (k + rank)``.
    """
    return _summed(inputs, [1.0 / (k + np.arange(1, len(r) + 1)) for _, r in inputs])


def _rescored(ranked: Ranked, scored: ScoreResult, node: str, depth: int, role: str) -> Ranked:
    """The first ``depth`` rows ordered by ``scored.scores`` (ties keep their order),
    each taking its model score and a component with ``role``; the rest follow."""
    head = min(depth, len(ranked))
    model_scores = np.asarray(scored.scores, dtype=np.float64)
    if len(model_scores) != head:
        raise ValueError(
            f"node {node!r}: model {scored.model!r} returned {len(model_scores)} scores "
            f"for {head} items"
        )
    order = np.argsort(-model_scores, kind="stable")
    rows = np.concatenate([order, np.arange(head, len(ranked))])
    scores = np.concatenate([model_scores[order], ranked.scores[head:]])
    why = Rescored(ranked, rows, head, scores, node, scored.model, scored.version, role)
    return Ranked(
        ranked.items[rows],
        scores,
        why,
        None if ranked.pinned is None else ranked.pinned[rows],
        None if ranked.team is None else ranked.team[rows],
    )


def apply_rerank(ranked: Ranked, scored: ScoreResult, node: str, depth: int) -> Ranked:
    """Order the top ``depth`` items by the model's ``scored.scores``; the rest follow.

    Re-scored items take the model's score and gain a ``rerank`` component; ties
    keep the input order. Items past ``depth`` keep their place and score.
    """
    return _rescored(ranked, scored, node, depth, "rerank")


def apply_stack(items: Ranked, scored: ScoreResult, node: str) -> Ranked:
    """Order ``items`` by the combiner's scores (one per item), adding a ``stack`` component."""
    return _rescored(items, scored, node, len(items), "stack")


def stack_features(inputs: Sequence[Ranked], normalize: str) -> tuple[Ranked, np.ndarray]:
    """The union of ``inputs`` (first-seen order) and its feature matrix.

    Feature ``j`` of an item is its normalised score in input ``j``, or 0 when that
    input lacks it. Each item keeps the score, pin and team of its first sighting,
    with the components of every input merged.
    """
    normalizer = NORMALIZERS[normalize]
    values = [normalizer(ranked.scores) for ranked in inputs]
    if not any(len(ranked) for ranked in inputs):
        return empty_ranked(), np.zeros((0, len(inputs)))
    union, groups, first = _first_seen(np.concatenate([r.items for r in inputs]))
    features = np.zeros((len(union), len(inputs)))
    offset = 0
    for j, ranked in enumerate(inputs):
        features[groups[offset : offset + len(ranked)], j] = values[j]
        offset += len(ranked)
    identity = np.arange(len(union))
    positions = _positions(inputs, groups, identity, len(union))
    which = np.repeat(np.arange(len(inputs)), [len(r) for r in inputs])[first]
    rows = first - np.cumsum([0, *[len(r) for r in inputs[:-1]]])[which]
    firsts = _gathered(inputs, which, rows)
    why = Summed([(1.0, ranked) for ranked in inputs], positions, values)
    return Ranked(union, firsts.scores, why, firsts.pinned, firsts.team), features


def share_positions(share: float, k: int) -> list[int]:
    """1-based positions for ``share`` of a top ``k``, spread evenly from the first.

    ``round(share * k)`` positions, at least one: a share of 0.2 of 10 gives [1, 6].
    """
    n = min(k, max(1, round(share * k)))
    return [i * k // n + 1 for i in range(n)]


def apply_slots(
    ranked: Ranked, curated: Ranked, positions: Sequence[int], items: RequestItems
) -> Ranked:
    """Pin curated items, in their order, at the 1-based ``positions``.

    Curated items the request excludes are skipped. A pinned item is removed from
    its old place in ``ranked``, so it appears once; positions past the end of the
    list append in order.
    """
    picks = np.arange(len(curated))
    if items.excludes and len(curated):
        picks = np.flatnonzero(~_member(curated.items, items.excluded))
    picks = picks[: len(positions)]
    if not len(picks):
        return ranked
    base = np.flatnonzero(~_member(ranked.items, curated.items[picks]))
    # Pins go in one at a time, by position; each moves the earlier ones at or after it.
    slots = sorted(zip(positions, picks.tolist(), strict=False), key=lambda p: p[0])
    placed: list[int] = []
    for j, (position, _) in enumerate(slots):
        at = min(position - 1, len(base) + j)
        placed = [p + 1 if p >= at else p for p in placed]
        placed.append(at)
    size = len(base) + len(slots)
    pinned_rows = np.array(placed, dtype=np.int64)
    pick_rows = np.array([pick for _, pick in slots], dtype=np.int64)
    is_pin = np.zeros(size, dtype=bool)
    is_pin[pinned_rows] = True
    rows = np.full(size, -1, dtype=np.int64)
    rows[~is_pin] = base
    pick = np.full(size, -1, dtype=np.int64)
    pick[pinned_rows] = pick_rows
    earlier = np.full(size, -1, dtype=np.int64)
    for at, row in zip(placed, pick_rows.tolist(), strict=True):
        found = np.flatnonzero(ranked.items == curated.items[row])
        earlier[at] = found[0] if len(found) else -1
    slot = np.zeros(size, dtype=np.int64)
    slot[pinned_rows] = [position for position, _ in slots]
    out_items = np.empty(size, dtype=np.int64)
    out_items[~is_pin] = ranked.items[base]
    out_items[pinned_rows] = curated.items[pick_rows]
    scores = np.empty(size)
    scores[~is_pin] = ranked.scores[base]
    scores[pinned_rows] = curated.scores[pick_rows]
    pinned = is_pin.copy()
    if ranked.pinned is not None:
        pinned[~is_pin] = ranked.pinned[base]
    team = None
    if ranked.team is not None:
        team = np.full(size, None, dtype=object)
        team[~is_pin] = ranked.team[base]
    why = Slotted(ranked, curated, rows, pick, earlier, slot)
    return Ranked(out_items, scores, why, pinned, team)


def apply_filter(
    ranked: Ranked,
    items: RequestItems,
    drop: Collection[str] = ("excluded", "duplicates", "unavailable"),
    drop_unknown: bool = False,
    limit: int | None = None,
) -> Ranked:
    """Drop the request's excluded items and what the catalogue rules out.

    ``drop`` names the rules: ``excluded``, ``duplicates``, ``unavailable``. Lists
    hold each item once by construction, so ``duplicates`` always holds. Items the
    catalogue does not know are kept unless ``drop_unknown``. With ``limit``, keep
    only the first that many.
    """
    keep: np.ndarray | None = None
    if "excluded" in drop and items.excludes and len(ranked):
        keep = ~_member(ranked.items, items.excluded)
    if items.catalog and len(ranked) and ("unavailable" in drop or drop_unknown):
        known = items.table.known(ranked.items)
        allowed = known if drop_unknown else np.ones(len(ranked), dtype=bool)
        if "unavailable" in drop:
            allowed &= ~known | items.table.available(ranked.items)
        keep = allowed if keep is None else keep & allowed
    if keep is None:
        if limit is None or limit >= len(ranked):
            return ranked
        return ranked.take(np.arange(limit))
    return ranked.take(np.flatnonzero(keep)[:limit])


def diversify(ranked: Ranked, table: ItemTable | None, max_per_category: int, top: int) -> Ranked:
    """At most ``max_per_category`` items of one category among the first ``top``.

    Walks the list in order; an item over its category's cap waits until the top
    is full, then follows in its original order. Items without a known category
    are never capped. Without a catalogue (``table`` ``None``) nothing moves.
    """
    if table is None or not len(ranked):
        return ranked
    codes = table.categories(ranked.items)
    # Each item's count of earlier items of its category: its turn within the cap.
    by_code = np.argsort(codes, kind="stable")
    sorted_codes = codes[by_code]
    starts = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(codes)), 0))
    turn = np.empty(len(codes), dtype=np.int64)
    turn[by_code] = np.arange(len(codes)) - group_start
    fits = (codes == NO_CATEGORY) | (turn < max_per_category)
    fitting = np.flatnonzero(fits)
    if len(fitting) >= top:
        cut = fitting[top - 1] + 1
        deferred = np.flatnonzero(~fits[:cut])
        order = np.concatenate([fitting[:top], deferred, np.arange(cut, len(ranked))])
    else:
        order = np.concatenate([fitting, np.flatnonzero(~fits)])
    return ranked.take(order)


def _gathered(parents: Sequence[Ranked], which: np.ndarray, rows: np.ndarray) -> Ranked:
    """Row ``r`` is row ``rows[r]`` of ``parents[which[r]]``."""
    size = len(rows)
    items = np.empty(size, dtype=np.int64)
    scores = np.empty(size)
    pinned = np.zeros(size, dtype=bool) if any(p.pinned is not None for p in parents) else None
    team = np.full(size, None, dtype=object) if any(p.team is not None for p in parents) else None
    for side, parent in enumerate(parents):
        mine = which == side
        if not mine.any():
            continue
        taken = rows[mine]
        items[mine] = parent.items[taken]
        scores[mine] = parent.scores[taken]
        if pinned is not None and parent.pinned is not None:
            pinned[mine] = parent.pinned[taken]
        if team is not None and parent.team is not None:
            team[mine] = parent.team[taken]
    return Ranked(items, scores, Gathered(parents, which, rows), pinned, team)


def draft_turn(
    rankings: Sequence[Sequence[int]], cursors: Sequence[int], picks: Sequence[int]
) -> list[int]:
    """The teams that may pick next in a team draft: of those with items left (by
    ``cursors``), the ones with the fewest ``picks``; empty once every ranking has
    run out. One of them is drawn uniformly (``team_draft``; ``draft_odds``)."""
    left = [side for side in range(len(rankings)) if cursors[side] < len(rankings[side])]
    if not left:
        return []
    fewest = min(picks[side] for side in left)
    return [side for side in left if picks[side] == fewest]


def team_draft(teams: Sequence[tuple[str, Ranked]], rng: random.Random) -> Ranked:
    """Team-draft interleaving (Radlinski et al., 2008) of two rankings, and its
    multileaving form for more (Schuth et al., 2014, "Multileaved comparisons for fast
    online evaluation", CIKM).

    In each round a team with the fewest picks so far (drawn at random among those
    tied) adds its best item not yet shown and is credited with it (``team``). Each
    item appears once; teams whose rankings run out drop out and the others fill the
    rest. With two teams the draws are a coin flip on a tie, as they always were.
    """
    names = [name for name, _ in teams]
    # The draft is sequential by nature: it runs over plain ints, not objects.
    rankings = [ranked.items.tolist() for _, ranked in teams]
    shown: set[int] = set()
    cursor = [0] * len(teams)
    picks = [0] * len(teams)
    sides: list[int] = []
    rows: list[int] = []
    while True:
        for side, ranking in enumerate(rankings):
            while cursor[side] < len(ranking) and ranking[cursor[side]] in shown:
                cursor[side] += 1
        due = draft_turn(rankings, cursor, picks)
        if not due:
            break
        if len(due) == 1:
            side = due[0]
        elif len(due) == 2:
            side = due[0] if rng.random() < 0.5 else due[1]
        else:
            side = due[rng.randrange(len(due))]
        shown.add(rankings[side][cursor[side]])
        sides.append(side)
        rows.append(cursor[side])
        picks[side] += 1
    which = np.array(sides, dtype=np.int64)
    merged = _gathered([ranked for _, ranked in teams], which, np.array(rows, dtype=np.int64))
    merged.team = np.array(names, dtype=object)[which]
    return merged
