"""Starting and stopping each system under test, each in a Unix session of its own.

* :class:`RayServeSystem`: a local Ray started exactly as ``make run`` starts it
  (``deployments.local.cluster.LocalRay``, then ``serve deploy`` of a config), optionally
  without HAProxy; used for blendserve, the naive composition and the echo.
* :class:`MLServerSystem`: ``mlserver start`` from the benchmark's own virtualenv,
  serving the click model's ``model.joblib``.

Both bind 127.0.0.1 and are context managers: leaving the ``with`` block (also by
an exception or Ctrl-C) stops every process of the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

from benchmarks.cpu import snapshot
from deployments.local.cluster import LocalRay, free_port, wait_ready

__all__ = [
    "BenchRay",
    "MLServerSystem",
    "RayServeSystem",
    "System",
    "wait_serving",
]


@dataclass
class BenchRay(LocalRay):
    """``LocalRay`` with HAProxy optional: without it, Serve's throughput mode answers
    HTTP through its proxy actor."""

    haproxy: bool = True

    def env(self) -> dict[str, str]:
        """``LocalRay``'s environment, less ``RAY_SERVE_ENABLE_HA_PROXY`` when asked."""
        env = super().env()
        if not self.haproxy:
            env.pop("RAY_SERVE_ENABLE_HA_PROXY", None)
        return env


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Stopping must finish: a Ctrl-C or SIGTERM that arrives meanwhile is held back
    and raised as ``KeyboardInterrupt`` afterwards (else half-stopped servers stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda received, frame: held.append(received))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            raise KeyboardInterrupt


def wait_serving(
    url: str,
    body: dict[str, Any] | None,
    timeout_s: float = 300.0,
    headers: dict[str, str] | None = None,
) -> None:
    """Poll ``url`` with the benchmark's own request until it answers 200 three times
    in a row; raise ``TimeoutError`` with the last answer."""
    deadline = time.monotonic() + timeout_s
    last, streak = "no answer yet", 0
    with httpx.Client(timeout=10.0, headers=headers) as client:
        while time.monotonic() < deadline:
            try:
                response = client.post(url, json=body)
                last = f"{response.status_code} {response.text[:300]}"
                streak = streak + 1 if response.status_code == 200 else 0
                if streak >= 3:
                    return
            except httpx.HTTPError as exc:
                last, streak = repr(exc), 0
            time.sleep(0.3)
    raise TimeoutError(f"{url} not serving after {timeout_s}s; last answer: {last}")


class System(ABC):
    """A server under test: started, measured through its session, stopped."""

    name: str
    base_url: str
    headers: dict[str, str] = {}  # noqa: RUF012 - replaced, never mutated
    """Sent with every request (blendserve's API key)."""

    @property
    @abstractmethod
    def session_id(self) -> int:
        """The Unix session holding every process of the system."""

    @abstractmethod
    def start(self) -> None:
        """Start and wait until it serves."""

    @abstractmethod
    def stop(self) -> None:
        """Stop every process it started; safe to call twice."""

    @property
    def session_ids(self) -> list[int]:
        """Every Unix session of the system (a multi-node cluster has one per node)."""
        return [self.session_id]

    def processes(self) -> int:
        """How many processes the system runs now."""
        return len(snapshot(*self.session_ids))

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


class RayServeSystem(System):
    """A local Ray serving one Serve config, as ``make run`` does it.

    ``config`` is a Serve config as data; it is written with a free port.
    ``ready_path`` is a GET that must answer 200 first (blendserve's ``/readyz``);
    then ``probe`` (a path and a JSON body) must answer 200, and every application
    must report RUNNING (all replicas up).
    """

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        home: Path,
        probe: tuple[str, dict[str, Any] | None],
        *,
        haproxy: bool = True,
        ready_path: str | None = None,
        num_cpus: float = 2,
        worker: dict[str, Any] | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        self.name = name
        self.worker = worker
        """``LocalRay.add_worker`` arguments of a second node, if any."""
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config = {**config, "http_options": {"host": "127.0.0.1", "port": self.port}}
        self.probe = probe
        self.ready_path = ready_path
        self.timeout_s = timeout_s
        # The repository on PYTHONPATH: replicas import benchmarks.naive_app and echo_app.
        root = str(Path(__file__).resolve().parents[1])
        self.cluster = BenchRay(
            home=home, num_cpus=num_cpus, haproxy=haproxy, extra_env={"PYTHONPATH": root}
        )
        self._scratch = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        self._session: int | None = None
        self.deploy_to_serving_s: float | None = None
        """Seconds from ``serve deploy`` until it served (Ray's own start not counted)."""

    @property
    def session_id(self) -> int:
        """The session ``ray start`` created."""
        if self._session is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._session

    def start(self) -> None:
        """``ray start``, ``serve deploy``, then wait until it serves."""
        path = self._scratch / "serve.yaml"
        path.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        self.cluster.start()
        self._session = self.cluster.session_id
        if self.worker is not None:
            self.cluster.add_worker(**self.worker)
        deployed = time.monotonic()
        self.cluster.deploy(path)
        self.headers = self.cluster.auth_headers()
        if self.ready_path:
            wait_ready(f"{self.base_url}{self.ready_path}", timeout_s=self.timeout_s)
        path_, body = self.probe
        wait_serving(f"{self.base_url}{path_}", body, self.timeout_s, self.headers)
        self.cluster.wait_running(timeout_s=self.timeout_s)
        self.deploy_to_serving_s = time.monotonic() - deployed

    @property
    def session_ids(self) -> list[int]:
        """The head's session and every worker node's."""
        return [self.session_id, *(worker.session_id for worker in self.cluster.workers)]

    def replica_pid(self, deployment: str) -> int | None:
        """The pid of the first live replica of ``deployment`` (by Serve actor name)."""
        pids = self.replica_pids(deployment)
        return pids[0] if pids else None

    def replica_pids(self, deployment: str) -> list[int]:
        """The pids of the live replicas of ``deployment`` (by Serve actor name)."""
        return [
            int(actor["pid"])
            for actor in self.cluster.list_actors()
            if str(actor.get("class_name", "")).startswith("ServeReplica:")
            and str(actor.get("class_name", "")).endswith(f":{deployment}")
            and actor.get("pid")
            and actor.get("state") == "ALIVE"
        ]

    def stop(self) -> None:
        """Stop the cluster's session and remove its temp directory and config."""
        with _uninterrupted():
            self.cluster.stop(grace_s=5.0)
            shutil.rmtree(self.cluster.temp_dir, ignore_errors=True)
            shutil.rmtree(self._scratch, ignore_errors=True)


class MLServerSystem(System):
    """MLServer with one model, ``click_model``, from a scikit-learn ``model.joblib``.

    Settings are MLServer's defaults except: bound to 127.0.0.1 on free ports, and
    ``debug`` off (no per-request access log), as in production.
    """

    def __init__(
        self,
        venv: Path,
        model_uri: Path,
        model_name: str,
        version: str,
        probe: tuple[str, dict[str, Any] | None],
    ) -> None:
        self.name = "mlserver"
        self.probe = probe
        self.venv = venv
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.model_uri = model_uri
        self.model_name = model_name
        self.version = version
        self._scratch = Path(tempfile.mkdtemp(prefix="bench-mlserver-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def session_id(self) -> int:
        """The session of ``mlserver start`` (its inference workers inherit it)."""
        if self._process is None:
            raise RuntimeError("mlserver is not running")
        return self._process.pid

    def start(self) -> None:
        """Write the settings, ``mlserver start``, wait for the model to be ready."""
        settings = {
            "host": "127.0.0.1",
            "http_port": self.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "debug": False,
        }
        model_dir = self._scratch / self.model_name
        model_dir.mkdir(parents=True)
        (self._scratch / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": self.model_name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(self.model_uri), "version": self.version},
        }
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings))
        self._log = (self._scratch / "mlserver.log").open("wb")
        self._process = subprocess.Popen(
            [str(self.venv / "bin" / "mlserver"), "start", str(self._scratch)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self._scratch,
        )
        try:
            wait_serving(f"{self.base_url}{self.probe[0]}", self.probe[1], timeout_s=120)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.log_tail()}") from exc

    def log_tail(self, chars: int = 3000) -> str:
        """The end of MLServer's log."""
        path = self._scratch / "mlserver.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGINT (MLServer's clean shutdown), then SIGKILL the session after ``grace_s``."""
        with _uninterrupted():
            self._stop(grace_s)

    def _stop(self, grace_s: float) -> None:
        if self._process is not None:
            session = self._process.pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(session, signal.SIGINT)
            deadline = time.monotonic() + grace_s
            while snapshot(session) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(session, signal.SIGKILL)
            for key in snapshot(session):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(key[0], signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self._scratch, ignore_errors=True)
