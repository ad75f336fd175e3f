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
from typing import Any

import httpx

from scheduler.common.redaction import remember_secret_variables
from scheduler.config.model import ApiSettings, ApiToken, Config, Project
from scheduler.cron import load_cron, next_fires
from scheduler.engine.checks import LastChecks
from scheduler.expiry.model import CachedTask, ExpiryEvent, ExpiryEventKind
from scheduler.ledger import FireKind, FireState, Ledger, Outcome
from scheduler.notify.settings import NotifySettings, SlackSettings
from scheduler.operations.acts import Operations
from scheduler.operations.dashboard import NEXT_FIRES, RECENT_SHOWN, NextFiresKnown
from scheduler.operations.health import staleness
from scheduler.operations.models import FireQuery
from scheduler.preflight import preflight
from scheduler.service import Notifier, open_service
from scheduler.web.auth import hash_token, pages_public
from tests.emulator import Emulator
from tests.emulator.slack import FakeSlack
from tests.support.dashboard import serving_pages
from tests.support.expiry import CACHED, seed, seed_rebuild_action
from tests.support.fakes import SLACK_TOKEN
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
Notifying = Callable[[httpx.AsyncClient, Operations, Notifier], Awaitable[None]]


def _config(
    emulator: Emulator,
    tmp_path: Path,
    template: str = OWN_TEMPLATE,
    *,
    more: tuple[Project, ...] = (),
    notify: NotifySettings | None = None,
    alpha: dict[str, Any] | None = None,
    **api: object,
) -> Config:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": NIGHTLY_AND_HOURLY, ".taskcluster.yml": template}
    )
    config = make_config(emulator, tmp_path, project("alpha", repository, **(alpha or {})), *more)
    if notify is not None:
        config = replace(config, notify=notify)
    tokens = (
        ApiToken("sheriffs", "operator", hash_token(OPERATOR)),
        ApiToken("dashboard", "viewer", hash_token(VIEWER)),
    )
    settings = {"host": "127.0.0.1", "port": 0, "tokens": tokens, **api}
    return replace(config, api=ApiSettings(**settings))  # type: ignore[arg-type]


def _serve(config: Config, emulator: Emulator, scenario: Client) -> None:
    async def served(client: httpx.AsyncClient, operations: Operations, _: Notifier) -> None:
        await scenario(client, operations)

    _serve_notifying(config, emulator, served)


def _serve_notifying(config: Config, emulator: Emulator, scenario: Notifying) -> None:
    """`scenario` with the pages served, the operations and the service's notifier (whose
    round moves the watches on and delivers the notices)."""

    async def main() -> None:
        async with serving_pages(config, emulator.clock.now) as served:
            await scenario(*served)

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
    assert pages_public(ApiSettings(host="127.0.0.1"), "127.0.0.1:8080")
    assert pages_public(ApiSettings(host="::1"), "[::1]:8080")
    assert pages_public(ApiSettings(host="localhost"), "localhost:8080")
    assert not pages_public(ApiSettings(host="0.0.0.0"), "127.0.0.1:8080")
    assert not pages_public(ApiSettings(host="scheduler.example.com"), "127.0.0.1")
    assert not pages_public(ApiSettings(host="127.0.0.1", tokens=token), "127.0.0.1")
    assert pages_public(ApiSettings(host="0.0.0.0", tokens=token, public_reads=True), None)
    # A name of another site made to resolve to this machine (DNS rebinding) reads nothing,
    # nor does a request that names no host, or one no browser would send.
    assert not pages_public(ApiSettings(host="127.0.0.1"), "attacker.example:8080")
    assert not pages_public(ApiSettings(host="127.0.0.1"), None)
    assert not pages_public(ApiSettings(host="127.0.0.1"), "[bad")


def _random(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def test_no_secret_reaches_any_page(emulator: Emulator, tmp_path: Path, slack: FakeSlack) -> None:
    emulator.clock.set(T, frozen=True)
    taskcluster_token = _random(44)
    slack_token = f"xoxb-{_random(12)}-{_random(24)}"
    environment_secret = _random(28)
    repository_password = _random(20)
    canaries = [taskcluster_token, slack_token, environment_secret, repository_password]
    canaries.append(SLACK_TOKEN)  # the notifier's own, configured
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

    async def scenario(
        client: httpx.AsyncClient, operations: Operations, notifier: Notifier
    ) -> None:
        fired = await operations.fire_job("sheriffs (api)", "alpha", "hourly")
        assert fired.details is not None
        assert fired.task_id is not None
        # The new sections filled: the task's outcome, the notices about it, preflight.
        emulator.resolve_task(fired.task_id, "failed")
        await notifier.round()
        await preflight(operations.engine, operations.engine.config.projects)
        since = FireQuery(since=T - timedelta(days=1))
        fires = [fire.id for fire in await operations.ledger.history(since)]
        assert fires
        paths = ["/", "/projects/alpha", "/audit", *(f"/fires/{i}" for i in fires)]
        for path in paths:
            page = await _page(client, path)
            leaked = [c for c in canaries if c[:16] in page]
            assert not leaked, (path, leaked)
        # And the pages that are not about a fire: sign-in, and errors.
        for path, status in (("/sign-in", 200), ("/projects/nope", 404), ("/fires/9999", 404)):
            page = await _page(client, path, status)
            assert not [c for c in canaries if c[:16] in page], path
        fire = await _page(client, f"/fires/{fires[0]}")
        assert "SLACK_TOKEN" in fire  # the field is shown, its value masked
        assert "***" in fire
        assert "task failed" in fire
        assert "decision task failed" in fire  # the notice
        project_page = await _page(client, "/projects/alpha")
        assert "Preflight findings" in project_page
        assert "decision task failed" in project_page

    config = _config(emulator, tmp_path, template, notify=_slack(slack))
    _serve_notifying(config, emulator, scenario)


def _slack(slack: FakeSlack) -> NotifySettings:
    return NotifySettings(
        slack=SlackSettings(token=SLACK_TOKEN, api_url=slack.api_url, channel="#releng")
    )


# -- what needs a look first -----------------------------------------------------------------


def test_a_stale_project_comes_first_with_its_warning(emulator: Emulator, tmp_path: Path) -> None:
    zeta = project("zeta", Repository(tmp_path / "zeta", {".cron.yml": HOURLY}))
    config = _config(emulator, tmp_path, more=(zeta,))
    emulator.clock.set(T - timedelta(hours=1), frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        await operations.engine.tick(T - timedelta(hours=1))  # both projects, an hour ago
        emulator.clock.set(T, frozen=True)
        # Then only alpha is ticked (a replica configured with alpha alone): zeta stalls.
        alone = replace(config, projects=config.projects[:1])
        async with open_service(alone, clock=emulator.clock.now) as (engine, _, _):
            await engine.tick(T)

        overview = await _page(client, "/")
        assert "1 project needs attention:" in overview
        assert "zeta</a> (not ticking)" in overview
        assert "not evaluated for 1h" in overview
        table = overview[overview.index('<h2 id="projects">') : overview.index('id="next"')]
        assert table.index('href="/projects/zeta"') < table.index('href="/projects/alpha"')
        alpha_row = table[table.index('href="/projects/alpha"') :].split("</tr>")[0]
        assert "stale" not in alpha_row
        assert ">OK<" in alpha_row
        page = await _page(client, "/projects/zeta")
        assert "not evaluated for 1h" in page
        assert 'state-failed">stale' in page

    _serve(config, emulator, scenario)


def test_every_project_healthy_is_said_in_one_line(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        assert "1 project needs attention" in await _page(client, "/")  # never evaluated
        await operations.engine.tick(T)
        overview = await _page(client, "/")
        assert "The project is healthy." in overview
        assert "needs attention" not in overview

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_preflight_findings_show_on_the_overview_and_the_project(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    broken = "version: 1\ntasks:\n  - $eval: no_such_variable\n"

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = await _page(client, "/projects/alpha")
        assert "Not checked on this replica yet" in page
        checked = await preflight(operations.engine, operations.engine.config.projects)
        errors = [f for f in checked[0].findings if f.is_error]
        assert errors, checked
        await operations.engine.tick(T)

        overview = await _page(client, "/")
        assert f"{len(errors)} preflight error" in overview
        assert "1 project needs attention" in overview
        page = await _page(client, "/projects/alpha")
        section = page[page.index('id="preflight"') :]
        assert "no_such_variable" in section
        assert 'state-failed">error' in section
        assert "<strong>hourly</strong>" in section

    _serve(_config(emulator, tmp_path, broken), emulator, scenario)


# -- how the tasks went, and what people were told ---------------------------------------------


def test_task_outcomes_incidents_and_notices(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(
        client: httpx.AsyncClient, operations: Operations, notifier: Notifier
    ) -> None:
        failing = await operations.fire_job("sheriffs (api)", "alpha", "hourly")
        passing = await operations.fire_job("sheriffs (api)", "alpha", "nightly")
        assert failing.task_id is not None
        assert passing.task_id is not None
        overview = await _page(client, "/")
        assert "task not looked at yet" in overview  # created, not followed yet
        emulator.resolve_task(failing.task_id, "failed")
        emulator.resolve_task(passing.task_id, "completed")
        await notifier.round()

        overview = await _page(client, "/")
        assert 'class="outcome outcome-failed">task failed' in overview
        assert 'class="outcome outcome-completed">task completed' in overview
        assert "Failing: job:alpha/hourly" in overview
        assert "1 open incident" in overview
        assert f'href="{emulator.root_url}/tasks/groups/' in overview

        page = await _page(client, "/projects/alpha")
        jobs = page[page.index('id="jobs"') : page.index('id="grid"')]
        assert "task failed" in jobs  # each job's last fire, with its task's outcome
        assert "task completed" in jobs
        assert f'href="{emulator.root_url}/tasks/{failing.task_id}"' in jobs
        assert 'data-outcome="failed"' in page
        assert 'data-outcome="completed"' in page
        incidents = page[page.index('id="incidents"') :]
        assert "<td>job:alpha/hourly</td>" in incidents
        notices = page[page.index('id="notices"') :]
        assert "alpha hourly: decision task failed" in notices
        assert "slack:" in notices

        fire_id = re.search(r'data-outcome="failed" href="/fires/(\d+)"', page)
        assert fire_id is not None, "the grid cell of the failed task links its fire"
        fire = await _page(client, f"/fires/{fire_id.group(1)}")
        assert "task failed" in fire
        assert "Notices sent" in fire
        assert "alpha hourly: decision task failed" in fire
        assert "<dt>Attempts</dt><dd>1" in fire

    config = _config(emulator, tmp_path, notify=_slack(slack))
    _serve_notifying(config, emulator, scenario)


# -- the expiry watch ----------------------------------------------------------------------------


def test_the_expiry_watch_shows_what_is_at_risk_and_the_running_rebuild(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    seed_rebuild_action(emulator, "alpha")
    later, sooner = CACHED
    seed(emulator, f"{later}.latest", timedelta(days=20))
    seed(emulator, f"{sooner}.latest", timedelta(days=5))
    # Gone from the queue, while its index entry lives on for months.
    gone = "tcs.cache.level-1.toolchains.v3.gone.latest"
    gone_task = seed(emulator, gone, timedelta(days=200))
    emulator.expire_task(gone_task)
    with emulator.lock:
        emulator.index.insert(gone, gone_task, rank=1, expires=T + timedelta(days=100))
    config = _config(emulator, tmp_path, alpha={"expiry_watched": True})

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = await _page(client, "/projects/alpha")
        assert "Not scanned on this replica yet." in page
        [project_] = operations.engine.config.projects
        events = await operations.engine.check_expiry(project_)
        [started] = [e for e in events if e.kind is ExpiryEventKind.STARTED]
        assert started.task_group_id is not None

        page = await _page(client, "/projects/alpha")
        watch = page[page.index('id="expiry"') :]
        assert "Last scan <time" in watch
        assert "Rebuild running" in watch
        assert f'href="{emulator.root_url}/tasks/groups/{started.task_group_id}"' in watch
        assert watch.index(f"{sooner}.latest") < watch.index(f"{later}.latest")
        assert "<td>5.0</td>" in watch
        assert "<td>20.0</td>" in watch
        [gone_row] = [row for row in watch.split("<tr>") if gone_task in row]
        assert "<td>task is gone</td>" in gone_row  # and no date the entry's expiry would give
        assert "<time" not in gone_row

    _serve(config, emulator, scenario)


# -- partial refresh -----------------------------------------------------------------------------


def test_the_refresh_script_is_served_and_the_sections_it_swaps_are_marked(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        script = await client.get("/static/refresh.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert "data-refresh" in script.text
        assert "visibilityState" in script.text
        overview = await _page(client, "/")
        assert '<script src="/static/refresh.js" defer></script>' in overview
        for section in ("health", "next", "recent"):
            assert f'data-refresh="{section}"' in overview
        page = await _page(client, "/projects/alpha")
        for section in ("grid", "notices"):
            assert f'data-refresh="{section}"' in page

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_stale_means_older_than_two_ticks() -> None:
    assert staleness(T - timedelta(minutes=30), T) is None
    said = staleness(T - timedelta(minutes=31, seconds=20), T)
    assert said is not None
    assert said.startswith("not evaluated for 31m (it ticks every 15 min)")
    assert staleness(None, T) == "never evaluated: no tick has reached it yet"


def test_a_failed_scan_keeps_what_the_last_one_found() -> None:
    task = CachedTask("t1", "tcs.cache.level-1.toolchains.v3.clang", "toolchain", T, "task")
    found = ExpiryEvent(ExpiryEventKind.EXPIRING, "alpha", "1 expires", (task,))
    failed = ExpiryEvent(ExpiryEventKind.SCAN_FAILED, "alpha", "the index said 500")
    checks = LastChecks()
    checks.scanned("alpha", (found,), at=T)
    checks.scanned("alpha", (failed,), at=T + timedelta(hours=1))
    scan = checks.scans["alpha"]
    assert (scan.at, scan.seen_at, scan.at_risk) == (T + timedelta(hours=1), T, (task,))
    assert scan.failure == "the index said 500"
    checks.scanned("alpha", (), at=T + timedelta(hours=2))  # nothing at risk any more
    assert checks.scans["alpha"].at_risk == ()
    assert checks.scans["alpha"].failure is None


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


def test_the_overview_lists_the_latest_fires_of_the_day_and_says_there_were_more(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)
    # A busy day: more fires than the overview lists, two a quarter hour.
    slots = [T.replace(minute=0) - timedelta(minutes=15 * n) for n in range(RECENT_SHOWN // 2 + 5)]
    with Ledger.open(config.ledger_url) as ledger:
        for slot in slots:
            wanted = [(job, slot, FireKind.SCHEDULED) for job in ("hourly", "nightly")]
            claims = ledger.claim_many(
                "alpha", wanted, replica="elsewhere", now=slot, lease=timedelta(minutes=5)
            )
            outcomes = [
                Outcome(claim, FireState.CREATED, f"t{claim.fire_id}", None, None, None, None)
                for claim in claims
                if claim is not None
            ]
            assert len(outcomes) == 2
            ledger.finish_many(outcomes, now=slot)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = await _page(client, "/")
        recent = page[page.index('id="recent-fires"') :]
        assert recent.count('href="/fires/') == RECENT_SHOWN
        assert f"the latest {RECENT_SHOWN} of more" in recent
        assert "More fires were made in the last 24 hours" in recent
        newest = (await operations.ledger.history(FireQuery(limit=1)))[0]
        assert f'href="/fires/{newest.id}"' in recent

    _serve(config, emulator, scenario)
