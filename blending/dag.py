"""Running a validated use-case DAG over the answers of its sources.

Fetching source answers (in process or from another deployment, with deadlines)
is the caller's job; this module only combines what arrived. A source that failed
contributes nothing and marks the outcome ``degraded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from blending.candidates import BlendContext, Candidate, SourceResult
from blending.nodes import apply_filter, apply_slots, from_source, weighted_blend
from blending.spec import (
    BlendNodeSpec,
    FilterNodeSpec,
    SlotsNodeSpec,
    SourceNodeSpec,
    UseCaseSpec,
)

__all__ = ["BlendOutcome", "BlendPlan"]


@dataclass(frozen=True)
class BlendOutcome:
    """The top-k list, whether it was built without some sources, and versions used."""

    items: list[Candidate]
    degraded: bool
    failed_sources: dict[str, str] = field(default_factory=dict)
    model_versions: dict[str, str] = field(default_factory=dict)


class BlendPlan:
    """A use case compiled once: its nodes in dependency order."""

    def __init__(self, name: str, spec: UseCaseSpec) -> None:
        self.name = name
        self.spec = spec
        self.order = spec.topological_order()
        self.sources: dict[str, SourceNodeSpec] = spec.sources()

    def run(
        self,
        answers: Mapping[str, SourceResult | BaseException],
        ctx: BlendContext,
    ) -> BlendOutcome:
        """Combine the source ``answers`` (by source node name) into the top ``ctx.k``."""
        lists: dict[str, list[Candidate]] = {}
        failed: dict[str, str] = {}
        versions: dict[str, str] = {}
        for name in self.order:
            node = self.spec.nodes[name]
            if isinstance(node, SourceNodeSpec):
                answer = answers.get(name)
                if isinstance(answer, SourceResult):
                    lists[name] = from_source(name, answer)
                    versions[answer.model] = answer.version
                else:
                    failed[name] = _reason(answer)
                    lists[name] = []
            elif isinstance(node, BlendNodeSpec):
                inputs = [(w, lists[n]) for n, w in node.weights.items()]
                lists[name] = weighted_blend(inputs, node.normalize)
            elif isinstance(node, SlotsNodeSpec):
                lists[name] = apply_slots(
                    lists[node.input], lists[node.curated], node.positions, ctx
                )
            elif isinstance(node, FilterNodeSpec):
                lists[name] = apply_filter(lists[node.input], ctx)
            else:  # pragma: no cover - the spec's discriminated union is exhaustive
                raise TypeError(f"node {name!r}: unsupported kind {type(node).__name__}")
        # The output is filtered once more so no path can return an excluded item.
        final = apply_filter(lists[self.spec.output], ctx)[: ctx.k]
        return BlendOutcome(final, bool(failed), failed, versions)


def _reason(answer: BaseException | None) -> str:
    if answer is None:
        return "no answer"
    return f"{type(answer).__name__}: {answer}" if str(answer) else type(answer).__name__
