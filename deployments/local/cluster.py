"""A local Ray cluster serving a config: what ``make run`` and the tests use.

Ray is started on 127.0.0.1 (as far as Ray 2.60 allows: its dashboard and the HTTP
port bind loopback, its internal ports do not; see docs/ops.md) with token auth, in
the throughput-optimised mode with the bundled HAProxy, and the app is deployed with
the same ``serve deploy`` a data scientist runs, so both paths stay the same. Worker
nodes can join, to try multi-node placement on one machine.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from deployments.api.keys import API_KEYS_FILE_ENV, write_dev_keys, write_secret
from deployments.config import PSEUDONYM_SALT_ENV, RESULT_KEY_ENV
from deployments.config.paths import local_secret
from deployments.local.front_door_config import Admission, admission_for
from deployments.local.ports import free_port, free_port_block
from deployments.local.processes import kill_sessions, stop_sessions, wait_ready
from deployments.local.ray_state import RayStateReader, tool

__all__ = [
    "INGRESS_PORTS",
    "SERVE_ENV",
    "FrontDoor",
    "LocalRay",
    "WorkerNode",
    "free_port",
    "free_port_block",
    "wait_ready",
]

INGRESS_PORTS = 50
"""Direct-ingress ports per protocol a local cluster reserves (one per ingress replica)."""

# Measured on a 2-core machine: ~8x the default proxy path for one deployment.
SERVE_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # The serve CLI only sends the cluster's token when told to.
    "RAY_AUTH_MODE": "token",
    # Each process exports its metrics every 5 s, not 10: the node's metrics agent
    # replays every histogram observation of an export in one burst, which took a core
    # for half a second every 10 s at 450 requests/s (answers stalled past the front
    # door's queue timeout). Smaller pieces of the same work (ingress replicas also
    # sample node latencies, deployments/metrics.py) no longer stall anything.
    "RAY_metrics_report_interval_ms": "5000",
    # Ray starts its workers, Serve's replicas among them, at nice 15, below every
    # other process of the node (raylet, GCS, dashboard and metrics agents, HAProxy):
    # whenever one of those woke up on a busy two-core node, the replicas lost the
    # CPU (weights 36 against 1,024) and answers waited past the front door's queue
    # timeout. The soak found it: docs/RELIABILITY.md. Ray's job manager does the same
    # for job drivers.
    "RAY_worker_niceness": "0",
}


@dataclass(frozen=True)
class FrontDoor:
    """A running front door: the public ``port`` in front of Serve's ``serve_port``."""

    port: int
    serve_port: int
    admission: Admission | None
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class WorkerNode:
    """A worker node that :meth:`LocalRay.add_worker` started on this machine."""

    node_id: str
    """Ray's id of the node, as ``ray list nodes`` and each actor's ``node_id`` show it."""
    num_cpus: int
    num_gpus: int
    resources: dict[str, float]
    temp_dir: Path
    """The node's own Ray temp directory (its session, logs and sockets)."""
    session_id: int
    """The Unix session of the node's processes; :meth:`LocalRay.stop` kills it."""


@dataclass
class LocalRay(RayStateReader):
    """A Ray cluster on this machine, with its own ports and temp directories.

    The head node comes first (:meth:`start`); :meth:`add_worker` adds worker nodes to
    the same cluster, each a separate raylet with its own resources, as a second
    machine would be. Nodes are started with ``ray start --node-ip-address
    127.0.0.1``, but Ray 2.60 replaces a loopback address by the machine's, so they
    register (and partly listen) there; the dashboard and the HTTP port do bind
    127.0.0.1 (docs/ops.md). Stopping kills only the processes of this cluster (the
    Unix session of each node's ``ray start``), never another cluster's, which
    ``ray stop`` would do.
    """

    home: Path
    num_cpus: float = 2
    num_gpus: int | None = None
    """GPUs the head node offers; ``None`` lets Ray detect them."""
    dashboard_port: int = field(default_factory=free_port)
    gcs_port: int = field(default_factory=free_port)
    # HAProxy's stats and metrics listeners have fixed default ports (8404, 9101);
    # free ones let several local clusters (make run beside make test) coexist.
    haproxy_stats_port: int = field(default_factory=free_port)
    haproxy_metrics_port: int = field(default_factory=free_port)
    # Ray's autoscaler and dashboard export metrics on fixed ports (44217, 44227) in
    # the ephemeral range: a second cluster cannot bind them, and a free port handed
    # to this cluster's dashboard could be taken by them first (seen once).
    autoscaler_metrics_port: int = field(default_factory=free_port)
    dashboard_metrics_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    """Where the head node's metrics agent serves Prometheus text (blendserve's and Ray's)."""
    # Serve gives each ingress replica its own HTTP and gRPC port (direct ingress) from
    # fixed ranges (30000-31000, 40000-41000) on the node's address: two clusters on
    # one machine would hand out the same ports and answer each other's requests
    # (seen: one cluster's HAProxy reaching the other's replicas). Each gets its own.
    ingress_ports: int = field(default_factory=lambda: free_port_block(2 * INGRESS_PORTS))
    """First of this cluster's ``2 * INGRESS_PORTS`` ports: HTTP, then gRPC."""
    # HAProxy falls back to Serve's proxy actor (fixed ports 8500, 9500) while no
    # ingress replica is registered: with a shared port, a cluster still starting
    # sent its requests, readiness probes included, to another cluster's apps.
    fallback_http_port: int = field(default_factory=free_port)
    fallback_grpc_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for every Ray process (e.g. ``PYTHONPATH`` for test models)."""

    def __post_init__(self) -> None:
        # Short: Ray puts unix sockets under it, and their paths are limited to 107 bytes.
        self.temp_dir = Path(tempfile.gettempdir()) / f"blendserve-ray-{self.gcs_port}"
        self.workers: list[WorkerNode] = []
        self._sessions: list[int] = []
        """The Unix session of each node's ``ray start``, the head's first."""
        self._result_key: str | None = None

    @property
    def session_id(self) -> int | None:
        """The Unix session of the head node's processes (``None`` when stopped)."""
        return self._sessions[0] if self._sessions else None

    @property
    def temp_dirs(self) -> list[Path]:
        """The head's temp directory and each worker node's (Ray's logs are under them)."""
        return [self.temp_dir, *(worker.temp_dir for worker in self.workers)]

    @property
    def metrics_url(self) -> str:
        """The head node's Prometheus endpoint."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def api_key_path(self) -> Path:
        """The development API key (every scope) that :meth:`env` makes the service accept."""
        return self.home / ".blendserve" / "api_key"

    def auth_headers(self) -> dict[str, str]:
        """HTTP headers that present the development API key."""
        key_path, _ = write_dev_keys(self.api_key_path.parent)
        key = key_path.read_text(encoding="utf-8").strip()
        return {"Authorization": f"Bearer {key}"}

    @property
    def dashboard_url(self) -> str:
        """Where ``serve deploy`` sends configs (loopback only)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        """The environment of every Ray process of this cluster, replicas included."""
        env = dict(os.environ)
        env.update(SERVE_ENV)
        env["BLENDSERVE_HOME"] = str(self.home)
        env["RAY_SERVE_HAPROXY_STATS_PORT"] = str(self.haproxy_stats_port)
        env["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(self.haproxy_metrics_port)
        env["AUTOSCALER_METRIC_PORT"] = str(self.autoscaler_metrics_port)
        env["DASHBOARD_METRIC_PORT"] = str(self.dashboard_metrics_port)
        http, grpc = self.ingress_ports, self.ingress_ports + INGRESS_PORTS
        env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(http)
        env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(http + INGRESS_PORTS - 1)
        env["RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT"] = str(grpc)
        env["RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT"] = str(grpc + INGRESS_PORTS - 1)
        env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] = str(self.fallback_http_port)
        env["RAY_SERVE_FALLBACK_PROXY_GRPC_PORT"] = str(self.fallback_grpc_port)
        if not env.get(RESULT_KEY_ENV):
            env[RESULT_KEY_ENV] = self.result_key()
        if not env.get(PSEUDONYM_SALT_ENV):
            env[PSEUDONYM_SALT_ENV] = self._secret("pseudonym_salt")
        if not env.get(API_KEYS_FILE_ENV):
            # The development key; keys given inline ($BLENDSERVE_API_KEYS) add to it.
            _, keys_file = write_dev_keys(self.api_key_path.parent)
            env[API_KEYS_FILE_ENV] = str(keys_file)
        env.update(self.extra_env)
        return env

    def result_key(self) -> str:
        """The secret that signs result ids: ``$BLENDSERVE_HOME/.blendserve/result_key``.

        Created on first use (owner-only permissions) and kept, so result ids stay
        verifiable across restarts; the directory is git-ignored.
        """
        if self._result_key is None:
            self._result_key = self._secret("result_key")
        return self._result_key

    def _secret(self, name: str) -> str:
        """``$BLENDSERVE_HOME/.blendserve/<name>``: 32 random bytes made on first use."""
        path = local_secret(name, self.home)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_secret(path, secrets.token_hex(32))
        return path.read_text(encoding="utf-8").strip()

    def _run(self, *command: str, new_session: bool = False) -> subprocess.CompletedProcess[str]:
        process = subprocess.Popen(
            command,
            env=self.env(),
            cwd=self.home,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=new_session,
        )
        if new_session:
            # Recorded before waiting, so a stop() (Ctrl-C) while it starts finds it.
            self._sessions.append(process.pid)
        stdout, stderr = process.communicate()
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def start(self) -> None:
        """Create a token if there is none, then start the head node on 127.0.0.1.

        Ray's daemons, replicas and HAProxy all inherit the new session of ``ray
        start``, which is how :meth:`stop` finds exactly this cluster's processes.
        """
        self._run(tool("ray"), "get-auth-token", "--generate")
        gpus = () if self.num_gpus is None else ("--num-gpus", str(self.num_gpus))
        result = self._run(
            tool("ray"), "start", "--head",
            "--node-ip-address", "127.0.0.1",
            "--port", str(self.gcs_port),
            "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port),
            "--metrics-export-port", str(self.metrics_port),
            "--dashboard-agent-listen-port", str(free_port()),
            "--ray-client-server-port", str(free_port()),
            "--num-cpus", f"{self.num_cpus:g}",
            *gpus,
            "--temp-dir", str(self.temp_dir),
            "--disable-usage-stats",
            new_session=True,
        )  # fmt: skip
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{result.stdout}\n{result.stderr}")

    def add_worker(
        self,
        num_cpus: int = 1,
        num_gpus: int = 0,
        resources: dict[str, float] | None = None,
        timeout_s: float = 60.0,
    ) -> WorkerNode:
        """Start a worker node in this cluster and wait until the head lists it alive.

        Several nodes of one cluster on one machine need what two machines would
        have apart: each node gets its own ``--temp-dir`` (else it shares the head's
        session directory, logs and log monitor), its own dashboard agent port (the
        default, 52365, is fixed) and worker ports from the OS (``0``) instead of the
        head's range. ``--num-gpus`` may exceed the GPUs present: Ray then only
        books them (``CUDA_VISIBLE_DEVICES`` is set, torch still finds no CUDA).
        """
        if self.session_id is None:
            raise RuntimeError("start the head node before adding a worker node")
        before = {node["node_id"] for node in self.list_nodes()}
        temp_dir = self.temp_dir.with_name(f"{self.temp_dir.name}-w{len(self.workers) + 1}")
        command = [
            tool("ray"), "start",
            "--address", f"127.0.0.1:{self.gcs_port}",
            "--node-ip-address", "127.0.0.1",
            "--num-cpus", str(num_cpus),
            "--num-gpus", str(num_gpus),
            "--dashboard-agent-listen-port", str(free_port()),
            "--min-worker-port", "0",
            "--max-worker-port", "0",
            "--temp-dir", str(temp_dir),
            "--disable-usage-stats",
        ]  # fmt: skip
        if resources:
            command += ["--resources", json.dumps(resources)]
        result = self._run(*command, new_session=True)
        session_id = self._sessions[-1]
        try:
            if result.returncode != 0:
                raise RuntimeError(
                    f"ray start (worker node) failed:\n{result.stdout}\n{result.stderr}"
                )
            node_id = self._wait_new_node(before, timeout_s)
        except (RuntimeError, TimeoutError):
            stop_sessions([session_id], grace_s=5.0)
            self._sessions.remove(session_id)
            raise
        worker = WorkerNode(
            node_id, num_cpus, num_gpus, dict(resources or {}), temp_dir, session_id
        )
        self.workers.append(worker)
        return worker

    def _wait_new_node(self, known: set[str], timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            new = [node["node_id"] for node in self.list_nodes() if node["node_id"] not in known]
            if new:
                return str(new[0])
            time.sleep(0.5)
        raise TimeoutError(f"the new worker node did not register within {timeout_s}s")

    def deploy(self, config: Path) -> None:
        """``serve deploy`` a config to this cluster (returns before replicas are up)."""
        result = self._run(tool("serve"), "deploy", str(config), "--address", self.dashboard_url)
        if result.returncode != 0:
            raise RuntimeError(f"serve deploy failed:\n{result.stdout}\n{result.stderr}")

    def deploy_behind_front_door(self, config: Path) -> FrontDoor:
        """``serve deploy`` a config with Serve's HTTP port moved to a free internal
        port, and run the front door (:mod:`deployments.local.front_door`) on the
        config's port, with the admission the config implies (stopped with the cluster).
        Returns before replicas are up."""
        data = yaml.safe_load(config.read_text()) or {}
        http_options = data.setdefault("http_options", {})
        port = int(http_options.get("port", 8000))
        # Not one this cluster chose already: its HAProxy binds those only later.
        taken = {port, self.haproxy_stats_port, self.haproxy_metrics_port}
        serve_port = free_port()
        while serve_port in taken:
            serve_port = free_port()
        http_options["port"] = serve_port
        internal = self.temp_dir / f"behind-front-door-{config.name}"
        internal.write_text(yaml.safe_dump(data, sort_keys=False))
        self.deploy(internal)
        return self.start_front_door(port, serve_port, admission_for(data))

    def start_front_door(
        self, port: int, serve_port: int, admission: Admission | None
    ) -> FrontDoor:
        """Run the front door on ``port`` for Serve's HAProxy on ``serve_port``."""
        command = [
            sys.executable, "-m", "deployments.local.front_door", "--port", str(port),
            "--serve-port", str(serve_port), "--state-dir", str(self.temp_dir / "front-door"),
        ]  # fmt: skip
        if admission is not None:
            command += [
                "--max-per-replica", str(admission.max_per_replica),
                "--hot-per-replica", str(admission.hot_per_replica),
                "--queue-timeout-ms", str(admission.queue_timeout_ms),
                "--queue-rounds", str(admission.queue_rounds),
                "--sustained-per-s", str(admission.sustained_per_s),
            ]  # fmt: skip
        log = (self.temp_dir / "front-door.log").open("ab")
        process = subprocess.Popen(
            command, env=self.env(), cwd=self.home, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self._sessions.append(process.pid)
        return FrontDoor(port, serve_port, admission, process)

    def kill_head(self) -> None:
        """SIGKILL every process of the head node at once, as a crash would."""
        if self.session_id is None:
            raise RuntimeError("the head node is not running")
        kill_sessions([self._sessions.pop(0)])

    def restart_head(self) -> None:
        """Start the head node again after :meth:`kill_head`: same ports, token and temp
        directory. With GCS fault tolerance (``RAY_REDIS_ADDRESS`` in ``extra_env``)
        the cluster's actors, the Serve controller among them, come back."""
        self.start()
        self._sessions.insert(0, self._sessions.pop())

    def stop(self, grace_s: float = 10.0) -> None:
        """End every process of every node: SIGTERM, then SIGKILL after ``grace_s``."""
        stop_sessions(self._sessions, grace_s)
        self._sessions = []
        self.workers = []
