"""A local, loopback-only Ray cluster serving a config: what ``make run`` and the tests use.

Ray is started bound to 127.0.0.1 with token auth, in the
throughput-optimised mode with the bundled HAProxy, and the app is deployed with
the same ``serve deploy`` a data scientist runs, so both paths stay the same.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

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
    """A head-only Ray cluster on loopback, owned by this process.

    It is started with ``ray.init`` rather than ``ray start`` so that stopping it
    (``ray.shutdown``) ends only its own processes, never another cluster's.
    """

    home: Path
    num_cpus: float = 2
    dashboard_port: int = field(default_factory=free_port)

    @property
    def dashboard_url(self) -> str:
        """Where ``serve deploy`` sends configs (loopback only)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        """The environment of the serve CLI calls."""
        env = dict(os.environ)
        env.update(SERVE_ENV)
        env["BLENDSERVE_HOME"] = str(self.home)
        return env

    def start(self) -> None:
        """Start Ray on 127.0.0.1 with token auth and the dashboard on loopback."""
        # Replicas inherit the environment of the process that starts the cluster, and
        # Ray reads its auth mode when first imported: set both before importing it.
        os.environ.update(SERVE_ENV)
        os.environ["BLENDSERVE_HOME"] = str(self.home)
        import ray  # deferred: importing this module must not pull Ray in

        subprocess.run(
            [_bin("ray"), "get-auth-token", "--generate"],
            env=self.env(), check=True, capture_output=True,
        )  # fmt: skip
        ray.init(
            address="local",
            num_cpus=self.num_cpus,  # type: ignore[arg-type]  # fractions are fine
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=self.dashboard_port,
            _node_ip_address="127.0.0.1",
            logging_level=logging.WARNING,
            configure_logging=False,
        )

    def deploy(self, config: Path) -> None:
        """``serve deploy`` a config to this cluster (returns before replicas are up)."""
        result = subprocess.run(
            [_bin("serve"), "deploy", str(config), "--address", self.dashboard_url],
            env=self.env(), cwd=self.home, text=True, capture_output=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"serve deploy failed:\n{result.stdout}\n{result.stderr}")

    def stop(self) -> None:
        """Shut Serve down, then the Ray processes this process started."""
        import ray
        from ray import serve

        if ray.is_initialized():
            try:
                serve.shutdown()  # type: ignore[no-untyped-call]
            finally:
                ray.shutdown()


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
