"""The front door against real HAProxy processes (Ray's bundled binary) and tiny HTTP
backends: no Ray. A "primary" HAProxy runs a config shaped like the one Serve writes,
on Serve's port; the front door follows it on the public port, keeps answering when
any one HAProxy dies, and refuses what its backends cannot take."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from deployments.local.front_door import FrontDoorHAProxy
from deployments.local.front_door_config import (
    Admission,
    admission_for,
    front_config,
    primary_config,
)
from deployments.local.ports import free_port

_PRIMARY = """global
    nbthread 4
    stats socket {dir}/admin.sock mode 666 level admin expose-fd listeners
    stats timeout 30s
    server-state-base {dir}
    server-state-file {dir}/server-state
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout queue 30s
    errorfile 502 {dir}/500.http
    errorfile 503 {dir}/500.http
    load-server-state-from-file global
frontend prometheus
    bind 127.0.0.1:{metrics_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
frontend http_frontend
    bind 127.0.0.1:{port}
{routes}    default_backend default_backend
backend default_backend
    http-request return status 404 content-type text/plain string "no route"
backend http-app
    default-server fall 2 rise 2 inter 1s check
    server SERVE_REPLICA_app-Ingress-1 127.0.0.1:{backend_port} check
listen stats
  bind 127.0.0.1:{stats_port}
  stats enable
"""
_ROUTE = "    use_backend http-app if { path_beg / }\n"


def _primary_text(directory: Path, port: int, backend_port: int, routes: bool = True) -> str:
    return _PRIMARY.format(
        dir=directory,
        port=port,
        backend_port=backend_port,
        metrics_port=free_port(),
        stats_port=free_port(),
        routes=_ROUTE if routes else "",
    )


class _Named(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(0.5)
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[Callable[[str], int]]:
    """Start HTTP servers that answer their name; each call returns the port."""
    servers: list[ThreadingHTTPServer] = []

    def start(name: str) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()


def _listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (Linux /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == wanted and line.split()[3] == "0A")


def _until(check: Callable[[], object], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _get(port: int) -> str:
    # A new connection per request, as clients reconnect after a reset.
    return httpx.get(f"http://127.0.0.1:{port}/", timeout=5.0).text


def test_the_front_config_moves_the_port_limits_replicas_and_drops_single_parts(
    tmp_path: Path,
) -> None:
    ray_dir, state = tmp_path / "ray" / "node", tmp_path / "front"
    text = _primary_text(ray_dir, 8000, 9000)
    config, copies = front_config(text, state, 8000, 8080, Admission(16, 50, hot_per_replica=4))
    assert "admin.sock" not in config and "server-state" not in config
    assert "prometheus" not in config and "listen stats" not in config
    assert "bind 127.0.0.1:8080" in config and ":8000" not in config
    # Recommendations get 4 slots per replica of their own, every other route 12.
    hot, other = config.split("backend http-app-hot\n")[1], config.split("backend http-app\n")[1]
    assert "127.0.0.1:9000 check maxconn 4" in hot and "maxconn 12" in other.split("backend")[0]
    assert "use_backend http-app-hot if { path_beg / } METH_POST blendserve_hot" in config
    assert "acl blendserve_hot path_beg /v1/recommend/ /v1/predict/ /v2/models/" in config
    # A request that finds eight rounds of its slots queued is refused at once (the
    # behaviour is tested against real HAProxy below).
    refuse = f"http-request return status 503 errorfile {state / 'overloaded.http'}"
    assert f"{refuse} if {{ queue() ge 32 }}" in hot and f"{refuse} if {{ queue() ge 96 }}" in other
    assert "timeout queue 50ms" in config and "timeout queue 30s" not in config
    # Two processes share the cores: half of them each.
    assert f"nbthread {max(1, (os.cpu_count() or 2) // 2)}\n" in config
    # Refusals answer our 503; Ray's other error pages are copied.
    assert f"errorfile 503 {state / 'overloaded.http'}" in config
    assert copies == {str(ray_dir / "500.http"): str(state / "500.http")}
    assert f"errorfile 502 {state / '500.http'}" in config

    # Without admission, on Serve's own port: a plain standby.
    standby, _ = front_config(text, state, 8000, 8000)
    assert "bind 127.0.0.1:8000" in standby and "maxconn" not in standby
    assert f"errorfile 503 {state / '500.http'}" in standby


def test_admission_follows_the_ingress_settings_of_the_serve_config() -> None:
    ingress = {
        "name": "Ingress",
        "max_ongoing_requests": 12,
        "user_config": {"use_cases": {"a": {"budget_ms": 300}, "b": {"budget_ms": 90}}},
    }
    config = {"applications": [{"deployments": [{"name": "Catalog"}, ingress]}]}
    assert admission_for(config) == Admission(max_per_replica=12, queue_timeout_ms=90)
    assert admission_for({}) == Admission(max_per_replica=16, queue_timeout_ms=150)


def test_side_by_side_processes_split_the_slots_so_a_replica_gets_no_more_in_all() -> None:
    # Each HAProxy counts only the requests through it: two with 16 each would let 32
    # reach a replica that holds 16.
    share = Admission(max_per_replica=16, queue_timeout_ms=75, hot_per_replica=4).shared_by(2)
    assert (share.max_per_replica, share.hot_per_replica, share.other_per_replica) == (8, 2, 6)
    assert share.queue_timeout_ms == 75 and share.sustained_per_s == 200
    least = Admission(max_per_replica=1, queue_timeout_ms=75, hot_per_replica=1).shared_by(2)
    assert (least.max_per_replica, least.hot_per_replica) == (1, 1), "never no slot at all"


def test_the_primary_config_is_the_newest_one_binding_the_port(tmp_path: Path) -> None:
    for node, port in [("old", 8000), ("other", 8100), ("new", 8000)]:
        (tmp_path / node).mkdir()
        (tmp_path / node / "haproxy.cfg").write_text(_primary_text(tmp_path / node, port, 1))
        time.sleep(0.01)  # distinct modification times
    assert primary_config(tmp_path, 8000) == tmp_path / "new" / "haproxy.cfg"
    assert primary_config(tmp_path, 8200) is None
    # Between polls only changed files are read again, and a change is seen.
    seen: dict[Path, tuple[int, int, bool]] = {}
    assert primary_config(tmp_path, 8000, seen) == tmp_path / "new" / "haproxy.cfg"
    assert len(seen) == 3
    (tmp_path / "new" / "haproxy.cfg").write_text(_primary_text(tmp_path / "new", 8100, 2))
    assert primary_config(tmp_path, 8000, seen) == tmp_path / "old" / "haproxy.cfg"
    assert primary_config(tmp_path, 8100, {}) == tmp_path / "new" / "haproxy.cfg"


def test_any_one_haproxy_dies_without_a_failed_request_and_changes_are_followed(
    tmp_path: Path, backends: Callable[[str], int]
) -> None:
    port, serve_port = free_port(), free_port()
    node = tmp_path / "ray" / "node-1"
    node.mkdir(parents=True)
    (node / "500.http").write_text("HTTP/1.0 500 Internal Server Error\r\n\r\n")
    config = node / "haproxy.cfg"
    config.write_text(_primary_text(node, serve_port, backends("first")))
    doors = [
        FrontDoorHAProxy(port, tmp_path / f"front-{n}", serve_port, Admission(8, 50),
                         ray_dir=tmp_path / "ray", poll_s=0.05)
        for n in range(2)
    ]  # fmt: skip
    primary = subprocess.Popen([doors[0].haproxy, "-db", "-q", "-f", str(config)])
    stop = threading.Event()
    followers = [threading.Thread(target=d.run, args=(stop,), daemon=True) for d in doors]
    for follower in followers:
        follower.start()
    try:
        _until(lambda: _listeners(port) == 2 and _listeners(serve_port) == 1)
        # Serve's HAProxy dies: no client goes through it.
        os.kill(primary.pid, signal.SIGKILL)
        primary.wait()
        assert [_get(port) for _ in range(20)] == ["first"] * 20
        # One front-door HAProxy dies: the other takes every new connection.
        first = doors[0].process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert [_get(port) for _ in range(20)] == ["first"] * 20
        _until(lambda: _listeners(port) == 2)  # and it is back

        # Serve moved the replica: both reload gracefully onto the new backend.
        config.write_text(_primary_text(node, serve_port, backends("second")))
        _until(lambda: {_get(port) for _ in range(4)} == {"second"})
        assert {_get(port) for _ in range(10)} == {"second"}
        # A restarted manager's first config routes nowhere: not adopted.
        reloads = [d.reloads for d in doors]
        config.write_text(_primary_text(node, serve_port, backends("third"), routes=False))
        time.sleep(0.5)  # ten polls: long enough for a wrong reload to happen
        assert [d.reloads for d in doors] == reloads and _get(port) == "second"
    finally:
        stop.set()
        for follower in followers:
            follower.join(timeout=10)
        if primary.poll() is None:
            primary.kill()
    assert _listeners(port) == 0, "stopping the front door stops its HAProxy"


@contextlib.contextmanager
def _admitting_door(tmp_path: Path, backend_port: int, admission: Admission) -> Iterator[int]:
    """One front-door HAProxy with ``admission`` before one backend, following a
    primary config on disk (no primary process): its public port, once it listens."""
    port, serve_port = free_port(), free_port()
    node = tmp_path / "ray" / "node-1"
    node.mkdir(parents=True)
    (node / "500.http").write_text("HTTP/1.0 500 Internal Server Error\r\n\r\n")
    (node / "haproxy.cfg").write_text(_primary_text(node, serve_port, backend_port))
    door = FrontDoorHAProxy(
        port, tmp_path / "front", serve_port, admission, ray_dir=tmp_path / "ray", poll_s=0.05
    )
    stop = threading.Event()
    follower = threading.Thread(target=door.run, args=(stop,), daemon=True)
    follower.start()
    try:
        _until(lambda: _listeners(port) == 1)
        yield port
    finally:
        stop.set()
        follower.join(timeout=10)


def test_what_the_replicas_cannot_take_is_refused_fast_with_503_and_retry_after(
    tmp_path: Path, backends: Callable[[str], int]
) -> None:
    admission = Admission(max_per_replica=1, queue_timeout_ms=50)
    with _admitting_door(tmp_path, backends("only"), admission) as port:

        def slow() -> tuple[int, float, httpx.Response]:
            sent = time.monotonic()
            answer = httpx.get(f"http://127.0.0.1:{port}/slow", timeout=5.0)
            return answer.status_code, time.monotonic() - sent, answer

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda _: slow(), range(6)))
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [200, 503, 503, 503, 503, 503]  # the replica holds one
        for status, took_s, answer in answers:
            if status == 503:
                assert took_s < 0.4, "refused after the queue timeout, not the request"
                assert answer.headers["Retry-After"] == "1"
                assert answer.json()["error"]["code"] == "overloaded"
        assert httpx.get(f"http://127.0.0.1:{port}/slow", timeout=5.0).status_code == 200


def test_a_passing_burst_may_queue_deep_but_a_sustained_overload_only_shallow(
    tmp_path: Path, backends: Callable[[str], int]
) -> None:
    # One slot; in a burst four may wait, under sustained pressure (more than five
    # arrivals a second finding one waiting) only one.
    admission = Admission(
        max_per_replica=1, queue_timeout_ms=3000, queue_rounds=4, sustained_per_s=5
    )
    # One pooled client: a new one per request costs milliseconds of the client's
    # own CPU, which at 50 a second would count in the latencies measured.
    http = httpx.Client(timeout=10.0, limits=httpx.Limits(max_connections=64))

    def slow() -> tuple[int, float]:
        sent = time.monotonic()
        answer = http.get(f"http://127.0.0.1:{port}/slow")
        return answer.status_code, time.monotonic() - sent

    def statuses(at_once: int) -> list[int]:
        """``at_once`` half-second requests sent together: their sorted statuses."""
        with ThreadPoolExecutor(at_once) as pool:
            return sorted(status for status, _ in pool.map(lambda _: slow(), range(at_once)))

    with _admitting_door(tmp_path, backends("only"), admission) as port, http:
        # A burst: one served, four wait their turn, a sixth finds four waiting.
        with ThreadPoolExecutor(6) as pool:
            burst = list(pool.map(lambda _: slow(), range(6)))
        assert sorted(status for status, _ in burst) == [200] * 5 + [503]
        assert max(took for _, took in burst) > 2.0, "the fifth waited for four others"
        # Four seconds of 50 requests a second: once the pressure is sustained, only one
        # request waits at a time, so an answer takes at most its own half second and
        # what is left of the one before it.
        started = time.monotonic()
        with ThreadPoolExecutor(64) as pool:
            flood = []
            for n in range(200):
                flood.append((n / 50, pool.submit(slow)))
                time.sleep(max(0.0, started + (n + 1) / 50 - time.monotonic()))  # pacing
            answers = [(at, *future.result()) for at, future in flood]
        served = [took for at, status, took in answers if status == 200 and at >= 1.0]
        assert served and max(served) < 1.4, served
        assert {status for _, status, _ in answers} == {200, 503}
        # A second later the pressure is forgotten: a burst may queue deep again.
        _until(lambda: statuses(3) == [200, 200, 200], timeout_s=10.0)
