"""A local, loopback-only Ray cluster serving a config: what ``make run`` and the tests use.

Ray is started bound to 127.0.0.1 with token auth, in the
throughput-optimised mode with the bundled HAProxy, and the app is deployed with
the same ``serve deploy`` a data scientist runs, so both paths stay the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deployments.config import RESULT_KEY_ENV

__all__ = ["SERVE_ENV", "LocalRay", "free_port", "wait_ready"]

# Measured on a 2-core machine: ~8x the default proxy path for one deployment.
SERVE_ENV = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    # The serve CLI only sends the cluster's token when told to.
    "RAY_AUTH_MODE": "token",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin(name: str) -> str:
    # Prefer the tools of the interpreter running us (the project's .venv).
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


@dataclass
class LocalRay:
    """A head-only Ray cluster on loopback, with its own ports and temp directory.

    ``ray start --node-ip-address 127.0.0.1`` is used rather than ``ray.init``, which
    replaces a loopback address by the machine's public one. Stopping kills only the
    processes of this cluster (its Unix session), never another cluster's, which
    ``ray stop`` would do.
    """

    home: Path
    num_cpus: float = 2
    dashboard_port: int = field(default_factory=free_port)
    gcs_port: int = field(default_factory=free_port)
    # HAProxy's stats and metrics listeners have fixed default ports (8404, 9101);
    # free ones let several local clusters (make run beside make test) coexist.
    haproxy_stats_port: int = field(default_factory=free_port)
    haproxy_metrics_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    """More environment for every Ray process (e.g. ``PYTHONPATH`` for test models)."""

    def __post_init__(self) -> None:
        # Short: Ray puts unix sockets under it, and their paths are limited to 107 bytes.
        self.temp_dir = Path(tempfile.gettempdir()) / f"blendserve-ray-{self.gcs_port}"
        self.session_id: int | None = None

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
        if not env.get(RESULT_KEY_ENV):
            env[RESULT_KEY_ENV] = self.result_key()
        env.update(self.extra_env)
        return env

    def result_key(self) -> str:
        """The secret that signs result ids: ``$BLENDSERVE_HOME/.blendserve/result_key``.

        Created on first use (owner-only permissions) and kept, so result ids stay
        verifiable across restarts; the directory is git-ignored.
        """
        path = self.home / ".blendserve" / "result_key"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
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
            self.session_id = process.pid
        stdout, stderr = process.communicate()
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def start(self) -> None:
        """Create a token if there is none, then start the head node on 127.0.0.1.

        Ray's daemons, replicas and HAProxy all inherit the new session of ``ray
        start``, which is how :meth:`stop` finds exactly this cluster's processes.
        """
        self._run(_bin("ray"), "get-auth-token", "--generate")
        result = self._run(
            _bin("ray"), "start", "--head",
            "--node-ip-address", "127.0.0.1",
            "--port", str(self.gcs_port),
            "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port),
            "--dashboard-agent-listen-port", str(free_port()),
            "--ray-client-server-port", str(free_port()),
            "--num-cpus", f"{self.num_cpus:g}",
            "--temp-dir", str(self.temp_dir),
            "--disable-usage-stats",
            new_session=True,
        )  # fmt: skip
        if result.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed:\n{result.stdout}\n{result.stderr}")

    def deploy(self, config: Path) -> None:
        """``serve deploy`` a config to this cluster (returns before replicas are up)."""
        result = self._run(_bin("serve"), "deploy", str(config), "--address", self.dashboard_url)
        if result.returncode != 0:
            raise RuntimeError(f"serve deploy failed:\n{result.stdout}\n{result.stderr}")

    def list_actors(self) -> list[dict[str, Any]]:
        """Ray's state API view of this cluster's live actors (replicas included)."""
        result = self._run(
            _bin("ray"),
            "list",
            "actors",
            "--address",
            self.dashboard_url,
            "--format",
            "json",
            "--filter",
            "state=ALIVE",
            "--limit",
            "10000",
        )
        if result.returncode != 0:
            raise RuntimeError(f"ray list actors failed:\n{result.stdout}\n{result.stderr}")
        actors: list[dict[str, Any]] = json.loads(result.stdout)
        return actors

    def stop(self, grace_s: float = 10.0) -> None:
        """End every process of this cluster: SIGTERM, then SIGKILL after ``grace_s``."""
        if self.session_id is None:
            return
        _signal_session(self.session_id, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _session_pids(self.session_id) and time.monotonic() < deadline:
            time.sleep(0.2)
        _signal_session(self.session_id, signal.SIGKILL)
        self.session_id = None


def _session_pids(session_id: int) -> list[int]:
    """Live (non-zombie) processes in Unix session ``session_id`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, session, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session_id and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _signal_session(session_id: int, signum: signal.Signals) -> None:
    for pid in _session_pids(session_id):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def wait_ready(url: str, timeout_s: float = 300.0, interval_s: float = 0.5) -> dict[str, object]:
    """Poll ``url`` (a ``/readyz``) until it answers 200; return its body.

    Raises ``TimeoutError`` with the last answer when the deadline passes.
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            try:
                response = client.get(url)
                if response.status_code == 200:
                    body: dict[str, object] = response.json()
                    return body
                last = f"{response.status_code} {response.text[:500]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(interval_s)
    raise TimeoutError(f"{url} not ready after {timeout_s}s; last answer: {last}")
