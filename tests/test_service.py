"""`tc-scheduler run` as a process: start-up tick, JSON logs, and a graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from scheduler.cron import format_slot, slot_of
from scheduler.ids import decision_task_id
from scheduler.ledger import FireState, Ledger, SlotOutcome
from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.emulator.sentry import FakeSentry
from tests.emulator.slack import FakeSlack
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import taskcluster_environment
from tests.support.ledger_backends import postgresql_schema_url
from tests.support.repos import Repository
from tests.support.service import Service
from tests.support.waiting import HANG_GUARD, wait_until

EVERY_SLOT = """\
jobs:
  - name: often
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
"""


@pytest.fixture
def env(emulator: Emulator) -> dict[str, str]:
    """The services' environment, on the emulator's clock set running halfway through the
    current slot: no slot boundary passes while a test's services run."""
    emulator.clock.set(slot_of(emulator.clock.now()) + timedelta(minutes=7, seconds=30))
    return {**os.environ, **taskcluster_environment(emulator)}


def write_config(tmp_path: Path, *extra_lines: str) -> Path:
    """A project `demo` whose job fires every slot, in a new repository, and its config."""
    repository = Repository(
        tmp_path / "repo",
        {
            ".cron.yml": EVERY_SLOT,
            ".taskcluster.yml": (REPOSITORY_ROOT / ".taskcluster.yml").read_text(),
        },
    )
    config = tmp_path / "service.yml"
    config.write_text(
        "".join(f"{line}\n" for line in extra_lines) + "projects:\n"
        "  - name: demo\n"
        "    repository: https://github.com/example/demo\n"
        f"    fetch-from: {repository.url}\n"
        "    trust-domain: tcs\n"
    )
    return config


def run_service(config: Path, env: dict[str, str]) -> Service:
    return Service([sys.executable, "-m", "scheduler", "run", "--config", str(config)], env)


def test_run_ticks_at_start_logs_json_and_stops_on_sigterm(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    service = run_service(write_config(tmp_path), env)
    try:
        assert service.evaluated.wait(timeout=HANG_GUARD), service.lines
    finally:
        assert service.stop() == 0
    lines = service.lines

    events = [line["event"] for line in lines]
    assert events[0] == "starting"
    assert events[-1] == "stopped"
    [fired] = [line for line in lines if line["event"] == "fired"]
    assert {"project", "job", "slot", "task_id", "timestamp", "level"} <= set(fired)
    assert fired["task_id"] in {task.task_id for task in emulator.tasks()}
    assert emulator.root_credentials["accessToken"] not in json.dumps(lines)
    ledger = Ledger.open(f"sqlite:///{tmp_path / '.tc-scheduler' / 'ledger.db'}")
    try:
        last = ledger.last_evaluated_slot("demo")
    finally:
        ledger.close()
    assert last is not None
    assert format_slot(last) == fired["slot"]


def test_sigterm_lets_in_flight_fires_finish(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    # Long enough that the SIGTERM, sent once the tick is seen, comes while the fire is in flight
    # however loaded the machine; well within the 30 s the service gives in-flight fires.
    emulator.faults.add("queue.createTask", latency_ms=8000)
    service = run_service(write_config(tmp_path), env)
    try:
        assert service.ticked.wait(timeout=HANG_GUARD), service.lines
    finally:
        assert service.stop() == 0
    events = [line["event"] for line in service.lines]
    assert events.index("stopping") < events.index("fired")
    ledger = Ledger.open(f"sqlite:///{tmp_path / '.tc-scheduler' / 'ledger.db'}")
    try:
        [fire] = ledger.fires(project="demo")
    finally:
        ledger.close()
    assert fire.state is FireState.CREATED
    assert [task.task_id for task in emulator.tasks()] == [fire.task_id]


def test_sigterm_during_scheduled_watch_rounds_drains_them_without_a_traceback(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    # Every look at a task's status hangs a while: the scheduler's watch rounds are mid-call.
    emulator.faults.stall_seconds = 3
    emulator.faults.add("queue.statuses", script=["stall"] * 50)
    service = run_service(write_config(tmp_path, "watch-every: 1s"), env)
    try:
        assert service.evaluated.wait(timeout=HANG_GUARD), service.lines
        assert wait_until(
            lambda: sum(1 for _, outcome in emulator.faults.injected if outcome == "stall") >= 2
        ), "no watch round reached Taskcluster"
    finally:
        assert service.stop() == 0
    events = [line["event"] for line in service.lines]
    assert events[-1] == "stopped", events
    text = json.dumps(service.lines)
    assert "CancelledError" not in text
    assert "raised an exception" not in text


def test_two_services_sharing_postgresql_fire_every_slot_once(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    """Two `run` processes start together on one PostgreSQL ledger after a three-slot outage.

    Both catch up (policy all) and tick the current slot at once, racing for every fire.
    """
    now_slot = slot_of(emulator.clock.now())
    slots = [now_slot - timedelta(minutes=15 * n) for n in range(3, -1, -1)]
    with postgresql_schema_url() as ledger_url:
        ledger = Ledger.open(ledger_url)
        try:  # the last slot evaluated before the outage
            ledger.record_slot(
                "demo",
                slots[0] - timedelta(minutes=15),
                revision=None,
                outcome=SlotOutcome.EVALUATED,
                error=None,
                replica="before-outage",
                now=slots[0] - timedelta(minutes=15),
            )
        finally:
            ledger.close()
        config = write_config(tmp_path, f"ledger: {ledger_url}", "catch-up: {policy: all}")
        services = [run_service(config, env) for _ in range(2)]
        try:
            for service in services:
                assert service.evaluated.wait(timeout=HANG_GUARD), service.lines
        finally:
            for service in services:
                service.stop()
        ledger = Ledger.open(ledger_url)
        try:
            rows = ledger.fires(project="demo")
        finally:
            ledger.close()

    # Every slot from the first missed one to the one the services started in (the next, if a
    # slot boundary passed meanwhile) has one fire row and one task.
    fired = sorted(row.slot for row in rows)
    assert fired[0] == slots[0]
    assert fired == [slots[0] + timedelta(minutes=15 * n) for n in range(len(fired))]
    assert fired[-1] in (slots[-1], slots[-1] + timedelta(minutes=15))
    expected = {decision_task_id(emulator.root_url, "demo", "often", slot) for slot in fired}
    assert {task.task_id for task in emulator.tasks()} == expected
    assert {row.state for row in rows} <= {FireState.CREATED, FireState.ALREADY_FIRED}


def test_run_reports_a_failed_decision_task_to_slack_and_checks_in_to_sentry(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    token = "xoxb-1111-service-test-token"
    with (
        FakeSlack.running(token=token, channels={"C0RELENG": "releng"}) as slack,
        FakeSentry.running(public_key="0123456789abcdef0123456789abcdef") as fake_sentry,
    ):
        config = write_config(
            tmp_path,
            "watch-every: 1s",
            "notify:",
            f"  slack: {{api-url: '{slack.api_url}', channel: '#releng'}}",
            "  sentry: {environment: test}",
        )
        env = {**env, "SLACK_BOT_TOKEN": token, "SENTRY_DSN": fake_sentry.dsn}
        service = run_service(config, env)
        try:
            assert service.evaluated.wait(timeout=HANG_GUARD), service.lines
            [fired] = [line for line in service.lines if line["event"] == "fired"]
            emulator.resolve_task(str(fired["task_id"]), "failed")
            assert wait_until(lambda: bool(slack.messages)), service.lines
        finally:
            assert service.stop() == 0
        [message] = slack.messages
        assert "demo often: decision task failed" in (message.text or "")
        assert f"{emulator.root_url}/tasks/{fired['task_id']}" in json.dumps(message.blocks)
        statuses = {
            (check_in["monitor_slug"], check_in["status"]) for check_in in fake_sentry.check_ins
        }
        assert {("tc-scheduler-tick", "in_progress"), ("tc-scheduler-tick", "ok")} <= statuses
        assert {("demo_often", "in_progress"), ("demo_often", "error")} <= statuses
        assert token not in json.dumps(service.lines)


def test_run_serves_the_api_beside_the_scheduler(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    token = "op-" + "k3" * 20
    config = write_config(
        tmp_path,
        "api:",
        "  listen: 127.0.0.1:0",
        f"  tokens: [{{name: sheriffs, role: operator, sha256: {hash_token(token)}}}]",
    )
    service = run_service(config, env)
    try:
        assert wait_until(lambda: any(line["event"] == "serving the API" for line in service.lines))
        [serving] = [line for line in service.lines if line["event"] == "serving the API"]
        url = str(serving["url"])
        assert httpx.get(f"{url}/livez").json() == {"status": "ok"}
        assert httpx.get(f"{url}/api/v1/projects").status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        paused = httpx.post(
            f"{url}/api/v1/projects/demo/pause", json={"reason": "deploy"}, headers=headers
        )
        assert paused.status_code == 200, paused.text
        [demo] = httpx.get(f"{url}/api/v1/projects", headers=headers).json()
        assert demo["paused"][0]["reason"] == "deploy"
    finally:
        assert service.stop() == 0
    assert token not in json.dumps(service.lines)


def test_sigterm_refuses_acts_through_the_api_and_lets_the_running_one_finish(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM is the service's to handle, not uvicorn's (which would close the API at once):
    the API says it is stopping while the act it runs finishes."""
    token = "op-" + "k4" * 20
    headers = {"Authorization": f"Bearer {token}"}
    config = write_config(
        tmp_path,
        "api:",
        "  listen: 127.0.0.1:0",
        f"  tokens: [{{name: sheriffs, role: operator, sha256: {hash_token(token)}}}]",
    )
    service = run_service(config, env)
    try:
        assert service.evaluated.wait(timeout=HANG_GUARD), service.lines
        [serving] = [line for line in service.lines if line["event"] == "serving the API"]
        url = str(serving["url"])
        # The start-up tick made its task; the next createTask, a fire by hand, is held.
        emulator.faults.add("queue.createTask", error_rate=1.0, errors=["hold"])
        with ThreadPoolExecutor(1) as pool:
            firing = pool.submit(
                httpx.post,
                f"{url}/api/v1/projects/demo/jobs/often/fire",
                json={},
                headers=headers,
                timeout=HANG_GUARD,
            )
            try:
                assert wait_until(lambda: emulator.faults.holding == 1)
                service.process.send_signal(signal.SIGTERM)
                assert wait_until(
                    lambda: any(line["event"] == "stopping" for line in service.lines)
                )
                ready = httpx.get(f"{url}/readyz", timeout=HANG_GUARD)
                paused = httpx.post(
                    f"{url}/api/v1/projects/demo/pause", json={"reason": "x"}, headers=headers
                )
            finally:
                emulator.faults.clear()  # the fire goes on, and finishes
            fired = firing.result(timeout=HANG_GUARD)
        assert service.process.wait(timeout=HANG_GUARD) == 0
    finally:
        assert service.stop() == 0
    assert (ready.status_code, ready.json()["error"]) == (503, "shutting-down")
    assert (paused.status_code, paused.json()["error"]) == (503, "shutting-down")
    assert fired.status_code == 200, fired.text
    assert fired.json()["state"] == "created"
