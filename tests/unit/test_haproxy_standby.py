"""The standby HAProxy against real HAProxy processes (Ray's bundled binary) and a tiny
HTTP backend: no Ray. A "primary" HAProxy runs a config shaped like the one Serve
writes; the standby follows it, shares its port and answers when the primary dies."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from deployments.local.haproxy_standby import HAProxyStandby, primary_config, standby_config
from deployments.local.ports import free_port

_PRIMARY = """global
    stats socket {dir}/admin.sock mode 666 level admin expose-fd listeners
    stats timeout 30s
    server-state-base {dir}
    server-state-file {dir}/server-state
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
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
    server SERVE_REPLICA_app-Ingress-1 127.0.0.1:{backend_port}
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


def test_the_standby_config_keeps_routes_and_drops_what_is_single_per_node(
    tmp_path: Path,
) -> None:
    ray_dir = tmp_path / "ray" / "node"
    text = _primary_text(ray_dir, 8000, 9000)
    config, copies = standby_config(text, tmp_path / "standby")
    assert "admin.sock" not in config and "server-state" not in config
    assert "prometheus" not in config and "listen stats" not in config
    assert "bind 127.0.0.1:8000" in config and "127.0.0.1:9000" in config
    assert copies == {str(ray_dir / "500.http"): str(tmp_path / "standby" / "500.http")}
    assert f"errorfile 503 {tmp_path / 'standby' / '500.http'}" in config


def test_the_primary_config_is_the_newest_one_binding_the_port(tmp_path: Path) -> None:
    for node, port in [("old", 8000), ("other", 8100), ("new", 8000)]:
        (tmp_path / node).mkdir()
        (tmp_path / node / "haproxy.cfg").write_text(_primary_text(tmp_path / node, port, 1))
        time.sleep(0.01)  # distinct modification times
    assert primary_config(tmp_path, 8000) == tmp_path / "new" / "haproxy.cfg"
    assert primary_config(tmp_path, 8200) is None


def test_killing_the_primary_costs_no_request_and_the_standby_follows_changes(
    tmp_path: Path, backends: Callable[[str], int]
) -> None:
    port = free_port()
    node = tmp_path / "ray" / "node-1"
    node.mkdir(parents=True)
    (node / "500.http").write_text("HTTP/1.0 500 Internal Server Error\r\n\r\n")
    config = node / "haproxy.cfg"
    config.write_text(_primary_text(node, port, backends("first")))
    standby = HAProxyStandby(port, tmp_path / "standby", ray_dir=tmp_path / "ray", poll_s=0.05)
    primary = subprocess.Popen([standby.haproxy, "-db", "-q", "-f", str(config)])
    stop = threading.Event()
    follower = threading.Thread(target=standby.run, args=(stop,), daemon=True)
    follower.start()
    try:
        _until(lambda: _listeners(port) == 2)  # the primary and the standby share it
        os.kill(primary.pid, signal.SIGKILL)
        primary.wait()
        assert [_get(port) for _ in range(20)] == ["first"] * 20

        # Serve moved the replica: the standby reloads gracefully onto the new backend.
        config.write_text(_primary_text(node, port, backends("second")))
        _until(lambda: _get(port) == "second")
        # A restarted manager's first config routes nowhere: not adopted.
        config.write_text(_primary_text(node, port, backends("third"), routes=False))
        reloads = standby.reloads
        time.sleep(0.5)  # ten polls: long enough for a wrong reload to happen
        assert standby.reloads == reloads and _get(port) == "second"

        # The standby's own HAProxy dies: it is back at once.
        assert standby.process is not None
        os.kill(standby.process.pid, signal.SIGKILL)
        _until(lambda: standby.reloads == reloads + 1 and _listeners(port) == 1)
        assert _get(port) == "second"
    finally:
        stop.set()
        follower.join(timeout=10)
        if primary.poll() is None:
            primary.kill()
    assert _listeners(port) == 0, "stopping the standby stops its HAProxy"
