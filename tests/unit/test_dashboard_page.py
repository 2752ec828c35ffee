"""The live dashboard page (deployments/api/static/dashboard.html) in a real headless Chromium.

A stdlib HTTP server on 127.0.0.1 serves the real file at /dashboard and a stub of
GET /v1/dashboard that checks the Bearer key and changes its numbers on every call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from browser import chromium, new_page
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

PAGE = Path(__file__).resolve().parents[2] / "deployments" / "api" / "static" / "dashboard.html"
ADMIN_KEY = "bsk_admin-test+key/="  # '+', '/' and '=' must survive the fragment
INFER_KEY = "bsk_infer-only"
DASH = "\u2014"  # em dash: what the page shows for a missing number
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def _arm(weight: int, requests: int, clicks: int, impressions: int) -> dict[str, Any]:
    ctr = clicks / impressions
    return {
        "weight": weight,
        "requests": requests,
        "impressions": impressions,
        "clicks": clicks,
        "ctr": ctr,
        "ctr_low": ctr * 0.9,
        "ctr_high": ctr * 1.1,
        "lift": None,
        "lift_low": None,
        "lift_high": None,
        "p_value": None,
        "prob_beat_control": None,
        "significant": False,
    }


def _payload(n: int) -> dict[str, Any]:
    """The n-th answer of a busy service: every number moves with n."""
    clicky = _arm(60, 1800 + n, 700 + 10 * n, 9000)
    clicky.update(lift=0.4, lift_low=0.3, lift_high=0.5, p_value=0.0002)
    clicky.update(prob_beat_control=0.999, significant=True)
    return {
        "generated_at": f"2026-11-28T23:10:{n % 60:02d}+00:00",
        "window_s": 60,
        "traffic": {
            "requests_per_s": 10.0 + n,
            "p50_ms": 8.0 + n / 10,
            "p99_ms": 20.0 + n,
            "degraded_share": 0.01 * (n % 5 + 1),
            "requests": 600 + 60 * n,
            "by_use_case": {
                "home": {
                    "requests_per_s": 10.0,
                    "p50_ms": 7.9,
                    "p99_ms": 18.0,
                    "degraded_share": 0.0,
                }
            },
        },
        "models": {
            "mf": {
                "status": "serving",
                "versions": [
                    {"version": "1", "role": "live", "status": "serving", "traffic_percent": 80.0},
                    {
                        "version": "2",
                        "role": "canary",
                        "status": "rolled_back",
                        "traffic_percent": 0.0,
                        "reason": "error rate 0.2 above 0.05",
                    },
                ],
            }
        },
        "experiments": {
            "discover.ab": {
                "name": "discover.ab",
                "kind": "experiment",
                "control": "taste",
                "arms": {"taste": _arm(40, 1200, 450 + n, 9000), "clicky": clicky},
                "srm": {"p_value": 0.41, "mismatch": False},
                "winner": "clicky",
                "verdict": "clicky beats taste: +40% CTR",
            },
            "home.split": {
                "name": "home.split",
                "kind": "experiment",
                "control": "a",
                "arms": {"a": _arm(50, 900, 40, 1000), "b": _arm(50, 1300, 45, 1000)},
                "srm": {"p_value": 0.00001, "mismatch": True},
                "winner": None,
                "verdict": "no winner yet",
            },
            "discover.head_to_head": {
                "name": "discover.head_to_head",
                "kind": "interleave",
                "teams": ["taste", "clicky"],
                "requests_with_clicks": 300 + n,
                "wins": {"taste": 100, "clicky": 160 + n},
                "ties": 40,
                "p_value": 0.0002,
                "preferred": "clicky",
                "verdict": "users prefer clicky",
            },
        },
    }


def _null_payload() -> dict[str, Any]:
    """A service with no traffic yet: every statistic is null."""
    empty_arm = dict.fromkeys(_arm(50, 1, 1, 1), None) | {"weight": 50, "significant": False}
    return {
        "generated_at": "2026-11-28T23:10:04+00:00",
        "window_s": 60,
        "traffic": {
            "requests_per_s": None,
            "p50_ms": None,
            "p99_ms": None,
            "degraded_share": None,
            "requests": None,
            "by_use_case": {},
        },
        "models": {"mf": {"status": "loading", "versions": []}},
        "experiments": {
            "discover.ab": {
                "name": "discover.ab",
                "kind": "experiment",
                "control": "taste",
                "arms": {"taste": empty_arm, "clicky": empty_arm},
                "srm": {"p_value": None, "mismatch": False},
                "winner": None,
                "verdict": None,
            },
            "discover.head_to_head": {
                "name": "discover.head_to_head",
                "kind": "interleave",
                "teams": ["taste", "clicky"],
                "requests_with_clicks": 0,
                "wins": {"taste": 0, "clicky": 0},
                "ties": 0,
                "p_value": None,
                "preferred": None,
                "verdict": None,
            },
        },
    }


def _hostile_payload() -> dict[str, Any]:
    """Markup in every free-text field the service could echo from a config or a model."""
    payload = _payload(1)
    experiment = payload["experiments"]["discover.ab"]
    experiment["verdict"] = HOSTILE
    experiment["arms"][HOSTILE] = experiment["arms"].pop("clicky")
    payload["models"]["mf"]["versions"][1]["reason"] = HOSTILE
    return payload


@dataclass
class DashboardStub:
    """What the stub server answers and what it saw."""

    mode: str = "busy"
    calls: int = 0
    request_lines: list[str] = field(default_factory=list)

    def answer(self, authorization: str | None) -> tuple[int, dict[str, Any]]:
        if authorization == f"Bearer {INFER_KEY}":
            return 403, {"error": {"code": "forbidden", "message": "needs scope admin"}}
        if authorization != f"Bearer {ADMIN_KEY}":
            return 401, {"error": {"code": "unauthenticated", "message": "unknown API key"}}
        self.calls += 1
        if self.mode == "nulls":
            return 200, _null_payload()
        if self.mode == "hostile":
            return 200, _hostile_payload()
        if self.mode == "steady":
            return 200, _payload(1)
        return 200, _payload(self.calls)


def _handler(stub: DashboardStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.request_lines.append(self.requestline)
            if self.path == "/dashboard":
                self._send(200, "text/html; charset=utf-8", PAGE.read_bytes())
            elif self.path == "/v1/dashboard":
                status, body = stub.answer(self.headers.get("Authorization"))
                self._send(status, "application/json", json.dumps(body).encode())
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if status == 401:
                self.send_header("WWW-Authenticate", "Bearer")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request lines are kept in stub.request_lines instead

    return Handler


@pytest.fixture
def stub() -> Iterator[DashboardStub]:
    """A stub service on 127.0.0.1, a free port, for one test."""
    yield DashboardStub()


@pytest.fixture
def base_url(stub: DashboardStub) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module; each test gets a fresh context."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser, base_url: str) -> Iterator[Page]:
    with new_page(browser, base_url=base_url, timeout_s=5.0) as opened:
        yield opened


def _text(page: Page, testid: str) -> str:
    return page.get_by_test_id(testid).inner_text().strip()


def _open_with_key(page: Page, key: str = ADMIN_KEY) -> None:
    page.goto("/dashboard#key=" + key.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"))


def test_numbers_render_from_the_json(page: Page, stub: DashboardStub) -> None:
    """Traffic, CTR per arm with its interval, verdicts and model versions all show."""
    # The same answer on every poll: on a slow machine the next poll may land between
    # two of the reads below (the refresh test covers numbers that move).
    stub.mode = "steady"
    _open_with_key(page)
    expect(page.get_by_test_id("rps")).to_have_text("11.0")
    assert _text(page, "p50") == "8.1 ms"
    assert _text(page, "p99") == "21.0 ms"
    assert _text(page, "degraded") == "2.0%"
    assert _text(page, "requests") == "660"
    assert _text(page, "updated") != DASH
    assert _text(page, "arm-discover.ab-taste-ctr") == "5.01%"
    assert _text(page, "arm-discover.ab-taste-interval") == "4.51% \u2013 5.51%"
    assert _text(page, "arm-discover.ab-clicky-ctr") == "7.89%"
    assert _text(page, "arm-discover.ab-clicky-lift").startswith("+40.0%")
    assert _text(page, "verdict-discover.ab") == "clicky beats taste: +40% CTR"
    assert _text(page, "verdict-discover.head_to_head") == "users prefer clicky"
    assert _text(page, "team-discover.head_to_head-clicky-wins") == "161"
    assert _text(page, "model-mf-version-1-traffic") == "80%"
    assert _text(page, "model-mf-version-2-status") == "rolled back"
    assert "error rate 0.2" in _text(page, "model-mf-version-2")
    assert _text(page, "usecase-home-p99") == "18.0 ms"


def test_numbers_refresh_within_five_seconds(page: Page, stub: DashboardStub) -> None:
    """The next poll's numbers replace the first ones, and the sparkline gains a point."""
    _open_with_key(page)
    expect(page.get_by_test_id("rps")).to_have_text("11.0")
    first_ctr = _text(page, "arm-discover.ab-taste-ctr")
    expect(page.get_by_test_id("rps")).not_to_have_text("11.0", timeout=5000)
    assert stub.calls >= 2
    assert _text(page, "arm-discover.ab-taste-ctr") != first_ctr
    points = page.locator('[data-testid="spark-rps"] polyline').get_attribute("points") or ""
    assert len(points.split()) >= 2


def test_the_key_leaves_the_address_bar_and_no_url(page: Page, stub: DashboardStub) -> None:
    """The fragment's key is stored for the tab, removed from the URL, never in a request
    line; it still authorises the polls."""
    _open_with_key(page)
    expect(page.get_by_test_id("rps")).not_to_have_text(DASH)
    assert "key" not in page.url and "#" not in page.url
    stored = page.evaluate("() => sessionStorage.getItem('blendserve.dashboard.key')")
    assert stored == ADMIN_KEY
    assert stub.calls >= 1
    assert not any("key" in line or ADMIN_KEY in line for line in stub.request_lines)


@pytest.mark.parametrize(("key", "status"), [("bsk_wrong", "401"), (INFER_KEY, "403")])
def test_a_refused_key_shows_the_error_and_the_form(page: Page, key: str, status: str) -> None:
    """401 and 403 each say what is wrong, hide the data and ask for a key again; a good
    key pasted into the form then shows the dashboard."""
    _open_with_key(page, key)
    expect(page.get_by_test_id("key-form")).to_be_visible()
    expect(page.get_by_test_id("notice")).to_contain_text(status)
    expect(page.get_by_test_id("rps")).to_be_hidden()
    assert page.evaluate("() => sessionStorage.getItem('blendserve.dashboard.key')") is None
    page.get_by_test_id("key-input").fill(ADMIN_KEY)
    page.get_by_test_id("key-submit").click()
    expect(page.get_by_test_id("rps")).to_have_text("11.0")
    expect(page.get_by_test_id("key-form")).to_be_hidden()
    expect(page.get_by_test_id("notice")).to_be_hidden()


def test_without_a_key_the_form_shows_and_nothing_is_fetched(
    page: Page, stub: DashboardStub
) -> None:
    """No key: only the form, and no call to the API."""
    page.goto("/dashboard")
    expect(page.get_by_test_id("key-form")).to_be_visible()
    expect(page.get_by_test_id("key-input")).to_be_focused()
    assert stub.calls == 0
    assert not any("/v1/dashboard" in line for line in stub.request_lines)


def test_null_values_show_as_an_em_dash(page: Page, stub: DashboardStub) -> None:
    """No traffic yet: every missing number is '—', never 'null', 'NaN' or 'undefined'."""
    stub.mode = "nulls"
    _open_with_key(page)
    expect(page.get_by_test_id("verdict-discover.ab")).to_be_visible()
    for testid in ("rps", "p50", "p99", "degraded", "requests"):
        assert _text(page, testid) == DASH, testid
    for column in ("ctr", "interval", "lift", "prob", "p", "requests"):
        assert _text(page, f"arm-discover.ab-taste-{column}") == DASH, column
    assert _text(page, "interleave-discover.head_to_head-p") == DASH
    body = page.locator("body").inner_text()
    for word in ("null", "NaN", "undefined", "Infinity"):
        assert word not in body, word


def test_srm_mismatch_is_highlighted(page: Page) -> None:
    """A sample ratio mismatch is a visible warning; a healthy split is a quiet note."""
    _open_with_key(page)
    mismatch = page.get_by_test_id("srm-home.split")
    expect(mismatch).to_contain_text("Sample ratio mismatch")
    expect(mismatch).to_have_class("srm mismatch")
    expect(page.get_by_test_id("srm-discover.ab")).not_to_contain_text("mismatch")


def test_markup_in_the_json_is_shown_as_text(page: Page, stub: DashboardStub) -> None:
    """A `<script>` or an `<img onerror>` in a verdict, an arm name or a model note is
    shown literally and never runs."""
    stub.mode = "hostile"
    _open_with_key(page)
    verdict = page.get_by_test_id("verdict-discover.ab")
    expect(verdict).to_have_text(HOSTILE)
    assert verdict.locator("script, img").count() == 0
    assert _text(page, f"arm-discover.ab-{HOSTILE}-ctr") == "7.89%"
    assert HOSTILE in _text(page, "model-mf-version-2")
    assert page.locator("main img, main script").count() == 0
    page.wait_for_timeout(300)  # give an injected onerror handler its chance to fire
    assert page.evaluate("() => window.__pwned") is None
