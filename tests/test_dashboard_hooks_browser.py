"""The hooks page in a real headless Chromium (Debian's, driven by Playwright): `tc-scheduler run`
with a hooks folder against the emulator; an operator signs in through the sign-in page, a
payload that breaks the hook's schema is refused in the page with nothing triggered, a good one
fires and the page names its task."""

from __future__ import annotations

import secrets
from pathlib import Path

from playwright.sync_api import expect

from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.support.browser import (
    DESKTOP,
    QUIET,
    chromium,
    needs_chromium,
    serving,
    shoot,
    sign_in,
    write_config,
)
from tests.support.emulated import REPOSITORY_ROLES
from tests.support.hooks import REVISION, deploy, hook_file, write_hook

pytestmark = needs_chromium
OPERATOR = "op-" + secrets.token_urlsafe(24)


def test_the_hooks_page_refuses_a_bad_payload_and_fires_a_good_one(tmp_path: Path) -> None:
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        emulator.clock.set(QUIET, frozen=True)
        nightly = hook_file("nightly")
        write_hook(tmp_path / "hooks", nightly)
        deploy(emulator, nightly)
        config = write_config(
            tmp_path,
            emulator,
            "hooks-dir: hooks\n"
            "api:\n"
            "  listen: '127.0.0.1:0'\n"
            f"  tokens: [{{name: sheriffs, role: operator, sha256: {hash_token(OPERATOR)}}}]\n",
        )
        with serving(config, emulator) as (url, service), chromium() as browser:
            page = sign_in(browser, url, OPERATOR, start="/hooks", viewport=DESKTOP, shot="sign-in")
            page.get_by_role("link", name="Hooks", exact=True).click()
            page.wait_for_url("**/hooks")
            assert page.locator("h1").inner_text() == "Hooks"
            assert "Signed in as sheriffs (operator)" in page.locator("header").inner_text()
            hook = page.locator("section.hook", has=page.locator("h2", has_text="g/nightly"))
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
            page.wait_for_url("**/audit?notice=hook-fired")
            [task] = emulator.tasks()
            expect(page.get_by_role("status")).to_contain_text("Hook fired")
            expect(page.locator("main")).to_contain_text("sheriffs (dashboard)")
            expect(page.locator("main")).to_contain_text(
                f"triggered g/nightly: task {task.task_id}"
            )
            # Its fire is the hook's last one now, linked to its task.
            page.get_by_role("link", name="Hooks", exact=True).click()
            page.wait_for_url("**/hooks")
            expect(hook.locator("table").last).to_contain_text(task.task_id)
            shoot(page, "hooks")
        assert OPERATOR not in repr(service.lines)
        emulator.assert_conforming()
