"""Signing in to the dashboard and acting from its forms, through the real app and a real HTTP
client over a service against the emulator: the session cookie, CSRF, who may act, what each
form does (audited as `<name> (dashboard)`), bad input, and no token or session id anywhere."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select
from structlog.testing import capture_logs

from scheduler.common.redaction import scrub
from scheduler.config.model import ApiSettings, ApiToken, Config
from scheduler.ledger import Ledger
from scheduler.ledger.models import Base
from scheduler.monitoring import Monitor
from scheduler.operations.acts import Operations
from scheduler.operations.sessions import SESSION_LIFETIME
from scheduler.service import open_service
from scheduler.web.app import create_app
from scheduler.web.auth import hash_token
from scheduler.web.draining import Draining
from scheduler.web.sessions import COOKIE, SIGN_IN_FAILURES
from tests.emulator import Emulator
from tests.support.dashboard import csrf_token, serving_pages, sign_in
from tests.support.expiry import seed_rebuild_action
from tests.support.projects import GREEDY_TEMPLATE, HOURLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository

T = datetime(2026, 12, 1, 9, 50, tzinfo=UTC)
OPERATOR = "op-" + secrets.token_urlsafe(24)
VIEWER = "view-" + secrets.token_urlsafe(24)
Scenario = Callable[[httpx.AsyncClient, Operations], Awaitable[None]]
FORM = "application/x-www-form-urlencoded"
PROJECT_PAGE = "/projects/alpha"  # a page with forms, so with the CSRF token


def _tokens(operator_role: str = "operator") -> tuple[ApiToken, ...]:
    return (
        ApiToken("sheriffs", operator_role, hash_token(OPERATOR)),  # type: ignore[arg-type]
        ApiToken("dashboard", "viewer", hash_token(VIEWER)),
    )


SLASHED_JOB = """\
  - name: l10n/ship
    job: {type: decision-task, treeherder-symbol: L, target-tasks-method: l10n}
    when: [{hour: 3, minute: 0}]
"""


def _config(
    emulator: Emulator,
    tmp_path: Path,
    template: str = OWN_TEMPLATE,
    *,
    cron: str = HOURLY,
    **changes: Any,
) -> Config:
    repository = Repository(tmp_path / "alpha", {".cron.yml": cron, ".taskcluster.yml": template})
    config = make_config(emulator, tmp_path, project("alpha", repository), **changes)
    settings = ApiSettings(host="127.0.0.1", port=0, tokens=_tokens())
    return replace(config, api=settings)


def _serve(config: Config, emulator: Emulator, scenario: Scenario) -> None:
    async def main() -> None:
        async with serving_pages(config, emulator.clock.now) as (client, operations, _):
            await scenario(client, operations)

    asyncio.run(main())


async def _post(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    return await client.post(path, data=fields)


def _audit(config: Config) -> list[tuple[str, str, str, bool]]:
    with Ledger.open(config.ledger_url) as ledger:
        return [(e.actor, e.action, e.target, e.ok) for e in ledger.audit_log()]


def test_sign_in_with_a_token_and_out_again(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        form = await client.get("/sign-in")
        assert form.status_code == 200
        assert '<label for="token">' in form.text
        assert re.search(
            r'<input id="token" name="token" type="password" autocomplete="off"', form.text
        )

        bad = await client.post("/sign-in", data={"token": "not-a-token-anyone-has"})
        assert bad.status_code == 401
        assert "not one this deployment knows" in bad.text
        assert "sheriffs" not in bad.text
        assert "dashboard" not in bad.text.split("<main")[1]
        assert COOKIE not in bad.headers.get("set-cookie", "")

        signed = await client.post("/sign-in", data={"token": OPERATOR, "next": "/audit"})
        assert signed.status_code == 303
        assert signed.headers["location"] == "/audit?notice=signed-in"
        cookie = signed.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
        assert "httponly" in attributes
        assert attributes["samesite"].split("=")[1].lower() == "strict"
        assert attributes["path"].split("=")[1] == "/"
        assert "secure" not in attributes  # over plain HTTP: the browser would drop it
        assert int(attributes["max-age"].split("=")[1]) == SESSION_LIFETIME.total_seconds()

        page = await client.get("/audit?notice=signed-in")
        assert page.status_code == 200
        assert "Signed in as <strong>sheriffs</strong> (operator)" in page.text
        assert "Signed in." in page.text
        # A link elsewhere is not followed after sign-in; signing in again ends the old session.
        first = client.cookies[COOKIE]
        away = await client.post("/sign-in", data={"token": OPERATOR, "next": "//evil.example/"})
        assert away.headers["location"] == "/?notice=signed-in"
        assert await operations.sessions.find(first, _tokens()) is None

        session_id = client.cookies[COOKIE]
        csrf = await csrf_token(client, "/")
        refused = await client.post("/sign-out", data={"csrf": "0" * 64})
        assert refused.status_code == 403
        out = await client.post("/sign-out", data={"csrf": csrf})
        assert out.status_code == 303
        assert 'tcs_session_token=""' in out.headers["set-cookie"]
        # The old cookie opens nothing any more.
        client.cookies.set(COOKIE, session_id)
        anonymous = await client.get("/")
        assert anonymous.status_code == 401
        assert 'href="/sign-in"' in anonymous.text
        assert "http-equiv" not in anonymous.text
        # Come from another site's link, a page is asked again from here, which brings the
        # SameSite=Strict cookie (the second ask is same-origin: no loop).
        linked = await client.get("/", headers={"Sec-Fetch-Site": "cross-site"})
        assert linked.status_code == 401
        assert '<meta http-equiv="refresh" content="0">' in linked.text

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_the_cookie_is_secure_over_https(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)

    async def main() -> None:
        async with open_service(config, clock=emulator.clock.now) as (engine, _, ledger):
            operations = Operations(engine, ledger)
            app = create_app(operations, config.api, Monitor(ledger, engine.clock))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://dash") as client:
                signed = await client.post("/sign-in", data={"token": VIEWER})
                assert signed.status_code == 303
                assert "secure" in signed.headers["set-cookie"].lower()
                page = await client.get("/")
                assert "Signed in as <strong>dashboard</strong> (viewer)" in page.text

    asyncio.run(main())


def test_a_session_ends_with_its_token_or_its_time(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)
    session: dict[str, str] = {}

    async def signing_in(client: httpx.AsyncClient, operations: Operations) -> None:
        session["id"] = await sign_in(client, OPERATOR)
        assert (await client.get("/")).status_code == 200

    async def still_signed_in(client: httpx.AsyncClient, operations: Operations) -> None:
        # Another replica (or this one restarted) on the same ledger knows the session.
        client.cookies.set(COOKIE, session["id"])
        page = await client.get("/")
        assert "Signed in as <strong>sheriffs</strong>" in page.text
        emulator.clock.set(T + SESSION_LIFETIME, frozen=True)
        expired = await client.get("/")
        assert expired.status_code == 401
        emulator.clock.set(T, frozen=True)

    async def gone(client: httpx.AsyncClient, operations: Operations) -> None:
        client.cookies.set(COOKIE, session["id"])
        assert (await client.get("/")).status_code == 401

    async def demoted(client: httpx.AsyncClient, operations: Operations) -> None:
        client.cookies.set(COOKIE, session["id"])
        assert (await client.get("/")).status_code == 401

    _serve(config, emulator, signing_in)
    _serve(config, emulator, still_signed_in)
    removed = replace(config.api, tokens=_tokens()[1:])
    _serve(replace(config, api=removed), emulator, gone)
    viewer_now = replace(config.api, tokens=_tokens("viewer"))
    _serve(replace(config, api=viewer_now), emulator, demoted)


def test_too_many_failed_sign_ins_wait_but_a_known_token_still_signs_in(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        for _ in range(SIGN_IN_FAILURES):
            assert (await client.post("/sign-in", data={"token": "wrong"})).status_code == 401
        refused = await client.post("/sign-in", data={"token": "wrong again"})
        assert refused.status_code == 429
        assert "Retry-After" in refused.headers
        # Someone else's guesses from the same address (a proxy's) lock nobody out.
        assert (await client.post("/sign-in", data={"token": OPERATOR})).status_code == 303
        emulator.clock.set(T + timedelta(minutes=16), frozen=True)
        assert (await client.post("/sign-in", data={"token": "wrong"})).status_code == 401

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_forms_need_an_operator_session_and_its_csrf_token(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)
    fire = "/projects/alpha/jobs/hourly/fire"
    pause = "/projects/alpha/jobs/hourly/pause"

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        anonymous = await _post(client, fire)
        assert anonymous.status_code == 401
        assert 'href="/sign-in"' in anonymous.text
        # An operator's header is no session: forms act for a session only.
        header = await client.post(fire, headers={"Authorization": f"Bearer {OPERATOR}"})
        assert header.status_code == 401

        await sign_in(client, VIEWER)
        viewer_page = (await client.get("/projects/alpha")).text
        assert re.search(
            r"<button type=\"submit\"[^>]* disabled[^>]*>Fire now</button>", viewer_page
        )
        assert "operators only" in viewer_page
        viewer_csrf = await csrf_token(client, PROJECT_PAGE)
        forged = await _post(client, fire, csrf=viewer_csrf)
        assert forged.status_code == 403
        assert "viewer" in forged.text
        forged = await _post(client, pause, csrf=viewer_csrf, reason="forged")
        assert forged.status_code == 403

        await sign_in(client, OPERATOR)
        operator_page = (await client.get("/projects/alpha")).text
        assert not re.search(r"disabled[^>]*>Fire now<", operator_page)
        assert (await _post(client, fire)).status_code == 403
        assert (await _post(client, fire, csrf=viewer_csrf)).status_code == 403
        assert (await _post(client, pause, csrf="", reason="x")).status_code == 403

    _serve(config, emulator, scenario)
    assert emulator.tasks() == []
    assert _audit(config) == []


def test_fire_pause_and_resume_from_the_forms(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)
    until = (T + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        csrf = await csrf_token(client, PROJECT_PAGE)
        given = {"nightly": True, "note": "by hand"}
        fired = await _post(
            client, "/projects/alpha/jobs/hourly/fire", csrf=csrf, input=json.dumps(given)
        )
        assert fired.status_code == 303, fired.text
        location = fired.headers["location"]
        assert re.fullmatch(r"/fires/\d+\?notice=fired", location)
        page = await client.get(location)
        assert "Fired: this is the fire you made." in page.text
        [task] = emulator.tasks()
        assert task.task_id in page.text

        # The manual hold-off: a second fire at once is refused, and nothing is made.
        again = await _post(client, "/projects/alpha/jobs/hourly/fire", csrf=csrf)
        assert again.status_code == 429
        assert "Retry-After" in again.headers
        assert len(emulator.tasks()) == 1

        paused = await _post(
            client,
            "/projects/alpha/jobs/hourly/pause",
            csrf=csrf,
            reason="tree closed",
            until=until,
        )
        assert paused.status_code == 303
        assert paused.headers["location"] == "/projects/alpha?notice=paused"
        page = (await client.get(paused.headers["location"])).text
        assert "tree closed" in page
        assert ">Resume</button>" in page
        resumed = await _post(client, "/projects/alpha/jobs/hourly/resume", csrf=csrf)
        assert resumed.headers["location"] == "/projects/alpha?notice=resumed"
        nothing = await _post(client, "/projects/alpha/jobs/hourly/resume", csrf=csrf)
        assert nothing.headers["location"] == "/projects/alpha?notice=not-paused"

        project = await _post(client, "/projects/alpha/pause", csrf=csrf, reason="freeze")
        assert project.status_code == 303
        assert ">Resume project</button>" in (await client.get("/projects/alpha")).text
        assert (await _post(client, "/projects/alpha/resume", csrf=csrf)).status_code == 303

        audit = (await client.get("/audit")).text
        assert "sheriffs (dashboard)" in audit

    _serve(config, emulator, scenario)
    assert _audit(config) == [
        ("sheriffs (dashboard)", "resume", "alpha", True),
        ("sheriffs (dashboard)", "pause", "alpha", True),
        ("sheriffs (dashboard)", "resume", "alpha/hourly", False),
        ("sheriffs (dashboard)", "resume", "alpha/hourly", True),
        ("sheriffs (dashboard)", "pause", "alpha/hourly", True),
        ("sheriffs (dashboard)", "fire", "alpha/hourly", False),
        ("sheriffs (dashboard)", "fire", "alpha/hourly", True),
    ]
    with Ledger.open(config.ledger_url) as ledger:
        fire_act = ledger.audit_log()[-1]
        assert fire_act.input == {"input": {"nightly": True, "note": "by hand"}, "dry_run": False}
        [pause] = [e for e in ledger.audit_log() if e.action == "pause" and e.target != "alpha"]
        assert pause.input == {
            "reason": "tree closed",
            "until": (T + timedelta(hours=3)).isoformat(),
        }


def test_bad_input_is_a_page_that_says_what_to_fix_and_does_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        csrf = await csrf_token(client, PROJECT_PAGE)
        fire = "/projects/alpha/jobs/hourly/fire"
        broken = await _post(client, fire, csrf=csrf, input='{"nightly": tru')
        assert broken.status_code == 400
        assert "Cron input: not JSON" in broken.text
        assert "Nothing was done" in broken.text
        listed = await _post(client, fire, csrf=csrf, input="[1, 2]")
        assert listed.status_code == 400
        assert "a JSON object is needed" in listed.text
        no_reason = await _post(client, "/projects/alpha/jobs/hourly/pause", csrf=csrf, reason=" ")
        assert no_reason.status_code == 400
        assert "reason" in no_reason.text
        bad_until = await _post(
            client, "/projects/alpha/jobs/hourly/pause", csrf=csrf, reason="x", until="tomorrow"
        )
        assert bad_until.status_code == 400
        assert "Until: &#39;tomorrow&#39; is not a time" in bad_until.text
        # At the calendar's edge, an offset leaves UTC's range: said, never a crash.
        for edge in ("0001-01-01T00:00+05:00", "9999-12-31T23:59-05:00"):
            out_of_range = await _post(
                client, "/projects/alpha/jobs/hourly/pause", csrf=csrf, reason="x", until=edge
            )
            assert out_of_range.status_code == 400, edge
            assert "is not a time in UTC&#39;s range" in out_of_range.text
            api = await client.post(
                "/api/v1/projects/alpha/jobs/hourly/pause",
                json={"reason": "x", "until": edge},
                headers={"Authorization": f"Bearer {OPERATOR}"},
            )
            assert api.status_code == 422, edge
            assert "out of range once in UTC" in api.text
        bad_revision = await _post(
            client, "/projects/alpha/action", csrf=csrf, action="retrigger", revision="abc"
        )
        assert bad_revision.status_code == 400
        assert "revision" in bad_revision.text
        unknown = await _post(client, "/projects/nope/jobs/hourly/fire", csrf=csrf)
        assert unknown.status_code == 404
        not_a_form = await client.post(fire, json={"csrf": csrf})
        assert not_a_form.status_code == 403  # no form, so no CSRF token: nothing read further

    _serve(config, emulator, scenario)
    assert emulator.tasks() == []
    # Bad input never reached an operation; the unknown project is the operation's own refusal.
    assert [(a, ok) for _, a, _, ok in _audit(config)] == [("fire", False)]


def test_dry_runs_create_nothing(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def checked_box(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        csrf = await csrf_token(client, PROJECT_PAGE)
        fired = await _post(client, "/projects/alpha/jobs/hourly/fire", csrf=csrf, dry_run="on")
        assert fired.status_code == 303, fired.text
        assert fired.headers["location"].endswith("?notice=fired-dry-run")
        page = (await client.get(fired.headers["location"])).text
        assert "dry-run" in page

    async def deployment_dry_run(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        csrf = await csrf_token(client, PROJECT_PAGE)
        fired = await _post(client, "/projects/alpha/jobs/hourly/fire", csrf=csrf)
        assert fired.status_code == 303, fired.text
        assert fired.headers["location"].endswith("?notice=fired-dry-run")

    _serve(_config(emulator, tmp_path / "box"), emulator, checked_box)
    _serve(_config(emulator, tmp_path / "all", dry_run=True), emulator, deployment_dry_run)
    assert emulator.tasks() == []


def test_no_token_or_session_id_in_pages_logs_or_ledger(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)
    seen: list[str] = []
    sessions: list[str] = []

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        for token in (VIEWER, OPERATOR):
            sessions.append(await sign_in(client, token))
            csrf = await csrf_token(client, PROJECT_PAGE)
            for path in ("/", "/projects/alpha", "/audit", "/sign-in"):
                seen.append((await client.get(path)).text)
            answer = await _post(client, "/projects/alpha/jobs/hourly/fire", csrf=csrf)
            seen.append(answer.text + str(answer.headers.get("location")))
            fire = answer.headers.get("location")
            if fire:
                seen.append((await client.get(fire)).text)
            seen.append((await client.post("/sign-in", data={"token": token + "x"})).text)

    with capture_logs() as logs:
        _serve(config, emulator, scenario)
    assert any(line["event"] == "signed in to the dashboard" for line in logs)
    canaries = [OPERATOR, VIEWER, *sessions]
    assert all(len(c) > 20 for c in canaries)
    for text in [*seen, *(repr(line) for line in logs)]:
        leaked = [c[:16] for c in canaries if c[:16] in text]
        assert not leaked, text[:300]
    engine = create_engine(config.ledger_url)
    try:
        with engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                for row in connection.execute(select(table)):
                    text = repr(tuple(row))
                    assert not [c for c in canaries if c[:16] in text], table.name
    finally:
        engine.dispose()


def test_the_cookie_value_is_masked_in_any_text_the_log_shows() -> None:
    session_id = secrets.token_urlsafe(32)
    for text in (f"Cookie: {COOKIE}={session_id}", f"set-cookie: {COOKIE}={session_id}; Path=/"):
        assert session_id not in scrub(text)


def test_a_public_reader_sees_the_forms_disabled(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)
    config = replace(config, api=replace(config.api, public_reads=True))

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        page = (await client.get("/projects/alpha")).text
        assert re.search(r"<button type=\"submit\"[^>]* disabled[^>]*>Fire now</button>", page)
        assert "sign in to act" in page
        assert 'name="csrf"' not in page  # no session, no token
        assert (await client.post("/projects/alpha/resume")).status_code == 401

    _serve(config, emulator, scenario)
    assert _audit(config) == []


def test_a_stopping_service_takes_no_act_from_the_forms(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)

    async def main() -> None:
        async with open_service(config, clock=emulator.clock.now) as (engine, _, ledger):
            draining = Draining()
            app = create_app(
                Operations(engine, ledger), config.api, Monitor(ledger, engine.clock), draining
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
                await sign_in(client, OPERATOR)
                csrf = await csrf_token(client, PROJECT_PAGE)
                draining.stop_taking_acts()
                refused = await _post(client, "/projects/alpha/jobs/hourly/fire", csrf=csrf)
                assert refused.status_code == 503
                assert "stopping" in refused.text
                # Reads go on.
                assert (await client.get("/projects/alpha")).status_code == 200

    asyncio.run(main())
    assert emulator.tasks() == []
    assert _audit(config) == []


def test_a_fire_taskcluster_refuses_is_a_502_page_linking_its_fire(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path, GREEDY_TEMPLATE)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        refused = await _post(
            client, "/projects/alpha/jobs/hourly/fire", csrf=await csrf_token(client, PROJECT_PAGE)
        )
        assert refused.status_code == 502, refused.text
        assert "InsufficientScopes" in refused.text
        link = re.search(r'<a href="(/fires/\d+)">See the fire it recorded</a>', refused.text)
        assert link is not None
        fire = await client.get(link.group(1))
        assert "state-failed" in fire.text

    _serve(config, emulator, scenario)
    assert emulator.tasks() == []
    assert _audit(config) == [("sheriffs (dashboard)", "fire", "alpha/hourly", False)]


def test_trigger_an_action_and_remediate_from_the_forms(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    seed_rebuild_action(emulator, "alpha")
    config = _config(emulator, tmp_path)
    action = "/projects/alpha/action"

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        csrf = await csrf_token(client, PROJECT_PAGE)
        dry = await _post(client, action, csrf=csrf, action="rebuild-cached-tasks", dry_run="on")
        assert dry.headers["location"] == "/audit?notice=action-dry-run", dry.text
        before = len(emulator.tasks())
        given = json.dumps({"kinds": ["toolchain"]})
        done = await _post(client, action, csrf=csrf, action="rebuild-cached-tasks", input=given)
        assert done.headers["location"] == "/audit?notice=action", done.text
        assert len(emulator.tasks()) == before + 1
        audit = (await client.get(done.headers["location"])).text
        assert "Action triggered" in audit
        assert "triggered project-tcs/" in audit
        unknown = await _post(client, action, csrf=csrf, action="no-such-action")
        assert unknown.status_code == 400, unknown.text
        assert "no task-group action named &#39;no-such-action&#39;" in unknown.text
        assert (await _post(client, action, csrf=csrf, action=" ")).status_code == 400

        scanned = await _post(client, "/projects/alpha/expiry/remediate", csrf=csrf, dry_run="on")
        assert scanned.headers["location"] == "/audit?notice=remediated", scanned.text

    _serve(config, emulator, scenario)
    assert [(actor, act, ok) for actor, act, _, ok in _audit(config)] == [
        ("sheriffs (dashboard)", "expiry-remediate", True),
        ("sheriffs (dashboard)", "action", False),
        ("sheriffs (dashboard)", "action", True),
        ("sheriffs (dashboard)", "action", True),
    ]
    with Ledger.open(config.ledger_url) as ledger:
        triggered = ledger.audit_log()[2:4]
    assert triggered[0].input == {
        "input": {"kinds": ["toolchain"]},
        "revision": None,
        "dry_run": False,
    }
    assert triggered[1].input == {"input": None, "revision": None, "dry_run": True}


def test_another_sites_page_cannot_sign_in_out_or_act(emulator: Emulator, tmp_path: Path) -> None:
    """A page of another site that submits a form here (login CSRF, a forced sign-out, an act):
    refused before anything is read, whatever cookie the browser brought."""
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path)
    elsewhere = [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling sub-domain is another site's page too
        {"Origin": "https://attacker.example"},
        {"Origin": "null"},
    ]

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        session_id = await sign_in(client, OPERATOR)
        csrf = await csrf_token(client, PROJECT_PAGE)
        for headers in elsewhere:
            signed = await client.post("/sign-in", data={"token": VIEWER}, headers=headers)
            assert signed.status_code == 403, headers
            assert "another site" in signed.text
            assert client.cookies[COOKIE] == session_id, "the session was not replaced"
            out = await client.post("/sign-out", data={"csrf": csrf}, headers=headers)
            assert out.status_code == 403, headers
            assert "set-cookie" not in out.headers
            fired = await client.post(
                "/projects/alpha/jobs/hourly/fire", data={"csrf": csrf}, headers=headers
            )
            assert fired.status_code == 403, headers
        assert await operations.sessions.find(session_id, _tokens()) is not None
        # This site's own pages (and clients that are not browsers) still act: a browser that
        # says where it comes from, one that gives only its Origin (plain HTTP), including
        # through a proxy that rewrote Host and said the original.
        origin = str(client.base_url).rstrip("/")
        for own in (
            {"Sec-Fetch-Site": "same-origin", "Origin": origin},
            {"Origin": origin},
            {"Origin": "https://scheduler.example", "X-Forwarded-Host": "scheduler.example"},
        ):
            paused = await client.post(
                "/projects/alpha/jobs/hourly/pause",
                data={"csrf": csrf, "reason": "x"},
                headers=own,
            )
            assert paused.status_code == 303, own
        # A sign-out that brings no cookie sets none either (nothing to forget).
        client.cookies.clear()
        assert "set-cookie" not in (await client.post("/sign-out", data={})).headers

    _serve(config, emulator, scenario)
    assert emulator.tasks() == []
    assert [(a, ok) for _, a, _, ok in _audit(config)] == [("pause", True)] * 3


def test_pages_are_not_framed_and_load_only_their_own_assets(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        for path in ("/", PROJECT_PAGE, "/audit", "/sign-in", "/projects/nope"):
            page = await client.get(path)
            policy = page.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy, path
            assert "default-src 'self'" in policy, path
            assert page.headers["x-frame-options"] == "DENY", path
            assert page.headers["x-content-type-options"] == "nosniff", path

    _serve(_config(emulator, tmp_path), emulator, scenario)


def test_a_job_whose_name_has_a_slash_is_acted_on_by_its_whole_name(
    emulator: Emulator, tmp_path: Path
) -> None:
    """build-decision allows any job name: a slash in it is part of the name, on the forms'
    routes and the API's alike."""
    emulator.clock.set(T, frozen=True)
    config = _config(emulator, tmp_path, cron=HOURLY + SLASHED_JOB)

    async def scenario(client: httpx.AsyncClient, operations: Operations) -> None:
        await sign_in(client, OPERATOR)
        csrf = await csrf_token(client, PROJECT_PAGE)
        # Its last part alone is no job: the form says so, naming the jobs there are.
        part = await _post(client, "/projects/alpha/jobs/ship/pause", csrf=csrf, reason="x")
        assert part.status_code == 404, part.text
        assert "has no job &#39;ship&#39;" in part.text
        assert "its jobs: hourly, l10n/ship" in part.text
        form = await _post(client, "/projects/alpha/jobs/l10n/ship/pause", csrf=csrf, reason="x")
        assert form.status_code == 303, form.text
        api = await client.delete(
            "/api/v1/projects/alpha/jobs/l10n/ship/pause",
            headers={"Authorization": f"Bearer {OPERATOR}"},
        )
        assert api.status_code == 200, api.text

    _serve(config, emulator, scenario)
    assert [(a, t) for _, a, t, _ in _audit(config)] == [  # newest first
        ("resume", "alpha/l10n/ship"),
        ("pause", "alpha/l10n/ship"),
    ]
