"""Checks of the models a replica hosts against what its use cases and catalogue
expect, run when the config arrives (never on the request path)."""

from __future__ import annotations

import asyncio
import logging
from typing import TypedDict

from blending.catalog import ItemCatalog
from blending.dag import BlendPlan
from blending.spec import RerankNodeSpec, StackNodeSpec
from deployments.hosting.gateway import IngressModels
from models.base import RecommendQuery
from models.errors import ConfigError

__all__ = ["UnknownItems", "check_node_models", "unknown_model_items"]

logger = logging.getLogger("ray.serve")


class UnknownItems(TypedDict):
    """How many of a model's top items the catalogue does not know."""

    checked: int
    unknown: int
    examples: list[str]


def check_node_models(plans: dict[str, BlendPlan], models: IngressModels) -> None:
    """Refuse a config whose in-process rerank or stack models cannot do the job."""
    for use_case, plan in plans.items():
        for name, node in plan.spec.nodes.items():
            if not isinstance(node, RerankNodeSpec | StackNodeSpec):
                continue
            adapter = models.live_adapters().get(node.model)
            if adapter is None:
                continue  # remote, or failed to load (reported by /readyz)
            where = f"use case {use_case!r}, node {name!r}"
            if isinstance(node, RerankNodeSpec) and not adapter.describe().get("scorer"):
                raise ConfigError(f"{where}: model {node.model!r} cannot score items (rerank)")
            features = getattr(adapter, "feature_names", None)
            if isinstance(node, StackNodeSpec) and features not in (None, node.inputs):
                raise ConfigError(
                    f"{where}: model {node.model!r} was trained on inputs {features}, "
                    f"the node stacks {node.inputs}"
                )


async def unknown_model_items(
    models: IngressModels, catalog: ItemCatalog, probe: int = 1000
) -> dict[str, UnknownItems]:
    """For each model that recommends, how many of its top ``probe`` items (for a user
    it has never seen) the catalogue does not know, with a few examples."""
    report: dict[str, UnknownItems] = {}
    query = RecommendQuery("__blendserve_catalog_check__")
    for name in models.names():
        try:
            result = await asyncio.wait_for(models.recommend(name, query, probe), 10)
        except Exception:  # noqa: BLE001 - not a recommender, or not loaded: nothing to check
            continue
        unknown = [item for item, _ in result.items if catalog.get(item) is None]
        report[name] = {
            "checked": len(result.items),
            "unknown": len(unknown),
            "examples": unknown[:5],
        }
        if unknown:
            logger.warning(
                "model %s recommends %d items the catalogue does not know (e.g. %s)",
                name,
                len(unknown),
                unknown[:3],
            )
    return report
