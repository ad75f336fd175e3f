"""What the dashboard's browser tests share: Debian's Chromium driven by Playwright, `tc-scheduler
run` on this repository's own jobs against the emulator, signing in by the page, screenshots."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from tests.emulator import Emulator
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import taskcluster_environment
from tests.support.projects import OWN_CRON, OWN_TEMPLATE
from tests.support.repos import Repository
from tests.support.service import Service
from tests.support.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = REPOSITORY_ROOT / "docs" / "screenshots"
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 900}

# The browser tests' `pytestmark`: skipped where Debian's chromium is not installed.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (scripts/ensure-chromium installs it)"
)

# A time at which none of this repository's jobs is due, nor becomes due for ten minutes: the
# service's ticks make no task of their own while a test looks at the queue.
QUIET = datetime(2026, 12, 1, 9, 50, tzinfo=UTC)


def write_config(tmp_path: Path, emulator: Emulator, settings: str) -> Path:
    """A service.yml running this repository's own jobs, from a real git repository, with
    `settings` (lines of YAML: api, hooks-dir, ...) before its projects."""
    repository = Repository(
        tmp_path / "tc-scheduler", {".cron.yml": OWN_CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = tmp_path / "service.yml"
    config.write_text(
        f"ledger: sqlite:///{tmp_path / 'ledger.db'}\n"
        f"state-dir: {tmp_path / 'state'}\n"
        f"{settings}"
        "projects:\n"
        "  - name: tc-scheduler\n"
        "    repository: https://github.com/taskcluster/tc-scheduler\n"
        f"    fetch-from: {repository.url}\n"
        "    trust-domain: tcs\n"
    )
    return config


@contextmanager
def serving(config: Path, emulator: Emulator) -> Iterator[tuple[str, Service]]:
    """`tc-scheduler run` on `config`: the URL it serves, and the process."""
    env = {**os.environ, **taskcluster_environment(emulator)}
    service = Service([sys.executable, "-m", "scheduler", "run", "--config", str(config)], env)
    try:
        assert wait_until(lambda: service_url(service) is not None)
        url = service_url(service)
        assert url is not None
        yield url, service
    finally:
        assert service.stop() == 0


def service_url(service: Service) -> str | None:
    """The URL the service said it serves the API on, once it has."""
    for line in list(service.lines):
        if line.get("event") == "serving the API":
            return str(line["url"])
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(
    browser: Browser,
    url: str,
    token: str,
    *,
    start: str,
    viewport: ViewportSize,
    shot: str | None = None,
) -> Page:
    """A page of a new browser context, signed in with `token` by keyboard from the link of the
    page `start` shows before that (a page that needs signing in); `shot`: the name to save the
    sign-in page under (`shoot`), before the token is typed."""
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(url + start)
    assert page.locator("h1").inner_text() == "Sign in needed"
    page.get_by_role("link", name="Sign in").first.click()
    page.wait_for_url("**/sign-in")
    if shot is not None:
        shoot(page, shot)
    field = page.get_by_label("API token")
    field.fill(token)
    field.press("Enter")
    page.wait_for_url("**/?notice=signed-in")
    return page


def shoot(page: Page, name: str) -> None:
    """Save the page to docs/screenshots/<name>.png when TC_SCHEDULER_SCREENSHOTS=1."""
    if os.environ.get("TC_SCHEDULER_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
