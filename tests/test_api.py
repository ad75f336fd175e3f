"""The HTTP API through a real HTTP client: roles, errors, pause and resume, fire now, audit, and
secrets kept out of every answer."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.config.errors import ConfigError
from scheduler.config.loading import load_config, read_config
from scheduler.config.model import ApiSettings, ApiToken, Config
from scheduler.engine import Engine
from scheduler.ledger import Act, FireState, Ledger
from scheduler.monitoring import Monitor
from scheduler.operations.acts import Operations
from scheduler.service import open_service
from scheduler.web.auth import hash_token
from scheduler.web.server import ApiServer
from tests.emulator import Emulator
from tests.support.emulated import taskcluster_environment
from tests.support.projects import HOURLY, OWN_TEMPLATE, make_config, project, write_service_config
from tests.support.repos import Repository

T = datetime(2026, 12, 1, tzinfo=UTC)
OPERATOR = "op-" + secrets.token_urlsafe(24)
VIEWER = "view-" + secrets.token_urlsafe(24)


def api_config(emulator: Emulator, tmp_path: Path, *, public_reads: bool = False) -> Config:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(emulator, tmp_path, project("alpha", repository))
    api = ApiSettings(
        host="127.0.0.1",
        port=0,
        public_reads=public_reads,
        tokens=(
            ApiToken("sheriffs", "operator", hash_token(OPERATOR)),
            ApiToken("dashboard", "viewer", hash_token(VIEWER)),
        ),
    )
    return replace(config, api=api)


Scenario = Callable[[Engine, httpx.AsyncClient], Awaitable[None]]


def serve(config: Config, emulator: Emulator, scenario: Scenario) -> None:
    async def main() -> None:
        async with open_service(config, clock=emulator.clock.now) as (engine, _, ledger):
            monitor = Monitor(ledger, engine.clock)
            server = ApiServer(Operations(engine, ledger), engine.config.api, monitor)
            server.start()
            assert server.url is not None
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    await scenario(engine, client)
            finally:
                await server.stop()

    asyncio.run(main())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == error
    assert body["message"]
    return body


def test_roles_decide_who_reads_and_who_acts(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        anonymous = await client.get("/api/v1/projects")
        assert_error(anonymous, 401, "unauthorized")
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        assert_error(await client.get("/api/v1/fires", headers=bearer("nope")), 401, "unauthorized")
        assert_error(
            await client.get("/api/v1/fires", headers={"Authorization": f"Basic {VIEWER}"}),
            401,
            "unauthorized",
        )
        for path in ("/api/v1/projects", "/api/v1/fires", "/api/v1/audit"):
            assert (await client.get(path, headers=bearer(VIEWER))).status_code == 200, path
        pause = {"reason": "tree closed"}
        viewer_acts = await client.post(
            "/api/v1/projects/alpha/pause", json=pause, headers=bearer(VIEWER)
        )
        assert "viewer" in assert_error(viewer_acts, 403, "forbidden")["message"]
        assert_error(
            await client.post("/api/v1/projects/alpha/pause", json=pause), 401, "unauthorized"
        )
        acted = await client.post(
            "/api/v1/projects/alpha/pause", json=pause, headers=bearer(OPERATOR)
        )
        assert acted.status_code == 200, acted.text
        assert acted.json()["paused_by"] == "sheriffs (api)"

    serve(api_config(emulator, tmp_path), emulator, scenario)


def test_public_reads_never_make_acts_public(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        [alpha] = (await client.get("/api/v1/projects")).json()
        assert alpha["name"] == "alpha"
        assert alpha["paused"] == []
        fired = await client.post("/api/v1/projects/alpha/jobs/hourly/fire", json={})
        assert_error(fired, 401, "unauthorized")

    serve(api_config(emulator, tmp_path, public_reads=True), emulator, scenario)


def test_pause_then_slot_then_resume(emulator: Emulator, tmp_path: Path) -> None:
    config = api_config(emulator, tmp_path)

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        emulator.clock.set(T - timedelta(minutes=5), frozen=True)
        paused = await client.post(
            "/api/v1/projects/alpha/jobs/hourly/pause",
            json={"reason": "bad nightly", "until": (T + 2 * timedelta(hours=1)).isoformat()},
            headers=bearer(OPERATOR),
        )
        assert paused.status_code == 200, paused.text
        [alpha] = (await client.get("/api/v1/projects", headers=bearer(VIEWER))).json()
        assert [p["job"] for p in alpha["paused"]] == ["hourly"]

        emulator.clock.set(T, frozen=True)
        [result] = await engine.tick(T)
        assert [f.state for f in result.paused] == [FireState.SKIPPED]
        [skipped] = (
            await client.get("/api/v1/fires?project=alpha&state=skipped", headers=bearer(VIEWER))
        ).json()
        assert "bad nightly" in skipped["error"]
        assert "sheriffs (api)" in skipped["error"]

        resumed = await client.delete(
            "/api/v1/projects/alpha/jobs/hourly/pause", headers=bearer(OPERATOR)
        )
        body = resumed.json()
        assert (body["resumed"], body["still_paused"]) == (True, [])
        assert (body["lifted"]["job"], body["lifted"]["paused_by"]) == ("hourly", "sheriffs (api)")
        emulator.clock.set(T + timedelta(hours=1), frozen=True)
        [result] = await engine.tick(T + timedelta(hours=1))
        assert [f.state for f in result.fires] == [FireState.CREATED]
        again = await client.delete(
            "/api/v1/projects/alpha/jobs/hourly/pause", headers=bearer(OPERATOR)
        )
        assert again.json() == {"resumed": False, "lifted": None, "still_paused": []}

    serve(config, emulator, scenario)
    with Ledger.open(config.ledger_url) as ledger:
        log = ledger.audit_log()
    assert [(e.action, e.actor, e.ok) for e in log] == [
        ("resume", "sheriffs (api)", False),
        ("resume", "sheriffs (api)", True),
        ("pause", "sheriffs (api)", True),
    ]
    assert OPERATOR not in json.dumps([str(e) for e in log])


def test_fire_now_creates_exactly_one_task(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T + timedelta(minutes=7), frozen=True)

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        fired = await client.post(
            "/api/v1/projects/alpha/jobs/hourly/fire",
            json={"input": {"why": "retry"}},
            headers=bearer(OPERATOR),
        )
        assert fired.status_code == 200, fired.text
        body = fired.json()
        assert body["state"] == "created"
        [task] = emulator.tasks()
        assert body["task_id"] == task.task_id
        [record] = (await client.get("/api/v1/fires", headers=bearer(VIEWER))).json()
        detail = await client.get(f"/api/v1/fires/{record['id']}", headers=bearer(VIEWER))
        assert detail.json()["details"]["task"]["metadata"]
        [act] = (await client.get("/api/v1/audit", headers=bearer(VIEWER))).json()
        assert (act["actor"], act["action"], act["target"], act["ok"]) == (
            "sheriffs (api)",
            "fire",
            "alpha/hourly",
            True,
        )
        assert act["input"] == {"input": {"why": "retry"}, "dry_run": False}
        assert task.task_id in act["result"]
        for response in (fired, detail):
            assert OPERATOR not in response.text

    serve(api_config(emulator, tmp_path), emulator, scenario)


def test_bad_input_gets_a_json_error_never_a_500(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        op = bearer(OPERATOR)
        empty = await client.post("/api/v1/projects/alpha/pause", json={"reason": ""}, headers=op)
        assert "reason" in assert_error(empty, 422, "invalid-request")["message"]
        past = await client.post(
            "/api/v1/projects/alpha/pause",
            json={"reason": "x", "until": "2000-01-01T00:00:00Z"},
            headers=op,
        )
        assert "future" in assert_error(past, 400, "invalid-pause")["message"]
        unknown = await client.post("/api/v1/projects/beta/pause", json={"reason": "x"}, headers=op)
        assert "configured: alpha" in assert_error(unknown, 404, "not-found")["message"]
        no_job = await client.post("/api/v1/projects/alpha/jobs/nope/fire", json={}, headers=op)
        assert (
            "has no job 'nope'; its jobs: hourly"
            in assert_error(no_job, 404, "not-found")["message"]
        )
        for method in ("POST", "DELETE"):  # a typo would leave the real job firing
            typo = await client.request(
                method,
                "/api/v1/projects/alpha/jobs/hourlly/pause",
                json={"reason": "x"},
                headers=op,
            )
            said = assert_error(typo, 404, "not-found")["message"]
            assert "has no job 'hourlly' (did you mean 'hourly'?); its jobs: hourly" in said
        garbled = await client.post(
            "/api/v1/projects/alpha/pause",
            content=b"{not json",
            headers={**op, "Content-Type": "application/json"},
        )
        assert_error(garbled, 422, "invalid-request")
        assert_error(await client.get("/api/v1/fires?limit=0", headers=op), 422, "invalid-request")
        assert_error(await client.get("/api/v1/fires/999", headers=op), 404, "not-found")
        assert_error(await client.get("/api/v1/nowhere", headers=op), 404, "not-found")
        document = (await client.get("/openapi.json")).json()
        assert "/api/v1/projects/{project}/jobs/{job}/fire" in document["paths"]
        assert (await client.get("/livez")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ok"}

    serve(api_config(emulator, tmp_path), emulator, scenario)


def test_new_token_prints_the_token_once_and_a_config_entry_with_its_hash(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["api", "new-token", "sheriffs", "--role", "operator"])
    assert result.exit_code == 0, result.output
    token = result.stderr.rsplit(": ", 1)[1].strip()
    entry = yaml.safe_load(result.stdout)["api"]["tokens"][0]
    assert entry == {"name": "sheriffs", "role": "operator", "sha256": hash_token(token)}
    assert token not in result.stdout
    config = load_config(
        yaml.safe_dump(
            {
                "taskcluster": {"root-url": "https://tc.example.com"},
                "projects": [],
                "api": {"tokens": [entry]},
            }
        ),
        "service.yml",
        {},
    )
    assert config.api.tokens[0].role == "operator"


def test_new_token_wants_a_name_and_a_bad_hash_names_the_command_that_makes_one() -> None:
    for blank in ("", "  "):
        refused = CliRunner().invoke(main, ["api", "new-token", blank])
        assert refused.exit_code == 2, refused.output
        assert "Invalid value for NAME: give the token a name" in refused.stderr
        assert "token (give it to" not in refused.stderr  # no token was made
    with pytest.raises(ConfigError) as raised:
        load_config(
            yaml.safe_dump(
                {
                    "taskcluster": {"root-url": "https://tc.example.com"},
                    "projects": [],
                    "api": {"tokens": [{"name": "s", "role": "viewer", "sha256": "abc"}]},
                }
            ),
            "service.yml",
            {},
        )
    said = raised.value.describe()
    assert "`tc-scheduler api new-token NAME` makes a token" in said
    assert "hash-token" not in said


def test_a_double_click_fires_once_and_says_when_to_retry(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T + timedelta(minutes=7), frozen=True)

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        path = "/api/v1/projects/alpha/jobs/hourly/fire"
        first, second = await asyncio.gather(
            client.post(path, json={}, headers=bearer(OPERATOR)),
            client.post(path, json={}, headers=bearer(OPERATOR)),
        )
        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 429], (first.text, second.text)
        refused = first if first.status_code == 429 else second
        assert "try again in" in assert_error(refused, 429, "too-soon")["message"]
        assert refused.headers["Retry-After"] == "61"
        assert len(emulator.tasks()) == 1

    serve(api_config(emulator, tmp_path), emulator, scenario)


def test_fires_filter_by_time_range_and_page(emulator: Emulator, tmp_path: Path) -> None:
    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        for hours in range(3):
            slot = T + timedelta(hours=hours)
            emulator.clock.set(slot, frozen=True)
            await engine.tick(slot)

        async def slots(query: str) -> list[str]:
            response = await client.get(f"/api/v1/fires?{query}", headers=bearer(VIEWER))
            assert response.status_code == 200, response.text
            return [fire["slot"][:16] for fire in response.json()]

        assert await slots("") == ["2026-12-01T02:00", "2026-12-01T01:00", "2026-12-01T00:00"]
        window = "since=2026-12-01T00:30:00Z&until=2026-12-01T02:00:00Z"
        assert await slots(window) == ["2026-12-01T01:00"]
        assert await slots("limit=1&offset=1") == ["2026-12-01T01:00"]
        assert await slots("limit=2&offset=2") == ["2026-12-01T00:00"]
        bad = await client.get("/api/v1/fires?offset=-1", headers=bearer(VIEWER))
        assert_error(bad, 422, "invalid-request")

    serve(api_config(emulator, tmp_path), emulator, scenario)


def test_an_unreadable_repository_is_a_502_that_says_so(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    config = api_config(emulator, tmp_path)
    shutil.rmtree(tmp_path / "alpha")

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        listed = await client.get("/api/v1/projects/alpha/jobs", headers=bearer(VIEWER))
        message = assert_error(listed, 502, "repository-unreachable")["message"]
        assert "alpha" in message
        fired = await client.post(
            "/api/v1/projects/alpha/jobs/hourly/fire", json={}, headers=bearer(OPERATOR)
        )
        assert assert_error(fired, 502, "repository-unreachable")["message"] == message
        assert emulator.tasks() == []

    serve(config, emulator, scenario)


def test_a_secret_quoted_by_a_broken_cron_file_is_masked_in_every_answer(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    canary = "canary" + secrets.token_hex(12)
    cron = HOURLY + (
        "  - name: held\n"
        "    job: {type: decision-task, treeherder-symbol: D, target-tasks-method: held}\n"
        "    when: [{minute: 0}]\n"
        "  - name: leaky\n"
        "    job: {type: decision-task, treeherder-symbol: L, target-tasks-method: leaky}\n"
        f'    when: [{{minute: "{canary}"}}]\n'
    )
    repository = Repository(
        tmp_path / "repo", {".cron.yml": cron, ".taskcluster.yml": OWN_TEMPLATE}
    )
    path = write_service_config(tmp_path, repository, project="alpha")
    # A pause recorded before the secret was known to this process holds it in clear.
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        ledger.pause(
            "alpha",
            "held",
            reason=f"rotating {canary}",
            until=None,
            act=Act("t", "pause", "alpha/held", None),
            now=T,
        )
    # The service is given the secret in a variable whose name says it is one.
    environ = {**taskcluster_environment(emulator), "MY_API_TOKEN": canary}
    config = replace(
        read_config(path, environ),
        api=ApiSettings(host="127.0.0.1", port=0, public_reads=True, tokens=()),
    )

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        await engine.tick(T)
        jobs = await client.get("/api/v1/projects/alpha/jobs")
        fires = await client.get("/api/v1/fires")
        details = [await client.get(f"/api/v1/fires/{fire['id']}") for fire in fires.json()]
        answers = [
            jobs,
            fires,
            *details,
            await client.get("/api/v1/projects"),
            await client.get("/api/v1/audit"),
            # Errors too, here about a name the request itself holds.
            await client.get(f"/api/v1/projects/{canary}/jobs"),
        ]

        assert [answer.text.count(canary) for answer in answers] == [0] * len(answers)
        # What quoted it is still there, masked.
        [problem] = jobs.json()["problems"]
        assert problem.endswith('minute must be one of 0, 15, 30, 45 (got "***")')
        held = {job["name"]: job for job in jobs.json()["jobs"]}["held"]
        assert held["paused"]["reason"] == "rotating ***"
        assert {(fire["job"], fire["state"]) for fire in fires.json()} == {
            ("hourly", "created"),
            ("held", "skipped"),
        }
        assert "rotating ***" in {fire["job"]: fire for fire in fires.json()}["held"]["error"]
        assert all(answer.status_code == 200 for answer in answers[:-1])
        assert_error(answers[-1], 404, "not-found")

    serve(config, emulator, scenario)


def test_an_expiry_scan_that_taskcluster_fails_is_a_502(emulator: Emulator, tmp_path: Path) -> None:
    emulator.clock.set(T, frozen=True)
    emulator.faults.add("index.listNamespaces", error_rate=1.0, errors=["503"])

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        answer = await client.post(
            "/api/v1/projects/alpha/expiry/remediate", json={}, headers=bearer(OPERATOR)
        )
        message = assert_error(answer, 502, "taskcluster-error")["message"]
        assert message == (
            "alpha: the expiry scan failed: index.listNamespaces(tcs.cache.level-1) failed: "
            "Taskcluster answered 503 Service Unavailable, still after 5 retries"
        )

    config = api_config(emulator, tmp_path)
    serve(config, emulator, scenario)
    with Ledger.open(config.ledger_url) as ledger:
        [act] = ledger.audit_log()
    assert (act.action, act.ok) == ("expiry-remediate", False)


def test_a_body_over_64_kib_is_a_413_whether_announced_or_streamed(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T + timedelta(minutes=7), frozen=True)
    fire = "/api/v1/projects/alpha/jobs/hourly/fire"
    big = json.dumps({"input": {"blob": "x" * (64 * 1024)}}).encode()
    op = {**bearer(OPERATOR), "Content-Type": "application/json"}

    async def streamed() -> Any:  # no Content-Length: the body is counted as it arrives
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    async def scenario(engine: Engine, client: httpx.AsyncClient) -> None:
        announced = await client.post(fire, content=big, headers=op)
        chunked = await client.post(fire, content=streamed(), headers=op)
        assert "content-length" not in chunked.request.headers
        for answer in (announced, chunked):
            message = assert_error(answer, 413, "too-large")["message"]
            assert "larger than 64 KiB" in message
        # Under the limit, a body is read and judged as usual.
        reason = {"reason": "r" * (60 * 1024)}
        judged = await client.post("/api/v1/projects/alpha/pause", json=reason, headers=op)
        assert_error(judged, 422, "invalid-request")
        assert emulator.tasks() == []

    config = api_config(emulator, tmp_path)
    serve(config, emulator, scenario)
    with Ledger.open(config.ledger_url) as ledger:
        assert ledger.fires() == []
        assert ledger.audit_log() == []
