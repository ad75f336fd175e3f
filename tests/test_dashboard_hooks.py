"""The hooks page through the real app and a real HTTP client, over a service against the
emulator: the folder against the deployment (in sync, drift, missing, undeclared, a bad file,
Taskcluster down), last fires, the fire form's checks and who may fire (an operator signed in,
with the session's CSRF token), and no secret shown."""

from __future__ import annotations

import asyncio
import html
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import taskcluster

from scheduler.config.model import ApiSettings, ApiToken, Config, Credentials
from scheduler.ledger import Ledger
from scheduler.operations.acts import HOOKS_FRESH_FOR, Operations
from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.support.dashboard import csrf_token, serving_pages, sign_in
from tests.support.hooks import REVISION, declared_and_deployed, deploy, hook_file, write_hook
from tests.support.projects import HOURLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository

T = datetime(2026, 12, 1, 9, 50, tzinfo=UTC)
OPERATOR = "op-" + secrets.token_urlsafe(24)
VIEWER = "view-" + secrets.token_urlsafe(24)
Scenario = Callable[[httpx.AsyncClient, Operations], Awaitable[None]]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    directory = tmp_path / "hooks"
    directory.mkdir()
    return directory


def config_for(emulator: Emulator, tmp_path: Path, folder: Path | None) -> Config:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(emulator, tmp_path, project("alpha", repository), hooks_dir=folder)
    tokens = (
        ApiToken("sheriffs", "operator", hash_token(OPERATOR)),
        ApiToken("dashboard", "viewer", hash_token(VIEWER)),
    )
    return replace(config, api=ApiSettings(host="127.0.0.1", port=0, tokens=tokens))


def serve(config: Config, emulator: Emulator, scenario: Scenario) -> None:
    async def main() -> None:
        async with serving_pages(config, emulator.clock.now) as (client, operations, _):
            await scenario(client, operations)

    asyncio.run(main())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def hooks_page(client: httpx.AsyncClient, query: str = "") -> str:
    response = await client.get(f"/hooks{query}", headers=bearer(VIEWER))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return html.unescape(response.text)


async def signed_in(client: httpx.AsyncClient, token: str = OPERATOR) -> str:
    """Sign the client in with `token`; the CSRF token of its session, from the /hooks page."""
    await sign_in(client, token)
    return await csrf_token(client, "/hooks")


async def post_fire(
    client: httpx.AsyncClient, hook: str, payload: str, csrf: str | None, *, dry_run: bool = False
) -> httpx.Response:
    """The fire form of `hook` posted as a browser posts it, with `csrf` (None: no field)."""
    form = {"payload": payload, **({"dry_run": "1"} if dry_run else {})}
    if csrf is not None:
        form["csrf"] = csrf
    return await client.post(f"/hooks/{hook}/fire", data=form)


async def fire(
    client: httpx.AsyncClient, hook: str, payload: str, *, dry_run: bool = False
) -> httpx.Response:
    """The fire form posted by the operator, signed in, with the session's CSRF token."""
    return await post_fire(client, hook, payload, await signed_in(client), dry_run=dry_run)


def section(page: str, hook: str) -> str:
    """The page's section of one hook."""
    start = page.index(f'<section class="hook" id="hook-{hook}"')
    return page[start : page.index("</section>", start)]


def tripwire(emulator: Emulator) -> None:
    """Any triggerHook call from now on is listed in `emulator.faults.injected` (its first
    attempt fails once; the client would retry past it)."""
    emulator.faults.add("hooks.triggerHook", script=["503"])


def audit_log(config: Config) -> list[Any]:
    with Ledger.open(config.ledger_url) as ledger:
        return ledger.audit_log()


# -- what the page shows -----------------------------------------------------------------------


def test_the_page_shows_each_hook_declared_against_deployed(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    declared_and_deployed(emulator, folder)
    changed = hook_file("changed")
    write_hook(folder, changed)
    deploy(
        emulator,
        {
            **changed,
            "schedule": ["0 0 4 * * *"],
            "metadata": {**changed["metadata"], "description": "An old description."},
        },
    )
    write_hook(folder, hook_file("new", schedule=[]))
    deploy(emulator, hook_file("undeclared"))
    deploy(emulator, hook_file("untouched", group="other"))

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = await hooks_page(client)
        assert '<a href="/hooks">Hooks</a>' in page  # in the nav
        assert f"<code>{folder}</code>" in page
        in_sync = section(page, "g/same")
        assert "state-in-sync" in in_sync
        assert "deployed as declared" in in_sync
        assert "daily at 03:00 UTC" in in_sync
        assert "revision (a string matching ^[0-9a-f]{40}$, required)" in in_sync
        assert "A nightly task." in in_sync
        assert f"{folder}/g/same.yml" in in_sync
        drift = section(page, "g/changed")
        assert "state-drift" in drift
        # Each differing field, the folder's value then the deployment's.
        assert (
            '<th scope="row"><code>metadata.description</code></th>'
            '<td><code>"A nightly task."</code></td><td><code>"An old description."</code></td>'
        ) in drift
        assert '<td><code>"0 0 3 * * *"</code></td><td><code>"0 0 4 * * *"</code></td>' in drift
        missing = section(page, "g/new")
        assert "state-missing" in missing
        assert "tc-scheduler hooks apply</code> creates it" in missing
        assert "on demand" in page
        # Not deployed, so it cannot be fired or have fires.
        assert "<form" not in missing
        undeclared = section(page, "g/undeclared")
        assert "state-undeclared" in undeclared
        assert "declared by no file" in undeclared
        assert "<form" in undeclared
        # Hooks of groups the folder does not manage are not its business.
        assert "other/untouched" not in page
        assert "Problems" not in page

    serve(config_for(emulator, tmp_path, folder), emulator, scenario)


def test_last_fires_link_their_tasks(emulator: Emulator, tmp_path: Path, folder: Path) -> None:
    emulator.clock.set(T, frozen=True)
    declared_and_deployed(emulator, folder)
    hooks = taskcluster.Hooks(emulator.options(maxRetries=0))
    first = hooks.triggerHook("g", "same", {"revision": REVISION, "flavor": "ship"})
    second = hooks.triggerHook("g", "same", {"revision": REVISION, "flavor": "promote"})

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        overview = await operations.hooks_overview()
        [hook] = overview.hooks
        assert [f.task_id for f in hook.last_fires] == [second["taskId"], first["taskId"]]
        assert hook.last_fires[0].result == "success"
        page = section(await hooks_page(client), "g/same")
        for task_id in (first["taskId"], second["taskId"]):
            assert f'<a href="{emulator.root_url}/tasks/{task_id}">task {task_id}</a>' in page
        assert "2026-12-01 09:50 UTC" in page

    serve(config_for(emulator, tmp_path, folder), emulator, scenario)


def test_reading_needs_only_the_read_scopes_of_the_managed_groups(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    declared_and_deployed(emulator, folder)
    fired = taskcluster.Hooks(emulator.options(maxRetries=0)).triggerHook(
        "g", "same", {"revision": REVISION, "flavor": "ship"}
    )
    reader = emulator.add_client(
        "hooks-reader", ["hooks:list-hooks:g", "hooks:list-last-fires:g/*"]
    )
    config = config_for(emulator, tmp_path, folder)
    config = replace(config, credentials=Credentials(reader["clientId"], reader["accessToken"]))

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        overview = await operations.hooks_overview()
        assert overview.deployment_problem is None
        [hook] = overview.hooks
        assert hook.state == "in-sync"
        assert hook.last_fires_problem is None
        assert [f.task_id for f in hook.last_fires] == [fired["taskId"]]

    serve(config, emulator, scenario)


def test_a_bad_file_is_named_with_its_line_and_the_other_hooks_still_shown(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    good = hook_file("good")
    write_hook(folder, good)
    deploy(emulator, good)
    broken = hook_file("broken")
    deploy(emulator, broken)
    (folder / "g" / "broken.yml").write_text("hookGroupId: g\nhookId: broken\nmetadata: [1\n")

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = await hooks_page(client)
        assert "Problems" in page
        [problem] = (await operations.hooks_overview()).folder_problems
        assert problem.startswith(f"{folder}/g/broken.yml:4:1: error:")
        assert problem in page
        assert "state-in-sync" in section(page, "g/good")
        # Deployed, with a file that cannot be read: neither in sync nor undeclared.
        assert "state-invalid-file" in section(page, "g/broken")

    serve(config_for(emulator, tmp_path, folder), emulator, scenario)


def test_taskcluster_down_still_shows_the_declared_hooks(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    write_hook(folder, hook_file("declared"))
    # Every attempt of the client (the first and its retries) fails.
    emulator.faults.add("hooks.listHooks", script=["503"] * 10)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = await hooks_page(client)
        assert "the deployed hooks cannot be read" in page
        assert "hooks.listHooks(g)" in page
        declared = section(page, "g/declared")
        assert "state-unknown" in declared
        assert "daily at 03:00 UTC" in declared

    serve(config_for(emulator, tmp_path, folder), emulator, scenario)


def test_without_a_hooks_folder_the_page_says_how_to_set_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = await hooks_page(client)
        assert "No hooks folder is configured: set <code>hooks-dir</code>" in page

    serve(config_for(emulator, tmp_path, None), emulator, scenario)


def test_a_secret_in_a_deployed_hooks_task_is_masked(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    canary = "canary" + secrets.token_hex(16)
    slack = f"xoxb-1234-{secrets.token_hex(12)}"
    declared = hook_file("leaky", env={"FLAVOR": "ship"})
    write_hook(folder, declared)
    # Deployed by hand with secrets in its env: a key that names one, and a value shaped as one.
    deploy(emulator, hook_file("leaky", env={"DEPLOY_TOKEN": canary, "NOTE": slack}))

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        response = await client.get("/hooks", headers=bearer(VIEWER))
        assert response.status_code == 200
        leaky = section(html.unescape(response.text), "g/leaky")
        assert "task.payload.env.DEPLOY_TOKEN" in leaky
        assert "task.payload.env.NOTE" in leaky
        assert canary not in response.text
        assert slack not in response.text
        assert "***" in leaky

    serve(config_for(emulator, tmp_path, folder), emulator, scenario)


# -- the fire form -------------------------------------------------------------------------------


def test_a_good_payload_fires_the_hook_and_the_page_says_its_task(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    declared_and_deployed(emulator, folder)
    config = config_for(emulator, tmp_path, folder)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = section(await hooks_page(client), "g/same")
        # The form starts from an example of the schema, with the schema beside it.
        assert 'action="/hooks/g/same/fire"' in page
        assert '"flavor": "ship"' in page
        assert "<details>" in page
        assert '"pattern": "^[0-9a-f]{40}$"' in page
        response = await fire(client, "g/same", f'{{"revision": "{REVISION}", "flavor": "ship"}}')
        assert response.status_code == 303, response.text
        [task] = emulator.tasks()
        assert response.headers["location"] == "/audit?notice=hook-fired"
        audit = html.unescape((await client.get(response.headers["location"])).text)
        assert "Hook fired: its task is in the newest entry below." in audit
        assert f"triggered g/same: task {task.task_id}" in audit
        # A link cannot make a page say what was not done: notices are fixed sentences.
        forged = await hooks_page(client, f"?fired=g/evil&task={task.task_id}")
        assert "g/evil" not in forged
        assert task.definition["payload"]["env"] == {"FLAVOR": "ship"}

    serve(config, emulator, scenario)
    [entry] = audit_log(config)
    assert (entry.actor, entry.action, entry.target, entry.ok) == (
        "sheriffs (dashboard)",
        "hook-fire",
        "g/same",
        True,
    )
    assert entry.input == {"payload": {"revision": REVISION, "flavor": "ship"}, "dry_run": False}


def test_a_payload_that_breaks_the_schema_is_refused_before_any_trigger(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    declared_and_deployed(emulator, folder)
    tripwire(emulator)
    config = config_for(emulator, tmp_path, folder)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        response = await fire(client, "g/same", '{"revision": "abc", "build_number": "2"}')
        assert response.status_code == 422
        page = html.unescape(response.text)
        assert "the payload does not match the triggerSchema of g/same" in page
        assert "<li>payload.flavor: is required; add it</li>" in page
        assert '<li>payload.revision: must match the pattern ^[0-9a-f]{40}$ (got "abc")</li>' in (
            page
        )
        assert "<li>payload.build_number: must be an integer" in page
        # The form again, with what was sent, to correct.
        assert '{"revision": "abc", "build_number": "2"}</textarea>' in page
        not_json = await fire(client, "g/same", "{revision: abc")
        assert not_json.status_code == 400
        refused = html.unescape(not_json.text)
        assert "the payload: not JSON (Expecting property name" in refused
        assert "{revision: abc</textarea>" in refused
        a_list = await fire(client, "g/same", "[1]")
        assert a_list.status_code == 400
        assert "the payload: a JSON object is needed, not list" in html.unescape(a_list.text)

    serve(config, emulator, scenario)
    assert emulator.faults.injected == [], "hooks.triggerHook was called"
    assert emulator.tasks() == []
    with emulator.lock:
        assert emulator.hooks.hooks[("g", "same")].fires == []
    [entry] = audit_log(config)
    assert (entry.actor, entry.ok) == ("sheriffs (dashboard)", False)


def test_only_an_operator_signed_in_fires_and_a_dry_run_triggers_nothing(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    declared_and_deployed(emulator, folder)
    tripwire(emulator)
    good = f'{{"revision": "{REVISION}", "flavor": "ship"}}'
    config = config_for(emulator, tmp_path, folder)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        # Not signed in: an operator's bearer token does not act from a form either.
        anonymous = await client.post(
            "/hooks/g/same/fire", data={"payload": good}, headers=bearer(OPERATOR)
        )
        assert anonymous.status_code == 401
        page = html.unescape(anonymous.text)
        assert "acting from the dashboard needs you signed in" in page
        assert '<a href="/sign-in?next=/hooks">Sign in</a>' in page
        assert "<form" not in page.split("<main")[1]
        # The link signs in and comes back to the hooks.
        back = await client.get("/sign-in?next=/hooks")
        assert '<input type="hidden" name="next" value="/hooks">' in back.text

        # A viewer sees the form disabled, saying why; its own session's post is refused.
        viewer_csrf = await signed_in(client, VIEWER)
        form = section(html.unescape((await client.get("/hooks")).text), "g/same")
        assert re.search(r"<button [^>]*disabled[^>]*>Fire g/same</button>", form)
        assert "operators only" in form
        viewer = await post_fire(client, "g/same", good, viewer_csrf)
        assert viewer.status_code == 403
        assert "'dashboard' is a viewer; acting needs an operator's token" in html.unescape(
            viewer.text
        )

        # The operator's session, without its CSRF token or with another one: refused.
        await signed_in(client, OPERATOR)
        form = section(html.unescape((await client.get("/hooks")).text), "g/same")
        assert not re.search(r"disabled[^>]*>Fire g/same<", form)
        assert "operators only" not in form
        for csrf in (None, "0" * 64, viewer_csrf):
            forged = await post_fire(client, "g/same", good, csrf)
            assert forged.status_code == 403, csrf
            assert "the form's CSRF token is missing or not this session's" in html.unescape(
                forged.text
            )

        dry = await fire(client, "g/same", good, dry_run=True)
        assert dry.status_code == 303
        assert dry.headers["location"] == "/audit?notice=hook-dry-run"
        notice = html.unescape((await client.get(dry.headers["location"])).text)
        assert "Dry run: the payload matches the hook's triggerSchema" in notice
        unknown = await fire(client, "g/nope", good)
        assert unknown.status_code == 404
        assert "has no hook g/nope" in html.unescape(unknown.text)

    serve(config, emulator, scenario)
    assert emulator.faults.injected == [], "hooks.triggerHook was called"
    assert emulator.tasks() == []
    entries = audit_log(config)
    assert [(e.actor, e.input["dry_run"], e.ok) for e in reversed(entries)] == [
        ("sheriffs (dashboard)", True, True),
        ("sheriffs (dashboard)", False, False),
    ]


def test_the_deployment_is_read_once_per_refresh_and_anew_after_a_fire(
    emulator: Emulator, tmp_path: Path, folder: Path
) -> None:
    """However many read the page (public reads let anyone), the Hooks service is asked at most
    once per HOOKS_FRESH_FOR, behind the readers, who never wait for it but the first; a fire
    from here makes the next read fresh."""
    emulator.clock.set(T, frozen=True)
    same = declared_and_deployed(emulator, folder)
    config = config_for(emulator, tmp_path, folder)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        assert "state-in-sync" in section(await hooks_page(client), "g/same")
        _update(emulator, hook_file("same", description="changed behind our back"))
        assert "state-in-sync" in section(await hooks_page(client), "g/same")
        emulator.clock.set(T + HOOKS_FRESH_FOR, frozen=True)
        # Read again behind this reader, who is shown what was read, and when.
        stale = await hooks_page(client)
        assert "state-in-sync" in section(stale, "g/same")
        assert "The deployment was read" in stale
        assert "30 s ago" in stale
        await operations.hook_reads.settled()
        assert "state-drift" in section(await hooks_page(client), "g/same")
        _update(emulator, same)
        fired = await fire(client, "g/same", f'{{"revision": "{REVISION}", "flavor": "ship"}}')
        assert fired.status_code == 303, fired.text
        [task] = emulator.tasks()
        shown = section(await hooks_page(client), "g/same")
        assert "state-in-sync" in shown
        assert task.task_id in shown

    serve(config, emulator, scenario)


def _update(emulator: Emulator, definition: dict[str, Any]) -> None:
    """Change a deployed hook, as someone else's `hooks apply` would."""
    body = {k: v for k, v in definition.items() if k not in ("hookGroupId", "hookId")}
    hooks = taskcluster.Hooks(emulator.options(maxRetries=0))
    hooks.updateHook(definition["hookGroupId"], definition["hookId"], body)
