"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): `tc-scheduler run`
on this repository's own jobs against the emulator, the overview's next fires, a project page
and a fire page; an operator who signs in, fires, pauses and resumes from the forms on a phone's
width, and a viewer who cannot. With TC_SCHEDULER_SCREENSHOTS=1 it saves each page to
docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from scheduler.web.auth import hash_token
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


def _write_config(tmp_path: Path, emulator: Emulator, api: str) -> Path:
    repository = Repository(
        tmp_path / "tc-scheduler", {".cron.yml": OWN_CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = tmp_path / "service.yml"
    config.write_text(
        f"ledger: sqlite:///{tmp_path / 'ledger.db'}\n"
        f"state-dir: {tmp_path / 'state'}\n"
        f"{api}"
        "projects:\n"
        "  - name: tc-scheduler\n"
        "    repository: https://github.com/taskcluster/tc-scheduler\n"
        f"    fetch-from: {repository.url}\n"
        "    trust-domain: tcs\n"
    )
    return config


@contextmanager
def _serving(config: Path, emulator: Emulator) -> Iterator[tuple[str, Service]]:
    """`tc-scheduler run` on `config`: the URL it serves, and the process."""
    env = {**os.environ, **taskcluster_environment(emulator)}
    service = Service([sys.executable, "-m", "scheduler", "run", "--config", str(config)], env)
    try:
        assert wait_until(lambda: _url(service) is not None)
        url = _url(service)
        assert url is not None
        yield url, service
    finally:
        assert service.stop() == 0


@contextmanager
def _chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_overview_project_and_fire_pages_in_chromium(tmp_path: Path) -> None:
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        emulator.clock.set(DAY, frozen=True)
        config = _write_config(tmp_path, emulator, "api: {listen: '127.0.0.1:0'}\n")
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
        with _serving(config, emulator) as (url, _), _chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url + "/")
            assert page.locator("h1").inner_text() == "Overview"
            next_fires = page.locator("section", has=page.locator("#next"))
            assert next_fires.locator("tbody tr").count() > 0
            assert "tc-scheduler" in next_fires.inner_text()
            _shoot(page, "overview")
            _refreshes_in_place(page, config, {**os.environ, **taskcluster_environment(emulator)})
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
        emulator.assert_conforming()


OPERATOR = "op-browser-" + "x7Qm2v9LpR4tZ8kN3wYc6dJf"
VIEWER = "view-browser-" + "b5Hs1gT9qW2eR7uI4oP8aLk3"
PHONE = {"width": 390, "height": 844}
PROJECT = "/projects/tc-scheduler"
JOB = "integration"


def _sign_in(browser: Browser, url: str, token: str) -> Page:
    """A phone-sized page of a new browser context, signed in with `token` by keyboard."""
    page = browser.new_context(viewport=PHONE).new_page()
    page.goto(url + PROJECT)
    assert page.locator("h1").inner_text() == "Sign in needed"
    page.get_by_role("link", name="Sign in").first.click()
    page.wait_for_url("**/sign-in")
    field = page.get_by_label("API token")
    field.fill(token)
    field.press("Enter")
    page.wait_for_url("**/?notice=signed-in")
    return page


def _job_forms(page: Page, url: str) -> Locator:
    """The project page's forms of JOB, opened (a disclosure per job)."""
    page.goto(url + PROJECT)
    summary = page.locator("summary", has_text=f"Job {JOB}:")
    summary.click()
    return page.locator("details", has=summary)


def test_an_operator_acts_from_the_forms_and_a_viewer_cannot_in_chromium(tmp_path: Path) -> None:
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        api = (
            "api:\n"
            "  listen: 127.0.0.1:0\n"
            "  tokens:\n"
            f"    - {{name: sheriffs, role: operator, sha256: {hash_token(OPERATOR)}}}\n"
            f"    - {{name: dashboard, role: viewer, sha256: {hash_token(VIEWER)}}}\n"
        )
        config = _write_config(tmp_path, emulator, api)
        with _serving(config, emulator) as (url, service), _chromium() as browser:
            page = _sign_in(browser, url, OPERATOR)
            assert "Signed in as sheriffs (operator)" in page.locator("header").inner_text()
            next_fires = page.locator("section", has=page.locator("#next"))
            assert next_fires.locator("tbody tr").count() > 0

            # A link from another site (localhost is not 127.0.0.1's site) brings no
            # SameSite=Strict cookie: the page asks again from itself, and is shown.
            elsewhere = page.context.new_page()
            elsewhere.goto(url.replace("127.0.0.1", "localhost") + "/sign-in")
            elsewhere.evaluate(
                "href => { const a = document.createElement('a'); a.href = href;"
                " a.textContent = 'the project'; document.body.append(a); }",
                url + PROJECT,
            )
            elsewhere.get_by_role("link", name="the project").click()
            elsewhere.locator("h1", has_text="Project tc-scheduler").wait_for()
            elsewhere.close()

            # Fire with an input: the fire's page, and its task in the queue.
            forms = _job_forms(page, url)
            forms.get_by_label("Cron input (JSON, optional)").fill('{"why": "by hand"}')
            forms.get_by_role("button", name="Fire now").click()
            page.wait_for_url("**/fires/*?notice=fired")
            assert page.locator("h1").inner_text().startswith("Fire ")
            _shoot(page, "fired-on-a-phone")
            shown = re.search(r"/tasks/([A-Za-z0-9_-]{22})", page.content())
            assert shown is not None
            assert wait_until(lambda: shown[1] in [t.task_id for t in emulator.tasks()])

            # Pause with a reason: on the project page and in the audit log; then resume.
            forms = _job_forms(page, url)
            forms.get_by_label("Reason").fill("tree closed for the merge day")
            forms.get_by_role("button", name="Pause", exact=True).click()
            page.wait_for_url(f"**{PROJECT}?notice=paused")
            assert (
                "tree closed for the merge day" in page.locator("#jobs").locator("..").inner_text()
            )
            _shoot(page, "project-acting-on-a-phone")
            page.goto(url + "/audit")
            audit = page.locator("main").inner_text()
            assert "sheriffs (dashboard)" in audit
            assert f"tc-scheduler/{JOB}" in audit
            _job_forms(page, url).get_by_role("button", name="Resume", exact=True).click()
            page.wait_for_url(f"**{PROJECT}?notice=resumed")
            fired = len(emulator.tasks())

            # A viewer sees the forms disabled; a forged post of its own is refused.
            viewer = _sign_in(browser, url, VIEWER)
            assert _job_forms(viewer, url).get_by_role("button", name="Fire now").is_disabled()
            assert "operators only" in viewer.locator("#act").locator("..").inner_text()
            csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
            assert csrf
            target = f"{url}{PROJECT}/jobs/{JOB}/fire"
            forged = viewer.request.post(target, form={"csrf": csrf}, max_redirects=0)
            assert forged.status == 403
            # The operator's session without its CSRF token: refused too.
            bare = page.request.post(target, form={"input": ""}, max_redirects=0)
            assert bare.status == 403
            assert len(emulator.tasks()) == fired
        logged = repr(service.lines)
        assert OPERATOR not in logged
        assert VIEWER not in logged
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
