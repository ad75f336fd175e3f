"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): `tc-scheduler run`
on this repository's own jobs against the emulator, the overview's next fires, a project page
and a fire page. With TC_SCHEDULER_SCREENSHOTS=1 it saves each page to docs/screenshots/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.emulator import Emulator
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import REPOSITORY_ROLES, taskcluster_environment
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
DAY = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # the nightly job's slot
TICK = [sys.executable, "-m", "scheduler", "tick"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no /usr/bin/chromium (scripts/ensure-chromium installs it)"
)


def test_overview_project_and_fire_pages_in_chromium(tmp_path: Path) -> None:
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        emulator.clock.set(DAY, frozen=True)
        repository = Repository(
            tmp_path / "tc-scheduler", {".cron.yml": OWN_CRON, ".taskcluster.yml": OWN_TEMPLATE}
        )
        config = tmp_path / "service.yml"
        config.write_text(
            f"ledger: sqlite:///{tmp_path / 'ledger.db'}\n"
            f"state-dir: {tmp_path / 'state'}\n"
            "api: {listen: '127.0.0.1:0'}\n"
            "projects:\n"
            "  - name: tc-scheduler\n"
            "    repository: https://github.com/taskcluster/tc-scheduler\n"
            f"    fetch-from: {repository.url}\n"
            "    trust-domain: tcs\n"
        )
        env = {**os.environ, **taskcluster_environment(emulator)}
        # A slot evaluated before the service starts: fires for the history.
        ticked = subprocess.run(
            [*TICK, "--config", str(config), "--at", DAY.isoformat()],
            cwd=REPOSITORY_ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert ticked.returncode == 0, ticked.stderr
        service = Service([sys.executable, "-m", "scheduler", "run", "--config", str(config)], env)
        try:
            assert wait_until(lambda: _url(service) is not None)
            url = _url(service)
            assert url is not None
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.goto(url + "/")
                    assert page.locator("h1").inner_text() == "Overview"
                    next_fires = page.locator("section", has=page.locator("#next"))
                    assert next_fires.locator("tbody tr").count() > 0
                    assert "tc-scheduler" in next_fires.inner_text()
                    _shoot(page, "overview")
                    _refreshes_in_place(page, config, env)
                    page.get_by_role("link", name="tc-scheduler", exact=True).last.click()
                    page.wait_for_url("**/projects/tc-scheduler")
                    assert page.locator("h1").inner_text() == "Project tc-scheduler"
                    assert page.locator("#jobs").is_visible()
                    _shoot(page, "project")
                    page.locator("table.grid a.cell").first.click()
                    page.wait_for_url("**/fires/*")
                    assert page.locator("h1").inner_text().startswith("Fire ")
                    assert "What was sent" in page.content()
                    _shoot(page, "fire")
                    page.goto(url + "/audit")
                    _shoot(page, "audit")
                finally:
                    browser.close()
        finally:
            assert service.stop() == 0
        emulator.assert_conforming()


def _refreshes_in_place(page: Page, config: Path, env: dict[str, str]) -> None:
    """A fire made meanwhile (a dry run, by the command line) shows once the script refreshes
    the page's sections: no reload (the window keeps what was set on it), the time updated."""
    recent = page.locator("section", has=page.locator("#recent"))
    assert "dry-run" not in recent.inner_text()
    page.evaluate("window.stillThisPage = true")
    fired = subprocess.run(
        [
            sys.executable,
            "-m",
            "scheduler",
            "fire",
            "--config",
            str(config),
            "--dry-run",
            "tc-scheduler",
            "integration",
        ],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert fired.returncode == 0, fired.stderr
    page.evaluate("window.tcSchedulerRefresh()")  # what the 30 s timer does
    assert wait_until(lambda: "dry-run" in recent.inner_text())
    assert page.evaluate("window.stillThisPage") is True
    assert "Updated" in page.locator("p.refresh").inner_text()
    page.get_by_role("button", name="Pause updates").click()
    assert page.get_by_role("button", name="Resume updates").get_attribute("aria-pressed") == "true"


def _url(service: Service) -> str | None:
    for line in list(service.lines):
        if line.get("event") == "serving the API":
            return str(line["url"])
    return None


def _shoot(page: Page, name: str) -> None:
    if os.environ.get("TC_SCHEDULER_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
