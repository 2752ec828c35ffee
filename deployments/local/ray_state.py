"""What Ray's own tools print about a cluster (``serve status``, ``ray list``), as far
as blendserve reads it."""

from __future__ import annotations

from typing import TypedDict

__all__ = ["AppStatus", "RayActor", "RayNode", "ServeStatus"]


class AppStatus(TypedDict):
    """One application in ``serve status``."""

    status: str


class ServeStatus(TypedDict, total=False):
    """What this module reads of ``serve status``."""

    applications: dict[str, AppStatus]


class RayNode(TypedDict, total=False):
    """A row of ``ray list nodes`` (the fields blendserve reads)."""

    node_id: str
    is_head_node: bool
    resources_total: dict[str, float]
    state: str


class RayActor(TypedDict, total=False):
    """A row of ``ray list actors`` (the fields blendserve reads)."""

    actor_id: str
    class_name: str
    node_id: str
    pid: int
    state: str
    name: str
