"""Running a validated use-case DAG for one request, by its deadline.

Only the nodes the request needs run: an experiment runs the arm its user is in,
nothing else. Sources are called concurrently (remote ones first, so they work
while in-process ones compute); whatever has not answered when the use case's
budget runs out is cancelled and left out, and the answer is marked ``degraded``.
A late prediction is worse than an inaccurate one.

``fresh`` and ``bandit`` nodes are sources without a model: they are computed in
process from the request's catalogue and online snapshot while remote sources
work, and fail, count and are timed like any other source.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Sequence

import numpy as np

from blending.assign import PRUNE, experiment_arm
from blending.branch import Branch, drawn, list_odds, merge_failures
from blending.candidates import BlendContext, ScoreResult, SourceResult
from blending.draft_odds import DraftLaw
from blending.exploration import explore, explore_rng, explored_chances
from blending.gateway import ModelGateway
from blending.live_sources import FreshLaw
from blending.nodes import (
    apply_filter,
    apply_rerank,
    apply_slots,
    apply_stack,
    diversify,
    from_source,
    rrf_blend,
    share_positions,
    stack_features,
    team_draft,
    weighted_blend,
)
from blending.outcome import BlendOutcome
from blending.ranked import Ranked, empty_ranked
from blending.request_run import Answer, DeadlineExceeded, RequestRun, reason
from blending.rules import apply_boosts
from blending.spec import (
    BanditNodeSpec,
    BlendNodeSpec,
    DiversifyNodeSpec,
    ExperimentNodeSpec,
    FallbackNodeSpec,
    FilterNodeSpec,
    FreshNodeSpec,
    InterleaveNodeSpec,
    LiveSourceSpec,
    RerankNodeSpec,
    SlotsNodeSpec,
    SourceNodeSpec,
    StackNodeSpec,
    UseCaseSpec,
)
from blending.thompson_odds import ThompsonLaw

__all__ = ["PRUNE", "BlendOutcome", "BlendPlan", "DeadlineExceeded"]


class BlendPlan:
    """A use case compiled once: its nodes in dependency order."""

    def __init__(self, name: str, spec: UseCaseSpec) -> None:
        self.name = name
        self.spec = spec
        self.order = spec.topological_order()
        self.sources: dict[str, SourceNodeSpec] = spec.sources()
        self.live: dict[str, LiveSourceSpec] = spec.live_sources()
        self.spec_json = spec.model_dump_json(by_alias=True)
        """The spec as JSON, kept once: every served list's record points at it."""
        self.version = hashlib.sha256(self.spec_json.encode()).hexdigest()[:12]
        """Names this exact plan (its spec's hash), for records and replays."""
        self.pool = spec.explore.pool if spec.explore is not None else 0
        """Items below the top k the output keeps for exploration to draw from."""
        self.survivors: dict[str, str] = {}
        """Staged experiment node -> the candidate its first stage kept (set by the
        ingress from the event log's decision, ``set_survivor``)."""
        # Without experiments every request runs the same nodes: find them once.
        self._fixed: tuple[set[str], dict[str, str]] | None = None
        if not any(isinstance(n, ExperimentNodeSpec) for n in spec.nodes.values()):
            self._fixed = self._walk("", [spec.output])

    def active_nodes(
        self, user_id: str, roots: Sequence[str] | None = None
    ) -> tuple[set[str], dict[str, str]]:
        """The nodes a request for ``user_id`` runs to build ``roots`` (default: the
        output), and its arm per experiment node on the way."""
        wanted = list(roots or [self.spec.output])
        if self._fixed is not None and wanted == [self.spec.output]:
            return self._fixed[0], {}  # the set is only read; the variant map is fresh
        return self._walk(user_id, wanted)

    def _walk(self, user_id: str, roots: list[str]) -> tuple[set[str], dict[str, str]]:
        active: set[str] = set()
        variant: dict[str, str] = {}
        stack = roots
        while stack:
            name = stack.pop()
            if name in active:
                continue
            active.add(name)
            node = self.spec.nodes[name]
            if isinstance(node, ExperimentNodeSpec):
                arm = self.arm_for(name, node, user_id, self.survivors.get(name))
                variant[name] = arm
                if arm == PRUNE:
                    stack.extend(node.arms[c].node for c in node.candidates())
                else:
                    stack.append(node.arms[arm].node)
            else:
                stack.extend(node.reads())
        return active, variant

    @staticmethod
    def arm_for(
        name: str, node: ExperimentNodeSpec, user_id: str, survivor: str | None = None
    ) -> str:
        """The arm of experiment ``name`` that ``user_id`` is in (``blending/assign.py``)."""
        return experiment_arm(name, node, user_id, survivor)

    def set_survivor(self, node: str, survivor: str) -> None:
        """End the first stage of staged experiment ``node``: from now on its users
        are split between the control and ``survivor``."""
        spec = self.spec.nodes.get(node)
        if not isinstance(spec, ExperimentNodeSpec) or survivor not in spec.candidates():
            raise ValueError(f"{self.name}.{node}: {survivor!r} is not a candidate of a stage")
        self.survivors[node] = survivor

    def staged(self) -> dict[str, ExperimentNodeSpec]:
        """The staged experiment nodes whose first stage is still running."""
        return {
            name: node
            for name, node in self.spec.nodes.items()
            if isinstance(node, ExperimentNodeSpec)
            and node.prune is not None
            and name not in self.survivors
        }

    async def run(
        self, ctx: BlendContext, models: ModelGateway, started: float | None = None
    ) -> BlendOutcome:
        """The top ``ctx.k`` for one request, built by ``started`` + the budget.

        ``started`` is a ``time.monotonic()`` reading (default: now); pass the time
        the request arrived so queueing counts against the budget.
        """
        run = RequestRun(self, ctx, models, time.monotonic() if started is None else started)
        branches, variant = await self._execute(run, [self.spec.output])
        output = branches[self.spec.output]
        table = run.items.table
        live_lists = {
            name: (table.ids_of(branch.items.items), branch.items.scores.tolist())
            for name, branch in branches.items()
            if name in self.live
        }
        # The output is filtered once more so no path can return an excluded item;
        # only the k returned become Python objects.
        explore_spec = self.spec.explore
        boosted = self._boosted(run, output.items)
        final = apply_filter(boosted, run.items, limit=ctx.k + self.pool)
        odds = list_odds(output, run.items, final, reordered=boosted is not output.items)
        if explore_spec is not None:
            rng = explore_rng(ctx.request_id, self.name)
            explored = explore(final, ctx.k, explore_spec, rng)
            final, propensities = explored.ranked, explored.propensities.tolist()
            if odds is not None:
                served = explored.ranked.items.tolist()
                propensities = explored_chances(served, explored, odds, explore_spec.epsilon)
            positions = tuple(int(p) + 1 for p in np.flatnonzero(explored.explored))
        else:
            propensities, positions = [1.0] * len(final), ()
            if odds is not None:
                served = final.items.tolist()
                propensities = [odds[p].get(item, 0.0) for p, item in enumerate(served)]
        return BlendOutcome(
            items=final.candidates(run.items.table),
            propensities=propensities,
            explored=positions,
            degraded=bool(output.failures),
            failures=output.failures,
            late=frozenset(run.late),
            model_versions=run.versions,
            variant=variant,
            fallbacks=tuple(run.fallbacks),
            answered=run.answered,
            node_ms=run.node_ms,
            live_lists=live_lists,
            sizes={name: len(branch.items) for name, branch in branches.items()},
        )

    @staticmethod
    def _draft(name: str, run: RequestRun, teams: list[tuple[str, Branch]]) -> Branch:
        """The team draft of ``teams``' lists, drawn by the request id (replays agree)."""
        rng = random.Random(f"{run.ctx.request_id}:{name}")
        merged = team_draft([(team, branch.items) for team, branch in teams], rng)
        failures = merge_failures(*(branch for _, branch in teams))
        if drawn(*(branch for _, branch in teams)):
            return Branch(merged, failures, random=True)  # a draft of draws: no law here
        rankings = [branch.items.items.tolist() for _, branch in teams]
        return Branch(merged, failures, random=True, law=DraftLaw(rankings, merged))

    @staticmethod
    def _boosted(run: RequestRun, ranked: Ranked) -> Ranked:
        """The output with the rules' boosts and the seen-item demotion applied."""
        boosts = run.rules.factors(ranked.items, run.now) if run.rules else []
        seen = run.ctx.seen
        if seen is not None and len(seen.demoted) and len(ranked):
            demoted = np.isin(ranked.items, seen.demoted)
            if demoted.any():
                boosts.append(("seen: shown without a click", demoted, seen.demote_factor))
        return apply_boosts(ranked, boosts)

    async def evaluate(
        self, ctx: BlendContext, models: ModelGateway, nodes: Sequence[str]
    ) -> dict[str, Ranked]:
        """The full lists of ``nodes`` for one request, without a deadline.

        For offline work (training a stack, replaying a blend), where completeness
        matters more than latency. Item indices refer to ``ctx.table`` (pass one to
        read them), else to the catalogue's.
        """
        run = RequestRun(self, ctx, models, time.monotonic() + 1e9)
        branches, _ = await self._execute(run, nodes)
        return {name: branches[name].items for name in nodes}

    async def _execute(
        self, run: RequestRun, roots: Sequence[str]
    ) -> tuple[dict[str, Branch], dict[str, str]]:
        active, variant = self.active_nodes(run.ctx.user_id, roots)
        run.variant = variant
        fetched = [n for n in self.order if n in active and (n in self.sources or n in self.live)]
        answers = await run.fetch_sources(fetched)
        branches: dict[str, Branch] = {}
        spans = run.ctx.spans
        for name in self.order:
            if name in active:
                began = time.perf_counter()
                if spans is None or name in answers:  # sources had their span while fetched
                    branches[name] = await self._node(name, run, branches, answers)
                else:
                    with spans.node(name, self.spec.nodes[name].kind) as span:
                        branch = branches[name] = await self._node(name, run, branches, answers)
                        span.set_attribute("blendserve.items", len(branch.items))
                        if name in branch.failures:
                            span.set_attribute("blendserve.failed", branch.failures[name])
                if name not in answers:  # sources were timed while they were fetched
                    run.timed(name, began)
        return branches, variant

    async def _node(
        self,
        name: str,
        run: RequestRun,
        branches: dict[str, Branch],
        answers: dict[str, Answer],
    ) -> Branch:
        node = self.spec.nodes[name]
        ctx = run.ctx
        if isinstance(node, SourceNodeSpec | FreshNodeSpec | BanditNodeSpec):
            answer = answers[name]
            if isinstance(answer, BaseException):
                return Branch(empty_ranked(), {name: reason(answer)})
            run.answered += 1
            if isinstance(answer, SourceResult):
                run.versions[answer.model] = answer.version
                return Branch(run.filtered(from_source(name, answer, run.items.table)))
            if isinstance(node, BanditNodeSpec):
                # Thompson draws: random, with a law the log can price.
                online = ctx.online
                thompson = None
                if online is not None:
                    thompson = ThompsonLaw(online, node.prior(), node.candidates, run.filtered)
                return Branch(run.filtered(answer), random=True, law=thompson)
            if isinstance(node, FreshNodeSpec) and node.explore_share > 0:
                # The exploring share is random; the newest items are not.
                fresh = FreshLaw.of(answer, node.candidates)
                return Branch(run.filtered(answer), random=True, law=fresh)
            return Branch(run.filtered(answer))
        if isinstance(node, BlendNodeSpec):
            inputs = [(w, branches[n]) for n, w in node.weights.items()]
            lists = [(w, b.items) for w, b in inputs]
            if node.method == "rrf":
                items = rrf_blend(lists, node.rrf_k)
            else:
                items = weighted_blend(lists, node.normalize)
            read = [b for _, b in inputs]
            return Branch(items, merge_failures(*read), random=drawn(*read))
        if isinstance(node, RerankNodeSpec):
            return await self._rerank(name, node, run, branches[node.input])
        if isinstance(node, StackNodeSpec):
            return await self._stack(name, node, run, [branches[n] for n in node.inputs])
        if isinstance(node, SlotsNodeSpec):
            ranked, curated = branches[node.input], branches[node.curated]
            positions = node.positions or share_positions(node.share or 0.0, ctx.k)
            items = apply_slots(ranked.items, curated.items, positions, run.items)
            return Branch(items, merge_failures(ranked, curated), drawn(ranked, curated))
        if isinstance(node, FilterNodeSpec):
            source = branches[node.input]
            # The output node's list is cut to k anyway: stop filtering there (unless
            # boosts may still lift an item from below the k-th).
            reorders = (run.rules is not None and bool(run.rules.boosts)) or ctx.seen is not None
            limit = ctx.k + self.pool if name == self.spec.output and not reorders else None
            items = apply_filter(source.items, run.items, node.drop, node.drop_unknown, limit)
            law = source.law.filtered(node) if source.law is not None else None
            return Branch(items, source.failures, source.random, law)
        if isinstance(node, DiversifyNodeSpec):
            source = branches[node.input]
            table = run.items.table if run.items.catalog else None
            items = diversify(source.items, table, node.max_per_category, node.top or ctx.k)
            law = source.law if items is source.items else None  # nothing moved
            return Branch(items, source.failures, source.random, law)
        if isinstance(node, ExperimentNodeSpec):
            arm = run.variant[name]
            if arm != PRUNE:
                return branches[node.arms[arm].node]
            # A first stage: every candidate multileaved, each credited by its arm's name.
            teams = [(arm, branches[node.arms[arm].node]) for arm in node.candidates()]
            return self._draft(name, run, teams)
        if isinstance(node, InterleaveNodeSpec):
            return self._draft(name, run, [(team, branches[team]) for team in node.teams])
        if isinstance(node, FallbackNodeSpec):
            primary, fallback = branches[node.primary], branches[node.fallback]
            if not primary.failures and len(primary.items) >= node.min_items:
                return primary
            run.fallbacks.append(name)
            # The answer is still degraded: the preferred branch could not be served.
            failures = primary.failures or {name: f"{node.primary!r} returned too few items"}
            return Branch(
                fallback.items, {**failures, **fallback.failures}, fallback.random, fallback.law
            )
        raise TypeError(
            f"node {name!r}: unsupported kind {type(node).__name__}"
        )  # pragma: no cover

    async def _rerank(
        self, name: str, node: RerankNodeSpec, run: RequestRun, source: Branch
    ) -> Branch:
        head = source.items.items[: node.depth]
        if not len(head):
            return source
        if run.out_of_time(node.model):
            missed = {**source.failures, name: run.missed(name)}
            return Branch(source.items, missed, source.random, source.law)
        ids = run.items.table.ids_of(head)
        try:
            scored: ScoreResult = await run.call(
                name, node.model, run.models.score(node.model, run.query, ids)
            )
            items = apply_rerank(source.items, scored, name, node.depth)
        except Exception as exc:  # noqa: BLE001 - keep the input order rather than fail
            failed = {**source.failures, name: reason(exc)}
            return Branch(source.items, failed, source.random, source.law)
        run.versions[scored.model] = scored.version
        return Branch(items, source.failures, source.random)

    async def _stack(
        self, name: str, node: StackNodeSpec, run: RequestRun, inputs: list[Branch]
    ) -> Branch:
        failures = merge_failures(*inputs)
        shaped = drawn(*inputs)
        items, rows = stack_features([b.items for b in inputs], node.normalize)
        if not len(items):
            return Branch(items, failures, shaped)
        if run.out_of_time(node.model):
            fallback = weighted_blend([(1.0, b.items) for b in inputs], node.normalize)
            return Branch(fallback, {**failures, name: run.missed(name)}, shaped)
        try:
            scored: ScoreResult = await run.call(
                name, node.model, run.models.predict(node.model, rows)
            )
            stacked = apply_stack(items, scored, name)
        except Exception as exc:  # noqa: BLE001 - an equal-weight blend beats no answer
            fallback = weighted_blend([(1.0, b.items) for b in inputs], node.normalize)
            return Branch(fallback, {**failures, name: reason(exc)}, shaped)
        run.versions[scored.model] = scored.version
        return Branch(stacked, failures, shaped)
