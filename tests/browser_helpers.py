"""One way to drive Debian's headless Chromium from the browser tests: launch, pages, login, artifacts.

Playwright drives the system browser (``executable_path``); no browser is ever downloaded. Modules
mark themselves with ``pytestmark = [*BROWSER_MARKS, ...]`` and take the ``browser`` fixture (tests/
conftest.py imports it, so every test module has it) or open one with ``chromium()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"  # screenshots, kept by the CI run
WAIT_MS = 20_000  # the machine is shared: generous waits on conditions, never fixed sleeps

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Playwright's Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def new_page(browser: Any, width: int = 1280, height: int = 800, **options: Any) -> Any:
    """A page in a fresh context (its own cookies), ``width`` x ``height`` CSS pixels."""
    page = browser.new_context(viewport={"width": width, "height": height}, **options).new_page()
    page.set_default_timeout(WAIT_MS)
    return page


def wait_js(page: Any, condition: str) -> None:
    page.wait_for_function(condition, timeout=WAIT_MS)


def log_in(page: Any, base_url: str, name: str, password: str, *, lands_on: str = "/") -> None:
    """Log in through the login form (the box's and the plant view's share its ids) and wait for ``lands_on``."""
    base = base_url.rstrip("/")
    page.goto(f"{base}/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_url(f"{base}{lands_on}")


def watch_problems(page: Any) -> list[str]:
    """Script errors and failed responses (but a missing favicon) on ``page``, collected as they happen."""
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)  # fmt: skip
    return problems


def shot(page: Any, name: str, **options: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), **options)
