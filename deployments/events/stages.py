"""Ingress replicas follow the event log's decisions on staged experiments: once a
first stage has a survivor there, every replica splits its users between the control
and that survivor (``blending/evaluation/stages.py`` decides; ``BlendPlan`` serves)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from blending.dag import BlendPlan
from deployments.events.client import EventClient

__all__ = ["follow_stages"]

logger = logging.getLogger("ray.serve")


async def follow_stages(events: EventClient, plans: Mapping[str, BlendPlan]) -> None:
    """Ask the event log about every first stage still running in ``plans``, and end
    those it has decided. A failed call leaves the stage running until the next."""
    for use_case, plan in plans.items():
        for node, spec in plan.staged().items():
            assert spec.prune is not None
            try:
                state = await events.prune_state(use_case, node, spec.candidates(), spec.prune)
            except Exception as exc:  # noqa: BLE001 - asked again next round
                logger.warning("%s.%s: first stage not checked: %s", use_case, node, exc)
                continue
            if state.survivor is not None:
                plan.set_survivor(node, state.survivor)
                logger.info("%s.%s: second stage against %s", use_case, node, state.survivor)
