"""The dashboard's pages through the real app and a real HTTP client, over a service against the
emulator: what each page shows, 404s, who may read, and no secret in any page."""

from __future__ import annotations

import asyncio
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from scheduler.common.redaction import remember_secret_variables
from scheduler.config.model import ApiSettings, ApiToken, Config
from scheduler.cron import load_cron, next_fires
from scheduler.monitoring import Monitor
from scheduler.operations.acts import Operations
from scheduler.operations.dashboard import NEXT_FIRES, NextFiresKnown
from scheduler.operations.models import FireQuery
from scheduler.service import open_service
from scheduler.web.auth import hash_token, pages_public
from scheduler.web.server import ApiServer
from tests.emulator import Emulator
from tests.support.projects import HOURLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository

T = datetime(2026, 12, 1, 9, 50, tzinfo=UTC)
OPERATOR = "op-" + secrets.token_urlsafe(24)
VIEWER = "view-" + secrets.token_urlsafe(24)
NIGHTLY_AND_HOURLY = (
    HOURLY
    + """\
  - name: nightly
    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}
    when: [{hour: 3, minute: 0}]
"""
)
Client = Callable[[httpx.AsyncClient, Operations], Awaitable[None]]


def _config(
    emulator: Emulator, tmp_path: Path, template: str = OWN_TEMPLATE, **api: object
) -> Config:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": NIGHTLY_AND_HOURLY, ".taskcluster.yml": template}
    )
    config = make_config(emulator, tmp_path, project("alpha", repository))
    tokens = (
        ApiToken("sheriffs", "operator", hash_token(OPERATOR)),
        ApiToken("dashboard", "viewer", hash_token(VIEWER)),
    )
    settings = {"host": "127.0.0.1", "port": 0, "tokens": tokens, **api}
    return replace(config, api=ApiSettings(**settings))  # type: ignore[arg-type]


def _serve(config: Config, emulator: Emulator, scenario: Client) -> None:
    async def main() -> None:
        async with open_service(config, clock=emulator.clock.now) as (engine, _, ledger):
            operations = Operations(engine, ledger)
            server = ApiServer(operations, engine.config.api, Monitor(ledger, engine.clock))
            server.start()
            assert server.url is not None
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    await scenario(client, operations)
            finally:
                await server.stop()

    asyncio.run(main())


def _viewer() -> dict[str, str]:
    return {"Authorization": f"Bearer {VIEWER}"}


async def _page(client: httpx.AsyncClient, path: str, status: int = 200) -> str:
    response = await client.get(path, headers=_viewer())
    assert response.status_code == status, (path, response.text)
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_pages_show_the_schedule_the_fires_and_the_audit(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        fired = await operations.fire_job("sheriffs (api)", "alpha", "hourly")
        assert fired.task_id is not None
        await operations.ledger.pause(
            "sheriffs (api)", "alpha", "nightly", reason="tree closed", until=None
        )

        overview = await _page(client, "/")
        assert 'href="/projects/alpha"' in overview
        # The next fires, across projects, with the schedule in words.
        assert "2026-12-01 10:00 UTC" in overview
        assert "in 10 min" in overview
        assert "hourly" in overview
        assert "nightly" in overview
        # The last day's fire, linked to its task and group in the Taskcluster UI.
        assert f'href="{emulator.root_url}/tasks/{fired.task_id}"' in overview
        assert f"{emulator.root_url}/tasks/groups/" in overview
        assert "Paused: nightly" in overview or "tree closed" in overview

        page = await _page(client, "/projects/alpha")
        assert '<th scope="row">hourly' in page
        assert "0 * * * *" in page  # the crontab
        assert "0 3 * * *" in page
        assert "latest: the last missed slot, within 6h" in page
        assert "tree closed" in page
        fire_id = re.search(r'href="/fires/(\d+)"', page)
        assert fire_id is not None, "the grid links the fire"
        assert 'class="cell state-created"' in page

        fire = await _page(client, f"/fires/{fire_id.group(1)}")
        assert f"/tasks/{fired.task_id}" in fire
        assert "What was sent" in fire
        assert "taskGroupId" in fire  # the rendered task

        audit = await _page(client, "/audit")
        assert "sheriffs (api)" in audit
        assert "pause" in audit
        assert "alpha/nightly" in audit

        css = await client.get("/static/dashboard.css")
        assert css.status_code == 200
        assert "text/css" in css.headers["content-type"]

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_unknown_things_are_404_pages(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        for path in ("/projects/nope", "/fires/999999", "/fires/abc", "/fires/0"):
            page = await _page(client, path, 404)
            assert "Not found" in page, path
            assert 'href="/"' in page

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_pages_are_private_when_tokens_are_configured(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        for path in ("/", "/projects/alpha", "/audit"):
            anonymous = await client.get(path)
            assert anonymous.status_code == 401, path
            assert "Sign in needed" in anonymous.text
            assert "alpha/" not in anonymous.text
            forged = await client.get(path, headers={"Authorization": "Bearer nope"})
            assert forged.status_code == 401, path
        assert (await client.get("/", headers=_viewer())).status_code == 200

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_public_reads_and_a_loopback_without_tokens_show_the_pages(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        overview = await client.get("/")
        assert overview.status_code == 200, overview.text
        assert "nightly" in overview.text

    async def api_unchanged(client: httpx.AsyncClient, operations: Operations) -> None:
        await scenario(client, operations)
        # The API keeps its own rules: without public-reads, reads need a token.
        assert (await client.get("/api/v1/projects")).status_code == 401

    _serve(_config(emulator, tmp_path / "a", tokens=()), emulator, api_unchanged)
    _serve(_config(emulator, tmp_path / "b", public_reads=True), emulator, scenario)


def test_which_listen_addresses_make_pages_public() -> None:
    token = (ApiToken("dashboard", "viewer", hash_token(VIEWER)),)
    assert pages_public(ApiSettings(host="127.0.0.1"))
    assert pages_public(ApiSettings(host="::1"))
    assert pages_public(ApiSettings(host="localhost"))
    assert not pages_public(ApiSettings(host="0.0.0.0"))
    assert not pages_public(ApiSettings(host="scheduler.example.com"))
    assert not pages_public(ApiSettings(host="127.0.0.1", tokens=token))
    assert pages_public(ApiSettings(host="0.0.0.0", tokens=token, public_reads=True))


def _random(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def test_no_secret_reaches_any_page(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    taskcluster_token = _random(44)
    slack_token = f"xoxb-{_random(12)}-{_random(24)}"
    environment_secret = _random(28)
    repository_password = _random(20)
    canaries = [taskcluster_token, slack_token, environment_secret, repository_password]
    # Secrets in the environment, remembered as loading the configuration does.
    remember_secret_variables(
        {"TASKCLUSTER_ACCESS_TOKEN": taskcluster_token, "MY_API_TOKEN": environment_secret}
    )
    # A task definition that carries them: in secret-named variables, in a repository URL's
    # password, and in a field whose name says nothing.
    planted = (
        "                          - TCS_HEAD_REPOSITORY: ${repoUrl}\n"
        f"                            SLACK_TOKEN: {slack_token}\n"
        f"                            MIRROR: https://cron:{repository_password}@example.com/a\n"
        f"                            NOTE: {environment_secret}\n"
        f"                            TC_TOKEN: {taskcluster_token}\n"
    )
    template = OWN_TEMPLATE.replace(
        "                          - TCS_HEAD_REPOSITORY: ${repoUrl}\n", planted
    )
    assert template != OWN_TEMPLATE

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        fired = await operations.fire_job("sheriffs (api)", "alpha", "hourly")
        assert fired.details is not None
        since = FireQuery(since=T - timedelta(days=1))
        fires = [fire.id for fire in await operations.ledger.history(since)]
        assert fires
        paths = ["/", "/projects/alpha", "/audit", *(f"/fires/{i}" for i in fires)]
        for path in paths:
            page = await _page(client, path)
            leaked = [c for c in canaries if c[:16] in page]
            assert not leaked, (path, leaked)
        fire = await _page(client, f"/fires/{fires[0]}")
        assert "SLACK_TOKEN" in fire  # the field is shown, its value masked
        assert "***" in fire

    _serve(_config(emulator, tmp_path, template), emulator, scenario)


def test_the_next_fires_kept_are_worked_out_anew_for_a_new_cron_file_or_slot() -> None:
    known = NextFiresKnown()
    hourly = load_cron(HOURLY)
    first = known.next_fires(hourly, "alpha", T)
    assert first == next_fires(hourly, "alpha", T, NEXT_FIRES).fires
    assert first[0].slot == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    # Later in the same slot: the same fires, not worked out again.
    assert known.next_fires(hourly, "alpha", T + timedelta(minutes=9)) is first

    # The next slot: from there on (at 10:05, 10:00 is past).
    later = T + timedelta(minutes=15)
    assert (
        known.next_fires(hourly, "alpha", later)
        == next_fires(hourly, "alpha", later, NEXT_FIRES).fires
    )
    assert known.next_fires(hourly, "alpha", later)[0].slot == datetime(
        2026, 12, 1, 11, 0, tzinfo=UTC
    )

    # Another revision's .cron.yml (another object, even for the same text), in the same slot.
    nightly = load_cron(NIGHTLY_AND_HOURLY)
    assert (
        known.next_fires(nightly, "alpha", later)
        == next_fires(nightly, "alpha", later, NEXT_FIRES).fires
    )
    assert "nightly" in {fire.job_name for fire in known.next_fires(nightly, "alpha", later)}
    again = load_cron(HOURLY)
    assert known.next_fires(again, "alpha", later) is not known.next_fires(hourly, "alpha", later)
    # Each project its own.
    beta = known.next_fires(hourly, "beta", later)
    assert beta == next_fires(hourly, "beta", later, NEXT_FIRES).fires
    assert (
        known.next_fires(nightly, "alpha", later)
        == next_fires(nightly, "alpha", later, NEXT_FIRES).fires
    )
