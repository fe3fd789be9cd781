"""One real `lightguard serve` (hashing encoder, fixture data) and one headless Chromium for the console's tests.

Both are module-scoped: the browser tests run once against one server, each test in a fresh browser context (its
own session storage, so it signs in anew). A failing test leaves a screenshot under reports/console/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from benchmarks.browser import INSTALL_HINT, chromium_path, launch_chromium
from tests.service.support import ROOT, lightguard_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REPORTS = ROOT / "reports" / "console"


@dataclass(frozen=True)
class ConsoleServer:
    base: str
    admin_key: str
    classify_key: str

    def api(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}"}
        return httpx.request(method, f"{self.base}{path}", headers=headers, timeout=30, **kwargs)


def _need_browser() -> None:
    """Skip without Chromium or Playwright locally; fail under LIGHTGUARD_REQUIRE_BROWSER (CI sets it)."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "Playwright for Python is not installed (pip install -e '.[dev]')"
    if problem is None and chromium_path() is None:
        problem = f"no Chromium executable; {INSTALL_HINT}"
    if problem is None:
        return
    if os.environ.get("LIGHTGUARD_REQUIRE_BROWSER"):
        pytest.fail(f"the console's browser tests are required (LIGHTGUARD_REQUIRE_BROWSER) but {problem}")
    pytest.skip(problem)


@pytest.fixture(scope="module")
def bare_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The module's one server, started without any key (open); `console_server` then creates its keys."""
    _need_browser()
    home = tmp_path_factory.mktemp("console")
    # the log keeps raw texts, so the decisions page shows them as a deployment with LIGHTGUARD_LOG_TEXT would
    with lightguard_server(home, "", env={"LIGHTGUARD_LOG_TEXT": "true"}) as srv:
        yield srv.base


@pytest.fixture(scope="module")
def console_server(bare_server: str) -> ConsoleServer:
    """The same server once it has an admin key (the first key turns authentication on) and a classify key."""
    admin = httpx.post(f"{bare_server}/v1/keys", json={"role": "admin", "name": "console-admin"}, timeout=30)
    assert admin.status_code == 201, admin.text
    token = admin.json()["token"]
    created = httpx.post(
        f"{bare_server}/v1/keys",
        json={"role": "classify", "name": "console-classify"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return ConsoleServer(bare_server, token, created.json()["token"])


@pytest.fixture(scope="module")
def browser(bare_server: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh context at 1280 px; on failure its screenshot goes to reports/console/<test>.png."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        if request.node.stash.get(FAILED, False):
            REPORTS.mkdir(parents=True, exist_ok=True)
            shot = REPORTS / f"{request.node.name}.png"
            tab.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
        context.close()
