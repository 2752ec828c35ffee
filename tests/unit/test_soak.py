"""The open-loop soak client against a tiny real HTTP server in a background thread.

The server answers by user id prefix: ``ok*`` 200 ``{"degraded": false}``, ``deg*`` 200
``{"degraded": true}``, ``busy*`` 429 with ``Retry-After``, ``slow*`` sleeps past the
client's timeout. It counts the requests it receives and the peak concurrency per user,
so the tests can check what actually reached the wire, not only what the client says.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.open_loop import closed_loop_rate, open_loop, run_open_loop, sustained_rate
from benchmarks.soak import DROPPED_BY_CLIENT, SoakReport, main, run_soak

SLOW_S = 1.0
"""How long ``slow*`` users take: well past the timeouts the tests use."""
CAPPED_PER_S = 100
"""``capped*`` users are refused (503) beyond this many requests in any second."""


@dataclass
class ServerState:
    """What the server saw, per user id (only touched on the server's event loop)."""

    received: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak_in_flight: Counter[str] = field(default_factory=Counter)
    auth: Counter[str] = field(default_factory=Counter)
    capped: deque[float] = field(default_factory=deque)
    """Arrival times of ``capped*`` users' requests in the last second."""


@dataclass
class Server:
    """A running test server."""

    url: str
    state: ServerState


def _app(state: ServerState) -> Starlette:
    async def recommend(request: Request) -> JSONResponse:
        body = await request.json()
        user = str(body["user_id"])
        state.received[user] += 1
        state.auth[request.headers.get("authorization", "")] += 1
        state.in_flight[user] += 1
        state.peak_in_flight[user] = max(state.peak_in_flight[user], state.in_flight[user])
        try:
            if user.startswith("capped"):
                now = time.monotonic()
                state.capped.append(now)
                while state.capped[0] < now - 1.0:
                    state.capped.popleft()
                if len(state.capped) > CAPPED_PER_S:
                    return JSONResponse({"error": "overloaded"}, status_code=503)
            if user.startswith("busy"):
                return JSONResponse(
                    {"error": "busy"}, status_code=429, headers={"Retry-After": "1"}
                )
            if user.startswith("slow"):
                await asyncio.sleep(SLOW_S)
            return JSONResponse({"items": [], "degraded": user.startswith("deg")})
        finally:
            state.in_flight[user] -= 1

    return Starlette(routes=[Route("/v1/recommend/{use_case}", recommend, methods=["POST"])])


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """Uvicorn on 127.0.0.1 with an OS-chosen port, in a daemon thread."""
    state = ServerState()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        _app(state), log_level="error", lifespan="off", timeout_graceful_shutdown=1
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    yield Server(url=f"http://127.0.0.1:{port}", state=state)
    uv.should_exit = True
    thread.join(timeout=5)
    sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_consistent(report: SoakReport) -> None:
    """Every due request is counted exactly once, overall and across windows."""
    assert sum(report.status_counts.values()) + sum(report.error_counts.values()) == report.sent
    assert sum(w.sent for w in report.windows) == report.sent
    assert sum(w.ok for w in report.windows) == report.ok
    assert sum(w.non_2xx for w in report.windows) == report.sent - report.ok - sum(
        report.error_counts.values()
    )
    assert sum(w.errors for w in report.windows) == sum(report.error_counts.values())


def test_mixed_answers_are_counted_per_kind(server: Server) -> None:
    users = ("ok-mix", "deg-mix", "busy-mix", "slow-mix")
    report = asyncio.run(
        run_soak(
            server.url,
            rate=50,
            duration_s=2.0,
            users=users,
            api_key="sekrit",
            timeout_s=0.5,
            window_s=0.5,
        )
    )
    _assert_consistent(report)
    assert abs(report.sent - 100) <= 10
    assert abs(report.achieved_rate - 50) <= 5
    assert 1.9 <= report.duration_s <= 2.5
    quarter = report.sent // 4  # round-robin over four users: exactly a quarter each
    assert report.status_counts == {200: 2 * quarter, 429: quarter}
    assert report.error_counts == {"timeout": quarter}
    assert report.degraded == quarter
    assert report.retry_after_seen == quarter
    assert report.shed_p99_ms is not None and 0 < report.shed_p99_ms < 500  # the 429s
    assert report.ok_share() == pytest.approx(0.5)
    # Everything reached the server, with the key.
    assert sum(server.state.received[u] for u in users) == report.sent
    assert server.state.auth["Bearer sekrit"] >= report.sent
    latencies = [report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms]
    assert all(v is not None and 0 < v < 500 for v in latencies)
    assert latencies == sorted(latencies)  # type: ignore[type-var]
    assert [w.start_s for w in report.windows] == [0.0, 0.5, 1.0, 1.5]
    assert [w.sent for w in report.windows] == [25, 25, 25, 25]
    assert all(w.p50_ms is not None for w in report.windows)

    data = json.loads(json.dumps(report.to_json()))
    assert data["sent"] == report.sent
    assert data["status_counts"] == {"200": 2 * quarter, "429": quarter}
    assert len(data["windows"]) == 4
    text = report.render()
    assert "timeout=" in text and "429=" in text


def test_open_loop_keeps_sending_while_answers_hang(server: Server) -> None:
    # Every answer takes SLOW_S; a closed-loop client would send about one request.
    report = asyncio.run(
        run_soak(server.url, rate=50, duration_s=1.0, users=("slow-open",), timeout_s=0.5)
    )
    _assert_consistent(report)
    assert report.sent == 50
    assert report.error_counts == {"timeout": 50}
    assert report.status_counts == {}
    assert report.ok_share() == 0.0
    assert report.p50_ms is None and report.windows[0].p50_ms is None
    # The server really received them, many at once (on a busy machine one may time
    # out before its connection is even accepted).
    assert server.state.received["slow-open"] >= 45
    assert server.state.peak_in_flight["slow-open"] >= 20
    assert "-" in report.render()


def test_in_flight_cap_drops_instead_of_queueing(server: Server) -> None:
    report = asyncio.run(
        run_soak(
            server.url,
            rate=50,
            duration_s=1.0,
            users=("slow-cap",),
            timeout_s=0.5,
            max_in_flight=5,
        )
    )
    _assert_consistent(report)
    assert report.sent == 50
    dropped = report.error_counts[DROPPED_BY_CLIENT]
    assert dropped > 0
    assert report.error_counts["timeout"] + dropped == 50
    assert server.state.received["slow-cap"] == 50 - dropped
    # Five slots, each freed by the client's 0.5 s timeout: about ten sends in one second.
    # (The server keeps sleeping after the client gives up, so its own peak is no bound.)
    assert 50 - dropped <= 15
    assert report.achieved_rate < 50 * 0.8


def test_connection_refused_is_an_error_kind_not_an_exception() -> None:
    report = asyncio.run(
        run_soak(
            f"http://127.0.0.1:{_free_port()}",
            rate=20,
            duration_s=0.25,
            timeout_s=0.5,
            window_s=0.1,
        )
    )
    _assert_consistent(report)
    assert report.sent == 5
    assert report.error_counts == {"connect": 5}
    # Due at 0, .05, .1, .15, .2 s: the ones due on a boundary open the next window.
    assert [w.sent for w in report.windows] == [2, 2, 1]


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        asyncio.run(run_soak("http://127.0.0.1:1", rate=0))
    with pytest.raises(ValueError):
        asyncio.run(run_soak("http://127.0.0.1:1", users=()))


def test_cli_exit_code_follows_min_ok(
    server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no .blendserve/api_key here
    monkeypatch.setenv("BLENDSERVE_API_KEY", "from-env")
    users_file = tmp_path / "users.txt"
    users_file.write_text("ok-cli\n\n# a comment\nbusy-cli\n", encoding="utf-8")
    out = tmp_path / "soak.json"
    common = ["--url", server.url, "--rate", "40", "--duration", "0.5", "--timeout", "0.5"]

    # Half the answers are 429: fails the default --min-ok 0.99, passes 0.4.
    assert main([*common, "--users-file", str(users_file), "--json", str(out)]) == 1
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["sent"] == 20 and data["status_counts"] == {"200": 10, "429": 10}
    assert data["ok_share"] == pytest.approx(0.5)
    assert server.state.auth["Bearer from-env"] == 20
    assert main([*common, "--users-file", str(users_file), "--min-ok", "0.4"]) == 0
    assert "soak POST" in capsys.readouterr().out

    # The key file in .blendserve/ wins over the environment; --api-key over both.
    (tmp_path / ".blendserve").mkdir()
    (tmp_path / ".blendserve" / "api_key").write_text("from-file\n", encoding="utf-8")
    assert main([*common, "--users", "ok-cli"]) == 0
    assert server.state.auth["Bearer from-file"] == 20
    assert main([*common, "--users", "ok-cli", "--api-key", "from-flag"]) == 0
    assert server.state.auth["Bearer from-flag"] == 20


def test_the_lean_open_loop_client_counts_answers_like_the_soak_client(server: Server) -> None:
    """benchmarks/open_loop.py over raw keep-alive connections: same report shape,
    every request counted once, statuses and degraded answers told apart."""
    users = ("ok-lean", "deg-lean", "busy-lean", "slow-lean")
    bodies = [{"user_id": user, "k": 10} for user in users]
    report = run_open_loop(  # on uvloop, as the chaos suite runs it
        server.url,
        "/v1/recommend/home",
        bodies,
        rate=80,
        duration_s=2.0,
        headers={"Authorization": "Bearer lean"},
        timeout_s=0.5,
        window_s=0.5,
    )
    assert gc.isenabled(), "the garbage collector runs again afterwards"
    _assert_consistent(report)
    quarter = report.sent // 4
    assert report.sent == 160
    assert report.status_counts == {200: 2 * quarter, 429: quarter}
    assert report.error_counts == {"timeout": quarter}
    assert report.degraded == quarter and report.retry_after_seen == quarter
    assert sum(server.state.received[u] for u in users) == report.sent
    assert server.state.auth["Bearer lean"] == report.sent


def test_the_lean_client_drops_past_its_in_flight_cap(server: Server) -> None:
    report = asyncio.run(
        open_loop(
            server.url,
            "/v1/recommend/home",
            [{"user_id": "slow-lean-cap", "k": 1}],
            rate=50,
            duration_s=1.0,
            timeout_s=2.0,
            max_connections=5,
        )
    )
    _assert_consistent(report)
    assert report.status_counts == {200: 5} and report.error_counts == {DROPPED_BY_CLIENT: 45}
    assert server.state.peak_in_flight["slow-lean-cap"] == 5
    rate = closed_loop_rate(server.url, "/v1/recommend/home", [{"user_id": "ok-cl"}], {}, 0.5)
    assert rate > 50, "sixteen clients each waiting for their answer"


def test_the_sustained_rate_is_the_last_step_answered_in_full(server: Server) -> None:
    bodies = [{"user_id": "capped-a", "k": 3}]
    rate = sustained_rate(
        server.url,
        "/v1/recommend/home",
        bodies,
        {},
        start=25,
        step=50,
        step_s=1.5,
        budget_ms=500,
        limit=400,
    )
    # 25 and 75/s pass; 125/s is refused past 100 in a second, so the climb stops.
    assert rate == 75
    # A budget no answer meets fails the first step.
    too_tight = dict(start=40, step=40, step_s=1.0, budget_ms=0.0001, limit=400)
    assert sustained_rate(server.url, "/v1/recommend/home", bodies, {}, **too_tight) == 0
