"""The faults of the chaos suite: each SIGKILLs one part of a running local cluster and
returns a check that is true once Ray has replaced it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from deployments.local.cluster import FrontDoor, LocalRay
from deployments.local.processes import kill_sessions

Restored = Callable[[], bool]


@dataclass
class ChaosCluster:
    """The cluster under test and the front door on its public HTTP port."""

    cluster: LocalRay
    door: FrontDoor

    @property
    def url(self) -> str:
        """The service's base URL: the front door."""
        return f"http://127.0.0.1:{self.door.port}"

    @property
    def serve_url(self) -> str:
        """Serve's own HAProxy, behind the front door."""
        return f"http://127.0.0.1:{self.door.serve_port}"

    def replicas(self, deployment: str) -> dict[str, int]:
        """Live replicas of a deployment of the ``blendserve`` app: actor id -> pid."""
        name = f"ServeReplica:blendserve:{deployment}"
        return {
            a["actor_id"]: a["pid"]
            for a in self.cluster.list_actors()
            if a.get("class_name") == name and a.get("state") == "ALIVE"
        }

    def serves(self) -> bool:
        """``/readyz`` answers 200."""
        try:
            return httpx.get(f"{self.url}/readyz", timeout=5.0).status_code == 200
        except httpx.HTTPError:
            return False


def kill_replica(chaos: ChaosCluster, deployment: str) -> Restored:
    """SIGKILL one replica of ``deployment``; restored when as many run as before, the
    killed one not among them."""
    before = chaos.replicas(deployment)
    actor_id, pid = sorted(before.items())[0]
    os.kill(pid, signal.SIGKILL)

    def restored() -> bool:
        now = chaos.replicas(deployment)
        return len(now) >= len(before) and actor_id not in now

    return restored


def kill_controller(chaos: ChaosCluster) -> Restored:
    """SIGKILL the Serve controller; restored when a new one is alive and serving."""
    (old,) = _actor_pids(chaos.cluster, "ServeController")
    os.kill(old, signal.SIGKILL)
    return lambda: _actor_pids(chaos.cluster, "ServeController") not in ([], [old])


def serve_haproxy_pids() -> list[int]:
    """The HAProxy processes Ray Serve runs (not the front door's)."""
    found = subprocess.run(
        ["pgrep", "-f", "haproxy -db -f /tmp/haproxy-serve/"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


def kill_haproxy(chaos: ChaosCluster) -> Restored:
    """SIGKILL Serve's HAProxy; restored when Serve runs a new one."""
    return _kill_until_replaced(serve_haproxy_pids, "Serve's HAProxy")


def _kill_until_replaced(find: Callable[[], list[int]], what: str) -> Restored:
    """SIGKILL the processes ``find`` returns; restored once it finds only new ones."""
    old = find()
    if not old:
        raise RuntimeError(f"no {what} runs: nothing to kill")
    for pid in old:
        os.kill(pid, signal.SIGKILL)

    def replaced() -> bool:
        now = find()
        return bool(now) and not set(old) & set(now)

    return replaced


def front_door_haproxy_pids(chaos: ChaosCluster, instance: int = 0) -> list[int]:
    """The HAProxy processes of one of the front door's instances (two while reloading)."""
    config = chaos.cluster.temp_dir / "front-door" / str(instance) / "haproxy.cfg"
    # The whole command line: a pattern starting with "-f" would be read as options.
    pattern = f"haproxy -db -f {config}"
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def kill_front_door_haproxy(chaos: ChaosCluster) -> Restored:
    """SIGKILL one of the front door's two HAProxy processes; restored when it runs again."""
    return _kill_until_replaced(lambda: front_door_haproxy_pids(chaos), "front-door HAProxy")


def kill_worker_node(chaos: ChaosCluster) -> Restored:
    """SIGKILL every process of the worker node at once, as if its machine died;
    restored when each deployment runs as many replicas as before, on the head."""
    (worker,) = chaos.cluster.workers
    before = {name: len(chaos.replicas(name)) for name in ("Ingress", "model-mf")}
    kill_sessions([worker.session_id])
    chaos.cluster.workers.remove(worker)

    def restored() -> bool:
        nodes = {node["node_id"] for node in chaos.cluster.list_nodes()}
        if worker.node_id in nodes:
            return False
        return all(len(chaos.replicas(name)) >= n for name, n in before.items())

    return restored


def restart_head(chaos: ChaosCluster) -> Restored:
    """SIGKILL every process of the head node, then start it again on the same ports:
    GCS fault tolerance (Redis) brings back the Serve controller, which redeploys."""
    chaos.cluster.kill_head()
    chaos.cluster.restart_head()
    return chaos.serves


def worker_replicas(chaos: ChaosCluster) -> dict[str, int]:
    """How many replicas of each deployment run on the worker node."""
    (worker,) = chaos.cluster.workers
    counts: dict[str, int] = {}
    for actor in chaos.cluster.list_actors():
        name = str(actor.get("class_name", ""))
        if actor.get("node_id") == worker.node_id and name.startswith("ServeReplica:"):
            deployment = name.rsplit(":", 1)[1]
            counts[deployment] = counts.get(deployment, 0) + 1
    return counts


def _actor_pids(cluster: LocalRay, class_name: str) -> list[int]:
    return [
        int(a["pid"])
        for a in cluster.list_actors()
        if a.get("class_name") == class_name and a.get("state") == "ALIVE"
    ]
