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
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Locator, Page

from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.support.browser import (
    DESKTOP,
    PHONE,
    QUIET,
    chromium,
    needs_chromium,
    serving,
    shoot,
    sign_in,
    write_config,
)
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import REPOSITORY_ROLES, taskcluster_environment
from tests.support.waiting import wait_until

DAY = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # the nightly job's slot

pytestmark = needs_chromium


def test_overview_project_and_fire_pages_in_chromium(tmp_path: Path) -> None:
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        emulator.clock.set(DAY, frozen=True)
        config = write_config(tmp_path, emulator, "api: {listen: '127.0.0.1:0'}\n")
        env = {**os.environ, **taskcluster_environment(emulator)}
        # A slot evaluated before the service starts: fires for the history.
        _command(env, "tick", "--config", str(config), "--at", DAY.isoformat())
        with serving(config, emulator) as (url, _), chromium() as browser:
            page = browser.new_page(viewport=DESKTOP)
            page.goto(url + "/")
            assert page.locator("h1").inner_text() == "Overview"
            next_fires = page.locator("section", has=page.locator("#next"))
            assert next_fires.locator("tbody tr").count() > 0
            assert "tc-scheduler" in next_fires.inner_text()
            shoot(page, "overview")
            _refreshes_in_place(page, config, {**os.environ, **taskcluster_environment(emulator)})
            page.get_by_role("link", name="tc-scheduler", exact=True).last.click()
            page.wait_for_url("**/projects/tc-scheduler")
            assert page.locator("h1").inner_text() == "Project tc-scheduler"
            assert page.locator("#jobs").is_visible()
            shoot(page, "project")
            page.locator("table.grid a.cell").first.click()
            page.wait_for_url("**/fires/*")
            assert page.locator("h1").inner_text().startswith("Fire ")
            assert "What was sent" in page.content()
            shoot(page, "fire")
            page.goto(url + "/audit")
            shoot(page, "audit")
        emulator.assert_conforming()


OPERATOR = "op-browser-" + "x7Qm2v9LpR4tZ8kN3wYc6dJf"
VIEWER = "view-browser-" + "b5Hs1gT9qW2eR7uI4oP8aLk3"
PROJECT = "/projects/tc-scheduler"
JOB = "integration"


def _job_forms(page: Page, url: str) -> Locator:
    """The project page's forms of JOB, opened (a disclosure per job)."""
    page.goto(url + PROJECT)
    summary = page.locator("summary", has_text=f"Job {JOB}:")
    summary.click()
    return page.locator("details", has=summary)


def test_an_operator_acts_from_the_forms_and_a_viewer_cannot_in_chromium(tmp_path: Path) -> None:
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        emulator.clock.set(QUIET, frozen=True)
        api = (
            "api:\n"
            "  listen: 127.0.0.1:0\n"
            "  tokens:\n"
            f"    - {{name: sheriffs, role: operator, sha256: {hash_token(OPERATOR)}}}\n"
            f"    - {{name: dashboard, role: viewer, sha256: {hash_token(VIEWER)}}}\n"
        )
        config = write_config(tmp_path, emulator, api)
        with serving(config, emulator) as (url, service), chromium() as browser:
            page = sign_in(browser, url, OPERATOR, start=PROJECT, viewport=PHONE)
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
            shoot(page, "fired-on-a-phone")
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
            shoot(page, "project-acting-on-a-phone")
            page.goto(url + "/audit")
            audit = page.locator("main").inner_text()
            assert "sheriffs (dashboard)" in audit
            assert f"tc-scheduler/{JOB}" in audit
            _job_forms(page, url).get_by_role("button", name="Resume", exact=True).click()
            page.wait_for_url(f"**{PROJECT}?notice=resumed")
            fired = len(emulator.tasks())

            # A viewer sees the forms disabled; a forged post of its own is refused.
            viewer = sign_in(browser, url, VIEWER, start=PROJECT, viewport=PHONE)
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
    _command(env, "fire", "--config", str(config), "--dry-run", "tc-scheduler", "integration")
    page.evaluate("window.tcSchedulerRefresh()")  # what the 30 s timer does
    assert wait_until(lambda: "dry-run" in recent.inner_text())
    assert page.evaluate("window.stillThisPage") is True
    # The service's time (its clock starts at DAY), not the browser's, in the bar and header.
    said = page.locator("p.refresh").inner_text()
    assert re.search(r"Updated for 2026-12-01 02:\d\d UTC", said), said
    assert page.locator("header .now").inner_text().startswith("Now: 2026-12-01 02:")
    page.get_by_role("button", name="Pause updates").click()
    assert page.get_by_role("button", name="Resume updates").get_attribute("aria-pressed") == "true"


def _command(env: dict[str, str], *args: str) -> None:
    """`tc-scheduler ARGS` run to success, as an operator would in a shell beside the service."""
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
