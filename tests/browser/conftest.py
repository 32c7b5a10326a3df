"""Browser tests: Debian's Chromium driven by Playwright against daphne and the suite's real Celery worker.

Playwright's own browser download is not available here, so the tests launch the system Chromium. A missing
Chromium fails every browser test with how to install it; `FLOWNOVA_SKIP_BROWSER_TESTS=1` skips them on
purpose instead (never silently).

While Playwright's sync API is open, this thread counts as running an asyncio loop: Django refuses ORM calls
from it and `async_to_sync` refuses to start. So the browser lives for this package only (one browser for
all the browser tests of a session), and `DJANGO_ALLOW_ASYNC_UNSAFE` is set only while it is open: the ORM
calls of these tests still run synchronously on this thread, the loop just sits idle between Playwright calls.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.conftest import ROOT, ServerProcess, WorkerProcess, service_env, start_daphne, stop_process

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium phones home at start; the closed network refuses it and the launch is slow.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
INSTALL_HINT = (
    "Browser tests need Debian's Chromium: `sudo apt-get install -y chromium` (or set CHROMIUM to its path). "
    "Set FLOWNOVA_SKIP_BROWSER_TESTS=1 to skip them knowingly."
)


def chromium_executable() -> str | None:
    candidate = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return candidate if Path(candidate).is_file() and os.access(candidate, os.X_OK) else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Decided before any fixture starts the worker and daphne, so a skip costs nothing and a missing Chromium
    fails at once."""
    if os.environ.get("FLOWNOVA_SKIP_BROWSER_TESTS") == "1":
        pytest.skip("browser tests skipped: FLOWNOVA_SKIP_BROWSER_TESTS=1")
    if chromium_executable() is None:
        pytest.fail(f"Chromium was not found. {INSTALL_HINT}", pytrace=False)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    executable = chromium_executable()
    assert executable is not None  # pytest_runtest_setup failed the test otherwise
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=30_000)
        expect.set_options(timeout=TIMEOUT_MS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def daphne_server(django_db_setup: None, celery_worker: WorkerProcess) -> Iterator[ServerProcess]:
    """daphne on a loopback port, on the test database and Redis, with the suite's worker running the runs."""
    server = start_daphne(service_env())
    yield server
    stop_process(server.process)


@dataclass
class PageProblems:
    """Console errors and uncaught exceptions of the pages a test opened. Any of them fails the test, except
    the ones the test declares it provokes (`allow`), e.g. the browser's log line for a deliberate 400."""

    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [problem for problem in self.seen if not any(p.search(problem) for p in self.allowed)]


def _watch(page: Page, problems: PageProblems) -> None:
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location.get("url", "")
            problems.seen.append(f"console error on {page.url}: {message.text} ({location})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.seen.append(f"uncaught {error.name} on {page.url}: {error.message}"))


def log_in(page: Page, base_url: str, username: str) -> None:
    """Through the real login form, as a person does (the personas' password is `<username>-password`)."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(f"{username}-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def open_page(
    request: pytest.FixtureRequest, browser: Browser, daphne_server: ServerProcess, page_problems: PageProblems
) -> Iterator[Callable[..., Page]]:
    """`open_page(user)`: a new browser context (its own cookies) logged in as `user`. On teardown every page
    is screenshotted to test-artifacts/screenshots/ and the test fails if any page logged an error."""
    contexts: list[tuple[str, BrowserContext]] = []

    def open_(user: User) -> Page:
        context = browser.new_context(viewport=VIEWPORT, base_url=daphne_server.base_url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append((user.get_username(), context))
        context.on("page", lambda new: _watch(new, page_problems))
        page = context.new_page()
        log_in(page, daphne_server.base_url, user.get_username())
        return page

    yield open_

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    for index, (username, context) in enumerate(contexts):
        suffix = "" if index == 0 else f"-{username}"
        for number, page in enumerate(context.pages):
            extra = "" if number == 0 else f"-{number}"
            try:
                page.screenshot(path=SCREENSHOTS / f"{name}{suffix}{extra}.png", full_page=True)
            except Error as exc:  # a screenshot that fails must not hide the test's own outcome
                page_problems.seen.append(f"screenshot failed: {exc}")
    # Collected before closing: a page torn down mid-request may log noise that is not the test's doing.
    unexpected = page_problems.unexpected()
    for _, context in contexts:
        context.close()
    if unexpected:
        pytest.fail("the pages logged errors:\n" + "\n".join(unexpected), pytrace=False)


@pytest.fixture
def page(open_page: Callable[..., Page], alice: User) -> Page:
    """A page logged in as alice, who owns the test's workflows."""
    return open_page(alice)
