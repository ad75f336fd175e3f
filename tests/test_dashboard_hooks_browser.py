"""The hooks page in a real headless Chromium (Debian's, driven by Playwright): `tc-scheduler run`
with a hooks folder against the emulator; a payload that breaks the hook's schema is refused in
the page with nothing triggered, a good one fires and the page names its task. Until the pages
have a sign-in, the browser sends an operator token with every request."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from scheduler.web.auth import hash_token
from tests import test_dashboard_browser as chromium_pages
from tests.emulator import Emulator
from tests.support.emulated import REPOSITORY_ROLES, taskcluster_environment
from tests.support.projects import OWN_CRON, OWN_TEMPLATE
from tests.support.repos import Repository
from tests.support.service import Service
from tests.support.waiting import wait_until
from tests.test_dashboard_browser import ARGS, CHROMIUM, _shoot, _url
from tests.test_dashboard_hooks import REVISION, deploy, hook_file, write_hook

# Skipped, as the other browser test, where Debian's chromium is not installed.
pytestmark = chromium_pages.pytestmark
OPERATOR = "op-" + secrets.token_urlsafe(24)


def test_the_hooks_page_refuses_a_bad_payload_and_fires_a_good_one(tmp_path: Path) -> None:
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        folder = tmp_path / "hooks"
        nightly = hook_file("nightly")
        write_hook(folder, nightly)
        deploy(emulator, nightly)
        repository = Repository(
            tmp_path / "tc-scheduler", {".cron.yml": OWN_CRON, ".taskcluster.yml": OWN_TEMPLATE}
        )
        config = tmp_path / "service.yml"
        config.write_text(
            f"ledger: sqlite:///{tmp_path / 'ledger.db'}\n"
            f"state-dir: {tmp_path / 'state'}\n"
            "hooks-dir: hooks\n"
            "api:\n"
            "  listen: '127.0.0.1:0'\n"
            f"  tokens: [{{name: sheriffs, role: operator, sha256: {hash_token(OPERATOR)}}}]\n"
            "projects:\n"
            "  - name: tc-scheduler\n"
            "    repository: https://github.com/taskcluster/tc-scheduler\n"
            f"    fetch-from: {repository.url}\n"
            "    trust-domain: tcs\n"
        )
        env = {**os.environ, **taskcluster_environment(emulator)}
        service = Service([sys.executable, "-m", "scheduler", "run", "--config", str(config)], env)
        try:
            assert wait_until(lambda: _url(service) is not None)
            url = _url(service)
            assert url is not None
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
                try:
                    context = browser.new_context(
                        viewport={"width": 1280, "height": 900},
                        extra_http_headers={"Authorization": f"Bearer {OPERATOR}"},
                    )
                    page = context.new_page()
                    page.goto(url + "/")
                    page.get_by_role("link", name="Hooks", exact=True).click()
                    page.wait_for_url("**/hooks")
                    assert page.locator("h1").inner_text() == "Hooks"
                    hook = page.locator(
                        "section.hook", has=page.locator("h2", has_text="g/nightly")
                    )
                    expect(hook.locator(".state").first).to_have_text("in-sync")

                    # A payload that breaks the schema: refused in the page, nothing triggered.
                    emulator.faults.add("hooks.triggerHook", script=["503"])
                    hook.get_by_label("Payload for g/nightly (JSON)").fill('{"revision": "abc"}')
                    hook.get_by_role("button", name="Fire g/nightly").click()
                    page.wait_for_url("**/hooks/g/nightly/fire")
                    alert = page.get_by_role("alert")
                    expect(alert).to_contain_text("payload.flavor: is required; add it")
                    expect(alert).to_contain_text("payload.revision: must match the pattern")
                    assert page.locator("h1").inner_text() == "Not fired: g/nightly"
                    assert emulator.faults.injected == [], "hooks.triggerHook was called"
                    assert emulator.tasks() == []
                    emulator.faults.clear()

                    # Corrected in the form the refusal shows again: fired, its task named.
                    good = f'{{"revision": "{REVISION}", "flavor": "ship"}}'
                    page.get_by_label("Payload for g/nightly (JSON)").fill(good)
                    page.get_by_role("button", name="Fire g/nightly").click()
                    page.wait_for_url("**/hooks?fired=*")
                    [task] = emulator.tasks()
                    notice = page.get_by_role("status")
                    expect(notice).to_contain_text(f"g/nightly: triggered: task {task.task_id}")
                    link = notice.get_by_role("link", name=f"task {task.task_id}")
                    assert link.get_attribute("href") == f"{emulator.root_url}/tasks/{task.task_id}"
                    # Its fire is the hook's last one now.
                    expect(hook.locator("table").last).to_contain_text(task.task_id)
                    _shoot(page, "hooks")
                finally:
                    browser.close()
        finally:
            assert service.stop() == 0
        emulator.assert_conforming()
