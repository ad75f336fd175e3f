"""The API as operators reach it: `tc-scheduler run` serving on a free port, driven over HTTP
with the emulator behind it. Every endpoint, every role, and the acts end to end.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import taskcluster
import taskcluster.exceptions

from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import REPOSITORY_ROLES, task_definition, taskcluster_environment
from tests.support.expiry import CACHED, HOOK, seed, seed_rebuild_action
from tests.support.repos import Repository
from tests.support.service import Service
from tests.support.waiting import wait_until

TICK = [sys.executable, "-m", "scheduler", "tick"]
OPERATOR = "op-" + secrets.token_urlsafe(24)
VIEWER = "view-" + secrets.token_urlsafe(24)
CRON = """\
jobs:
  - name: nightly
    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}
    when: [{day: 1, hour: 3, minute: 0}]
  - name: build
    job: {type: decision-task, treeherder-symbol: B, target-tasks-method: build}
    when: [{day: 1, hour: 4, minute: 0}]
  - name: beta-only
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: beta}
    run-on-projects: [beta]
    when: [{hour: 5, minute: 0}]
"""
# A hook of the deployment that no file here declares, with a strict trigger schema.
REPORT_HOOK = ("tc-scheduler", "weekly-report")
REPORT_SCHEMA = {
    "type": "object",
    "properties": {"branch": {"type": "string", "enum": ["main", "release"]}},
    "required": ["branch"],
    "additionalProperties": False,
}


@dataclass
class Served:
    url: str
    emulator: Emulator
    config: Path
    env: dict[str, str]
    service: Service

    def get(self, path: str, token: str | None = VIEWER, **params: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", params=params, headers=_bearer(token), timeout=60)

    def post(self, path: str, body: Any = None, token: str | None = OPERATOR) -> httpx.Response:
        return httpx.post(
            f"{self.url}{path}",
            json={} if body is None else body,
            headers=_bearer(token),
            timeout=60,
        )

    def delete(self, path: str, token: str | None = OPERATOR) -> httpx.Response:
        return httpx.delete(f"{self.url}{path}", headers=_bearer(token), timeout=60)

    def tick(self, at: datetime) -> None:
        """A slot evaluated by another process sharing the ledger, as another replica's tick."""
        done = subprocess.run(
            [*TICK, "--config", str(self.config), "--at", at.isoformat()],
            cwd=REPOSITORY_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr


def _bearer(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp_path = tmp_path_factory.mktemp("served")
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        _deployment(emulator)
        repository = Repository(
            tmp_path / "alpha",
            {
                ".cron.yml": CRON,
                ".taskcluster.yml": (REPOSITORY_ROOT / ".taskcluster.yml").read_text(),
            },
        )
        config = tmp_path / "service.yml"
        config.write_text(
            f"ledger: sqlite:///{tmp_path / 'ledger.db'}\n"
            f"state-dir: {tmp_path / 'state'}\n"
            "manual-fire-interval: 1h\n"
            # The backfill act's range, fixed in 2026, stays within what the ledger remembers.
            "retention: {fires: 3650d}\n"
            "api:\n"
            "  listen: 127.0.0.1:0\n"
            "  tokens:\n"
            f"    - {{name: sheriffs, role: operator, sha256: {hash_token(OPERATOR)}}}\n"
            f"    - {{name: dashboard, role: viewer, sha256: {hash_token(VIEWER)}}}\n"
            "projects:\n"
            "  - name: alpha\n"
            "    repository: https://github.com/example/alpha\n"
            f"    fetch-from: {repository.url}\n"
            "    trust-domain: tcs\n"
        )
        env = {**os.environ, **taskcluster_environment(emulator)}
        service = Service([sys.executable, "-m", "scheduler", "run", "--config", str(config)], env)
        try:
            assert wait_until(lambda: _event(service, "serving the API") is not None)
            serving = _event(service, "serving the API")
            assert serving is not None
            yield Served(str(serving["url"]), emulator, config, env, service)
        finally:
            assert service.stop() == 0
        logged = json.dumps(service.lines)
        assert OPERATOR not in logged
        assert VIEWER not in logged
        emulator.assert_conforming()


def _event(service: Service, name: str) -> dict[str, object] | None:
    return next((line for line in list(service.lines) if line.get("event") == name), None)


def _deployment(emulator: Emulator) -> None:
    """What the project's last push left: a decision task with the rebuild action and its
    hook, a hook of the deployment, and two cached tasks a week from expiring."""
    seed_rebuild_action(emulator, "alpha")
    report = task_definition(emulator.clock.now())
    report.update(
        created={"$fromNow": "0 seconds"},
        deadline={"$fromNow": "1 hour"},
        payload={"branch": {"$eval": "payload.branch"}},
    )
    metadata = {"name": "report", "description": "d", "owner": "o@example.com"}
    taskcluster.Hooks(emulator.options()).createHook(
        *REPORT_HOOK, {"metadata": metadata, "task": report, "triggerSchema": REPORT_SCHEMA}
    )
    emulator.set_role(
        f"hook-id:{REPORT_HOOK[0]}/*", ["queue:create-task:*", "queue:scheduler-id:*"]
    )
    for namespace in CACHED:
        seed(emulator, f"{namespace}.latest", timedelta(days=7))


def _month_start(day: date, months_back: int) -> datetime:
    """03:00 UTC on the first of the month `months_back` months before `day`'s."""
    month = day.year * 12 + day.month - 1 - months_back
    return datetime(month // 12, month % 12 + 1, 1, 3, tzinfo=UTC)


def _fires_of_slot(served: Served, job: str, slot: datetime) -> list[dict[str, Any]]:
    until = slot + timedelta(minutes=15)
    window = {"since": slot.isoformat(), "until": until.isoformat()}
    fires: list[dict[str, Any]] = served.get(
        "/api/v1/fires", project="alpha", job=job, **window
    ).json()
    return fires


def _task_ids(emulator: Emulator) -> set[str]:
    return {task.task_id for task in emulator.tasks()}


def _hook_fires(emulator: Emulator, hook: tuple[str, str]) -> list[dict[str, Any]]:
    try:
        listed = taskcluster.Hooks(emulator.options()).listLastFires(*hook)
    except taskcluster.exceptions.TaskclusterRestFailure as error:
        if error.status_code == 404:  # the service's answer for a hook never fired
            return []
        raise
    fires: list[dict[str, Any]] = listed["lastFires"]
    return fires


def _error(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == error, body
    message: str = body["message"]
    return message


# -- who may do what ---------------------------------------------------------------------------

READS = [
    "/api/v1/projects",
    "/api/v1/projects/alpha/jobs",
    "/api/v1/fires",
    "/api/v1/audit",
]
# Acts that change nothing lasting: dry runs, and pauses lifted by the act after them.
ACTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/api/v1/projects/alpha/jobs/nightly/fire", {"dry_run": True}),
    ("POST", "/api/v1/projects/alpha/actions/rebuild-cached-tasks", {"dry_run": True}),
    (
        "POST",
        f"/api/v1/hooks/{REPORT_HOOK[0]}/{REPORT_HOOK[1]}/fire",
        {
            "payload": {"branch": "main"},
            "dry_run": True,
        },
    ),
    ("POST", "/api/v1/projects/alpha/expiry/remediate", {"dry_run": True}),
    (
        "POST",
        "/api/v1/projects/alpha/backfill",
        {"start": "2026-01-01T00:00:00Z", "until": "2026-01-03T00:00:00Z", "dry_run": True},
    ),
    ("POST", "/api/v1/projects/alpha/jobs/beta-only/pause", {"reason": "role check"}),
    ("DELETE", "/api/v1/projects/alpha/jobs/beta-only/pause", None),
    ("POST", "/api/v1/projects/alpha/pause", {"reason": "role check"}),
    ("DELETE", "/api/v1/projects/alpha/pause", None),
]


def test_the_suite_drives_every_operation_of_the_served_document(served: Served) -> None:
    paths = httpx.get(f"{served.url}/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, item in paths.items() for method in item}
    driven = {("GET", path) for path in READS} | {(method, path) for method, path, _ in ACTS}
    driven.add(("GET", "/api/v1/fires/{fire_id}"))  # in test_fire_now_creates_exactly_one_task
    concrete = {
        "alpha": "{project}",
        "nightly": "{job}",
        "beta-only": "{job}",
        "rebuild-cached-tasks": "{action}",
        REPORT_HOOK[0]: "{hook_group_id}",
        REPORT_HOOK[1]: "{hook_id}",
    }
    templated = {
        (method, "/".join(concrete.get(part, part) for part in path.split("/")))
        for method, path in driven
    }
    assert templated == documented


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_token_and_any_role_reads(served: Served, path: str) -> None:
    anonymous = served.get(path, token=None)
    assert "token" in _error(anonymous, 401, "unauthorized")
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    _error(served.get(path, token="made-up"), 401, "unauthorized")
    for token in (VIEWER, OPERATOR):
        assert served.get(path, token=token).status_code == 200, path


@pytest.mark.parametrize(("method", "path", "body"), ACTS, ids=[f"{m} {p}" for m, p, _ in ACTS])
def test_acts_need_an_operator(
    served: Served, method: str, path: str, body: dict[str, Any] | None
) -> None:
    audited = len(served.get("/api/v1/audit", limit=1000).json())

    def call(token: str | None) -> httpx.Response:
        return httpx.request(
            method, f"{served.url}{path}", json=body, headers=_bearer(token), timeout=120
        )

    _error(call(None), 401, "unauthorized")
    _error(call("made-up"), 401, "unauthorized")
    assert "viewer" in _error(call(VIEWER), 403, "forbidden")
    acted = call(OPERATOR)
    assert acted.status_code == 200, acted.text
    assert OPERATOR not in acted.text
    # Only the operator's act reached the audit log, under the token's name.
    log = served.get("/api/v1/audit", limit=1000).json()
    assert len(log) == audited + 1
    assert log[0]["actor"] == "sheriffs (api)"
    assert OPERATOR not in json.dumps(log)


# -- the acts, end to end ----------------------------------------------------------------------


def test_pause_then_slot_then_resume(served: Served) -> None:
    today = served.emulator.clock.now().date()
    paused_slot, resumed_slot = _month_start(today, 2), _month_start(today, 1)
    paused = served.post(
        "/api/v1/projects/alpha/jobs/nightly/pause", {"reason": "bad nightly, bug 1234"}
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused_by"] == "sheriffs (api)"
    jobs = {job["name"]: job for job in served.get("/api/v1/projects/alpha/jobs").json()["jobs"]}
    assert jobs["nightly"]["paused"]["reason"] == "bad nightly, bug 1234"
    assert jobs["build"]["paused"] is None

    served.tick(paused_slot)
    [skipped] = _fires_of_slot(served, "nightly", paused_slot)
    assert skipped["state"] == "skipped"
    assert "bad nightly, bug 1234" in skipped["error"]
    assert "sheriffs (api)" in skipped["error"]
    assert skipped["task_id"] is None

    resumed = served.delete("/api/v1/projects/alpha/jobs/nightly/pause")
    body = resumed.json()
    assert (body["resumed"], body["still_paused"]) == (True, [])
    assert (body["lifted"]["job"], body["lifted"]["paused_by"]) == ("nightly", "sheriffs (api)")
    assert served.delete("/api/v1/projects/alpha/jobs/nightly/pause").json() == {
        "resumed": False,
        "lifted": None,
        "still_paused": [],
    }
    served.tick(resumed_slot)
    [fired] = _fires_of_slot(served, "nightly", resumed_slot)
    assert fired["state"] == "created"
    assert fired["task_id"] in _task_ids(served.emulator)
    jobs = {job["name"]: job for job in served.get("/api/v1/projects/alpha/jobs").json()["jobs"]}
    assert jobs["nightly"]["paused"] is None
    [newest] = served.get("/api/v1/fires", project="alpha", job="nightly", limit=1).json()
    assert jobs["nightly"]["last_fire"] == newest


def test_fire_now_creates_exactly_one_task(served: Served) -> None:
    before = _task_ids(served.emulator)
    fired = served.post("/api/v1/projects/alpha/jobs/build/fire", {"input": {"why": "retry"}})
    assert fired.status_code == 200, fired.text
    body = fired.json()
    assert body["state"] == "created"
    assert _task_ids(served.emulator) - before == {body["task_id"]}
    assert body["details"]["task"]["metadata"]["name"]

    again = served.post("/api/v1/projects/alpha/jobs/build/fire", {"input": {"why": "retry"}})
    message = _error(again, 429, "too-soon")
    assert body["task_id"] in message
    assert 0 < int(again.headers["Retry-After"]) <= 3600
    assert _task_ids(served.emulator) - before == {body["task_id"]}

    [record] = served.get("/api/v1/fires", project="alpha", job="build").json()
    assert (record["kind"], record["task_id"]) == ("manual", body["task_id"])
    one = f"/api/v1/fires/{record['id']}"
    _error(served.get(one, token=None), 401, "unauthorized")
    _error(served.get(one, token="made-up"), 401, "unauthorized")
    assert served.get(one, token=OPERATOR).status_code == 200
    detail = served.get(one, token=VIEWER).json()
    assert detail["details"]["task"] == body["details"]["task"]
    acts = [a for a in served.get("/api/v1/audit").json() if a["target"] == "alpha/build"]
    assert [(a["action"], a["ok"]) for a in acts] == [("fire", False), ("fire", True)]
    assert acts[1]["input"] == {"input": {"why": "retry"}, "dry_run": False}


def test_hook_fire_checks_the_payload_before_taskcluster(served: Served) -> None:
    path = f"/api/v1/hooks/{REPORT_HOOK[0]}/{REPORT_HOOK[1]}/fire"
    rejected = served.post(path, {"payload": {"branch": "trunk", "extra": 1}})
    message = _error(rejected, 422, "payload-rejected")
    assert "branch" in message
    assert "extra" in message
    assert _hook_fires(served.emulator, REPORT_HOOK) == []

    fired = served.post(path, {"payload": {"branch": "release"}})
    assert fired.status_code == 200, fired.text
    task_id = fired.json()["task_id"]
    [last] = _hook_fires(served.emulator, REPORT_HOOK)
    assert last["taskId"] == task_id
    [task] = [t for t in served.emulator.tasks() if t.task_id == task_id]
    assert task.definition["payload"] == {"branch": "release"}

    missing = served.post("/api/v1/hooks/tc-scheduler/no-such-hook/fire", {"payload": {}})
    assert "no hook tc-scheduler/no-such-hook" in _error(missing, 404, "not-found")


def test_an_action_is_triggered_by_name_with_its_input(served: Served) -> None:
    before = len(_hook_fires(served.emulator, HOOK))
    triggered = served.post(
        "/api/v1/projects/alpha/actions/rebuild-cached-tasks", {"input": {"kinds": ["toolchain"]}}
    )
    assert triggered.status_code == 200, triggered.text
    body = triggered.json()
    assert (body["hook_group_id"], body["hook_id"]) == HOOK
    assert body["payload"]["user"]["input"] == {"kinds": ["toolchain"]}
    fires = _hook_fires(served.emulator, HOOK)
    assert len(fires) == before + 1
    assert body["task_id"] in {fire["taskId"] for fire in fires}

    unknown = served.post("/api/v1/projects/alpha/actions/no-such-action", {})
    assert "rebuild-cached-tasks" in _error(unknown, 400, "cannot-trigger")
    assert len(_hook_fires(served.emulator, HOOK)) == before + 1


def test_an_expiry_remediation_starts_by_hand(served: Served) -> None:
    before = len(_hook_fires(served.emulator, HOOK))
    started = served.post("/api/v1/projects/alpha/expiry/remediate", {})
    assert started.status_code == 200, started.text
    kinds = {event["kind"]: event for event in started.json()["events"]}
    assert kinds["expiring-found"]["at_risk"] == len(CACHED)
    assert kinds["remediation-started"]["task_group_id"]
    assert len(_hook_fires(served.emulator, HOOK)) == before + 1
    # A second ask follows the running rebuild rather than starting another.
    again = served.post("/api/v1/projects/alpha/expiry/remediate", {})
    assert "remediation-started" not in {e["kind"] for e in again.json()["events"]}
    assert len(_hook_fires(served.emulator, HOOK)) == before + 1


def test_jobs_say_when_they_fire_and_what_they_did(served: Served) -> None:
    listing = served.get("/api/v1/projects/alpha/jobs", upcoming=2).json()
    assert len(listing["revision"]) == 40
    assert listing["problems"] == []
    jobs = {job["name"]: job for job in listing["jobs"]}
    nightly = jobs["nightly"]
    assert nightly["schedule"] == "on day 1 of the month at 03:00 UTC"
    assert nightly["crontab"] == "0 3 1 * *"
    now = served.emulator.clock.now()
    first, second = (datetime.fromisoformat(t) for t in nightly["next_fires"])
    assert (first.day, first.hour, second.day) == (1, 3, 1)
    assert now < first < second <= first + timedelta(days=31)
    other = jobs["beta-only"]
    assert (other["runs_on_project"], other["next_fires"]) == (False, [])
    assert "run-on-projects" in other["schedule"]
    unknown = served.get("/api/v1/projects/gamma/jobs")
    assert "alpha" in _error(unknown, 404, "not-found")


def test_dry_runs_show_what_would_happen_and_change_nothing_in_taskcluster(
    served: Served,
) -> None:
    tasks, hook_fires = _task_ids(served.emulator), len(_hook_fires(served.emulator, HOOK))
    report_fires = len(_hook_fires(served.emulator, REPORT_HOOK))

    fired = served.post("/api/v1/projects/alpha/jobs/nightly/fire", {"dry_run": True}).json()
    assert (fired["state"], fired["error"]) == ("dry-run", None)
    assert fired["details"]["task"]["metadata"]["name"]
    action = served.post(
        "/api/v1/projects/alpha/actions/rebuild-cached-tasks", {"dry_run": True}
    ).json()
    assert (action["dry_run"], action["task_id"]) == (True, None)
    assert action["payload"]["decision"] == {"action": {"name": "rebuild-cached-tasks"}}
    hook = served.post(
        f"/api/v1/hooks/{REPORT_HOOK[0]}/{REPORT_HOOK[1]}/fire",
        {"payload": {"branch": "main"}, "dry_run": True},
    ).json()
    assert (hook["dry_run"], hook["task_id"]) == (True, None)

    assert _task_ids(served.emulator) == tasks
    assert len(_hook_fires(served.emulator, HOOK)) == hook_fires
    assert len(_hook_fires(served.emulator, REPORT_HOOK)) == report_fires
    results = [a["result"] for a in served.get("/api/v1/audit", limit=3).json()]
    assert [r.split(":")[0] for r in results] == ["dry run", "dry run", "dry-run"]
