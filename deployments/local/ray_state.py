"""What Ray's own tools print about a cluster (``serve status``, ``ray list``), as far
as blendserve reads it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import Any, TypedDict

import yaml

__all__ = ["AppStatus", "RayActor", "RayNode", "RayStateReader", "ServeStatus", "tool"]


def tool(name: str) -> str:
    """The path of a command-line tool (``ray``, ``serve``), from the running
    interpreter's environment first (the project's .venv)."""
    # Prefer the tools of the interpreter running us (the project's .venv).
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


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


class RayStateReader(ABC):
    """What ``serve status`` and ``ray list`` say about a cluster, as data: a mixin
    for a cluster that can run its tools (``_run``) against its ``dashboard_url``."""

    @property
    @abstractmethod
    def dashboard_url(self) -> str:
        """Where the tools reach the cluster (its dashboard)."""

    @abstractmethod
    def _run(self, *command: str, new_session: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a Ray tool against this cluster; its completed process."""

    def serve_status(self) -> ServeStatus | None:
        """``serve status`` of this cluster as data (``None`` while it cannot answer)."""
        result = self._run(tool("serve"), "status", "--address", self.dashboard_url)
        if result.returncode != 0:
            return None
        status: ServeStatus | None = yaml.safe_load(result.stdout)
        return status

    def wait_running(self, apps: Collection[str] | None = None, timeout_s: float = 300.0) -> None:
        """Wait until ``apps`` (default: every application) report RUNNING.

        ``/readyz`` answers as soon as a replica does; Serve's controller marks replicas
        running and updates HAProxy a little later, and a ``serve deploy`` in between
        can meet an ingress that HAProxy does not list yet.
        """
        deadline = time.monotonic() + timeout_s
        status: ServeStatus | None = None
        while time.monotonic() < deadline:
            status = self.serve_status()
            found = status.get("applications", {}) if status else {}
            wanted = found.keys() if apps is None else apps
            if found and all(app in found and found[app]["status"] == "RUNNING" for app in wanted):
                return
            time.sleep(0.5)
        raise TimeoutError(f"applications not RUNNING after {timeout_s}s: {status}")

    def list_actors(self) -> list[RayActor]:
        """Ray's state API view of this cluster's live actors (replicas included).

        Each has a ``node_id``; :meth:`list_nodes` says which node that is.
        """
        actors: list[RayActor] = self._list_state("actors")
        return actors

    def list_nodes(self) -> list[RayNode]:
        """This cluster's live nodes: ``node_id``, ``is_head_node``, ``resources_total``..."""
        nodes: list[RayNode] = self._list_state("nodes")
        return nodes

    def _list_state(self, kind: str) -> Any:
        result = self._run(
            tool("ray"), "list", kind,
            "--address", self.dashboard_url,
            "--format", "json",
            "--filter", "state=ALIVE",
            "--limit", "10000",
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"ray list {kind} failed:\n{result.stdout}\n{result.stderr}")
        return json.loads(result.stdout)
