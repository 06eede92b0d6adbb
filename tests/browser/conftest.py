"""Real Chromium through Playwright, pointed at Debian's /usr/bin/chromium.

Playwright's own browser download cannot work on this machine, so these tests use the
distribution's browser (`make browser` installs it); they fail loudly if it is missing.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between browser steps are ordinary blocking calls, which Django must be told are fine.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), f"Chromium not found at {CHROMIUM}: run `make browser`"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    # No live stream on pytest-django's threaded WSGI server: a stream only notices a closed
    # page at its next heartbeat, seconds after the test, and then touches the database in
    # whatever test runs by then. Boards fall back to polling; the live board's own tests
    # serve it over ASGI in their own contexts.
    context.route("**/live/stream/**", lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
    _wait_for_server_requests()


def _wait_for_server_requests(timeout: float = 15.0) -> None:
    """Let the live server finish what the closed page left in flight.

    A test may end while the server still answers its last request (a move holding its
    row locks, say). pytest-django flushes the database right after this fixture, and a
    TRUNCATE racing that request deadlocks on PostgreSQL, leaving rows for the next test.
    Each request runs in a thread of the server's `process_request_thread`.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = [getattr(thread, "_target", None) for thread in threading.enumerate()]
        names = {getattr(target, "__name__", "") for target in targets}
        if "process_request_thread" not in names:
            return
        time.sleep(0.05)


@pytest.fixture
def login(page, live_server):
    def log_in(user, password="demo-password"):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{live_server.url}/")
        return page

    return log_in
