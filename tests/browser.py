"""Headless Chromium for the browser tests: Debian's system build, driven by Playwright.

Never a browser download: ``make test`` installs Debian's ``chromium`` package with
apt-get and the ``playwright`` Python package with the ``dev`` extra, and nothing
runs ``playwright install``. Playwright is pointed at the system binary through
``executable_path``. ``BLENDSERVE_CHROMIUM`` names another binary (e.g. a Chrome on a
developer's laptop).

A missing browser is a test failure, not a skip: a green run must mean the pages
were really checked.

    with chromium_page(base_url=deployed.url) as page:
        page.goto("/dashboard#key=" + ADMIN_KEY)
        expect(page.get_by_test_id("rps")).not_to_have_text("—")
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

__all__ = ["CHROMIUM_ENV", "chromium", "chromium_page", "find_chromium", "new_page"]

CHROMIUM_ENV = "BLENDSERVE_CHROMIUM"
"""Environment variable naming the Chromium binary to use instead of the system one."""

_NAMES = ("chromium", "chromium-browser")
"""What Debian (``chromium``) and Ubuntu or older Debian (``chromium-browser``) install."""

_INSTALL_HINT = (
    "`make test` installs it (Debian's package: `apt-get install -y chromium`; "
    "the driver: `pip install -e '.[dev]'`, which brings playwright)"
)

_LAUNCH_ARGS = [
    # Containers often give /dev/shm 64 MB, too little for Chromium's renderer.
    "--disable-dev-shm-usage",
]


def find_chromium() -> str:
    """The path of the Chromium to drive: ``$BLENDSERVE_CHROMIUM``, else the first of
    ``chromium`` and ``chromium-browser`` on ``PATH``; fails the test when none is."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        pytest.fail(
            f"{CHROMIUM_ENV}={configured!r} is not an executable file; unset it to use "
            f"the system Chromium: {_INSTALL_HINT}",
            pytrace=False,
        )
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(
        f"no Chromium for the browser tests: none of {', '.join(_NAMES)} is on PATH "
        f"and {CHROMIUM_ENV} is unset; {_INSTALL_HINT}",
        pytrace=False,
    )


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch the system Chromium headless; closed (with its driver) on exit."""
    executable = find_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"the playwright package is missing ({exc}); {_INSTALL_HINT}", pytrace=False)
    with sync_playwright() as driver:
        try:
            browser = driver.chromium.launch(
                executable_path=executable, headless=True, args=_LAUNCH_ARGS
            )
        except Exception as exc:  # noqa: BLE001 - any launch failure becomes one clear message
            pytest.fail(f"{executable} did not start headless: {exc}", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(
    browser: Browser, *, base_url: str | None = None, timeout_s: float = 10.0
) -> Iterator[Page]:
    """A page in a fresh context (its own cookies and sessionStorage) of ``browser``.

    Relative ``page.goto`` paths resolve against ``base_url``; every wait times out
    after ``timeout_s``. An uncaught JavaScript error in the page fails the test when
    the block ends, since the page would be broken for its users too.
    """
    context = browser.new_context(base_url=base_url)
    context.set_default_timeout(timeout_s * 1000)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        yield page
    finally:
        context.close()
    if errors:
        pytest.fail(f"uncaught JavaScript errors in the page: {errors}", pytrace=False)


@contextmanager
def chromium_page(*, base_url: str | None = None, timeout_s: float = 10.0) -> Iterator[Page]:
    """Launch headless Chromium and open one page: ``chromium`` and ``new_page`` in one."""
    with chromium() as browser, new_page(browser, base_url=base_url, timeout_s=timeout_s) as page:
        yield page
