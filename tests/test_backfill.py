"""Backfill against the emulator: each past slot of a range fired once with the scheduled fire's
task id, never a future one, never twice; dry runs, unknown jobs, pauses, bounds, the API's
roles, and one audited act."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.config.loading import read_config
from scheduler.config.model import ApiSettings, ApiToken
from scheduler.cron import format_slot
from scheduler.engine.backfill import InvalidRangeError
from scheduler.ids import decision_task_id
from scheduler.ledger import FireKind, FireState, Ledger
from scheduler.monitoring import Monitor
from scheduler.outcomes import FireResult
from scheduler.service import open_service
from scheduler.web.auth import hash_token
from scheduler.web.server import ApiServer
from tests.emulator import Emulator
from tests.support.emulated import taskcluster_environment
from tests.support.projects import OWN_TEMPLATE, write_service_config
from tests.support.repos import Repository

# The emulator's clock runs from NOW, and the commands run on it (TC_SCHEDULER_NOW).
NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
SIX, TEN = datetime(2026, 11, 24, 6, tzinfo=UTC), datetime(2026, 11, 24, 10, tzinfo=UTC)
HOURS = [SIX + n * HOUR for n in range(4)]  # the slots of hourly in [06:00, 10:00)
CRON = """\
jobs:
  - name: hourly
    job: {type: decision-task, treeherder-symbol: H, target-tasks-method: hourly}
    when: [{minute: 0}]
  - name: nightly
    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}
    when: {by-project: {demo: [{hour: 2, minute: 0}], default: []}}
"""
OPERATOR = "op-token-for-the-backfill-tests"
VIEWER = "view-token-for-the-backfill-tests"


@pytest.fixture
def environment(emulator: Emulator) -> dict[str, str]:
    emulator.clock.set(NOW)
    return taskcluster_environment(emulator)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    repository = Repository(
        tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    return write_service_config(tmp_path, repository)


def invoke(*arguments: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, list(arguments), env=env, catch_exceptions=False)


def backfill(
    config: Path, env: dict[str, str], *arguments: str, start: datetime = SIX, until: datetime = TEN
) -> Result:
    """`tc-scheduler backfill demo` of [start, until) with `arguments` (jobs, options)."""
    span = ("--from", format_slot(start), "--until", format_slot(until))
    return invoke("backfill", "demo", *arguments, *span, "--config", str(config), env=env)


def backfilled(result: Result, exit_code: int = 0) -> dict[str, Any]:
    assert result.exit_code == exit_code, result.output
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def states(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(fire["job"], fire["slot"], fire["state"]) for fire in answer["fires"]]


def task_ids(emulator: Emulator, job: str, slots: list[datetime]) -> list[str]:
    return [decision_task_id(emulator.root_url, "demo", job, slot) for slot in slots]


def test_a_range_fires_each_slot_once_with_the_scheduled_task_ids(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path, ledger_url: str
) -> None:
    repository = Repository(
        tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = write_service_config(tmp_path, repository, ledger=ledger_url)
    first = backfilled(backfill(config, environment, "hourly", "--json"))
    assert states(first) == [("hourly", format_slot(s), "created") for s in HOURS]
    assert {fire["kind"] for fire in first["fires"]} == {"catch-up"}
    assert [fire["task_id"] for fire in first["fires"]] == task_ids(emulator, "hourly", HOURS)
    assert sorted(t.task_id for t in emulator.tasks()) == sorted(
        task_ids(emulator, "hourly", HOURS)
    )
    assert (first["counts"], first["clamped"], first["revision"]) == (
        {"created": 4},
        False,
        repository.head,
    )

    again = backfilled(backfill(config, environment, "hourly", "--json"))
    assert states(again) == [("hourly", format_slot(s), "already-fired") for s in HOURS]
    assert [fire["task_id"] for fire in again["fires"]] == task_ids(emulator, "hourly", HOURS)
    assert len(emulator.tasks()) == 4, "nothing new was created"
    with Ledger.open(ledger_url) as ledger:
        fires = ledger.fires(project="demo")
        log = ledger.audit_log()
    assert sorted(fire.slot for fire in fires) == HOURS, "one fire per slot, never doubled"
    assert {fire.revision for fire in fires} == {repository.head}
    [second, act] = log  # one act per backfill, newest first
    assert (act.action, act.target, act.ok) == ("backfill", "demo/hourly", True)
    assert act.input == {
        "jobs": ["hourly"],
        "from": SIX.isoformat(),
        "until": TEN.isoformat(),
        "max_fires": 1000,
        "dry_run": False,
        "rerun_failed": False,
    }
    assert act.result == f"{format_slot(SIX)} to {format_slot(TEN)}: 4 created"
    assert second.result.endswith(": 4 already-fired")


def test_slots_the_scheduler_fired_are_already_fired_and_those_it_skipped_are_fired(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    """The scheduler fired 06:00, then after a gap caught up on 09:00 only (policy `latest`),
    skipping 07:00 and 08:00: the backfill fires those two, with their slots' task ids."""
    for slot in (SIX, TEN):
        ticked = invoke("tick", "--at", format_slot(slot), "--config", str(config), env=environment)
        assert ticked.exit_code == 0, ticked.output
    with Ledger.open(read_config(config, environment).ledger_url) as ledger:
        skipped = ledger.fires(project="demo", state=FireState.SKIPPED)
    assert sorted(fire.slot for fire in skipped) == HOURS[1:3]

    answer = backfilled(backfill(config, environment, "--json"))
    assert [(f["slot"], f["kind"], f["state"]) for f in answer["fires"]] == [
        (format_slot(HOURS[0]), "scheduled", "already-fired"),
        (format_slot(HOURS[1]), "catch-up", "created"),
        (format_slot(HOURS[2]), "catch-up", "created"),
        (format_slot(HOURS[3]), "catch-up", "already-fired"),
    ]
    assert [fire["task_id"] for fire in answer["fires"]] == task_ids(emulator, "hourly", HOURS)
    made = sorted(t.task_id for t in emulator.tasks())
    assert made == sorted(task_ids(emulator, "hourly", [*HOURS, TEN]))
    with Ledger.open(read_config(config, environment).ledger_url) as ledger:
        refired = [ledger.fire("demo", "hourly", slot) for slot in HOURS[1:3]]
    assert [(f.state, f.kind, f.error) for f in refired if f] == [
        (FireState.CREATED, FireKind.CATCH_UP, None)
    ] * 2


def test_a_slot_that_has_not_begun_is_never_fired(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    result = backfill(config, environment, "--json", start=TEN - HOUR, until=TEN + 3 * HOUR)
    answer = backfilled(result)
    assert states(answer) == [
        ("hourly", format_slot(TEN - HOUR), "created"),
        ("hourly", format_slot(TEN), "created"),  # begun at 10:00; it is 10:05
    ]
    assert answer["clamped"] is True
    assert NOW <= datetime.fromisoformat(answer["until"]) < NOW + HOUR, "now"
    assert "is later than now, so the range ends now" in answer["notes"][0]
    assert len(emulator.tasks()) == 2

    shown = backfill(config, environment, start=TEN - HOUR, until=TEN + 3 * HOUR)
    assert shown.exit_code == 0, shown.output
    assert "note: until 2026-11-24T13:00:00Z is later than now" in shown.stderr

    ahead = backfill(config, environment, start=TEN + HOUR, until=TEN + 3 * HOUR)
    assert ahead.exit_code == 2, ahead.output
    assert "has begun" in ahead.stderr
    assert "past slots only" in ahead.stderr
    assert len(emulator.tasks()) == 2


def test_a_dry_run_lists_what_would_fire_and_creates_nothing(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    ticked = invoke("tick", "--at", format_slot(HOURS[2]), "--config", str(config), env=environment)
    assert ticked.exit_code == 0, ticked.output
    answer = backfilled(backfill(config, environment, "--dry-run", "--json"))
    assert states(answer) == [
        ("hourly", format_slot(slot), "already-fired" if slot == HOURS[2] else "dry-run")
        for slot in HOURS
    ]
    assert [fire["task_id"] for fire in answer["fires"]] == task_ids(emulator, "hourly", HOURS)
    assert answer["dry_run"] is True
    assert [t.task_id for t in emulator.tasks()] == task_ids(emulator, "hourly", HOURS[2:3])
    with Ledger.open(read_config(config, environment).ledger_url) as ledger:
        assert [fire.slot for fire in ledger.fires(project="demo")] == [HOURS[2]]
        [act] = ledger.audit_log()
    assert (act.action, act.ok, act.input and act.input["dry_run"]) == ("backfill", True, True)

    table = backfill(config, environment, "--dry-run")
    assert table.exit_code == 0, table.output
    assert "dry run: nothing fired" in " ".join(table.stdout.split())
    assert task_ids(emulator, "hourly", HOURS[:1])[0] in table.stdout


def test_named_jobs_are_the_ones_fired_once_each_and_until_defaults_to_now(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    named = backfilled(backfill(config, environment, "nightly", "hourly", "nightly", "--json"))
    assert states(named) == [("hourly", format_slot(slot), "created") for slot in HOURS]
    since_six = ("--from", format_slot(SIX), "--config", str(config), "--json")
    to_now = backfilled(invoke("backfill", "demo", "hourly", *since_six, env=environment))
    assert datetime.fromisoformat(to_now["until"]) >= NOW  # the commands' clock runs from NOW
    assert to_now["clamped"] is False
    again = backfilled(backfill(config, environment, "hourly", "hourly", "--json"))
    assert {state for _, _, state in states(again)} == {"already-fired"}
    with Ledger.open(read_config(config, environment).ledger_url) as ledger:
        assert ledger.audit_log()[0].target == "demo/hourly"  # one job, however often named
    assert states(to_now)[-1] == ("hourly", format_slot(TEN), "created")


def test_an_unknown_job_is_an_error_naming_the_known_jobs(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    result = backfill(config, environment, "hourly", "nosuchjob")
    assert result.exit_code == 2, result.output
    assert "has no job 'nosuchjob' that runs on demo" in result.stderr
    assert "its jobs: hourly, nightly" in result.stderr
    assert emulator.tasks() == []
    unknown_project = invoke(
        "backfill", "nope", "--from", "2026-11-24", "--until", "2026-11-25", "--config",
        str(config), env=environment,
    )  # fmt: skip
    assert unknown_project.exit_code == 2, unknown_project.output


def test_a_range_with_more_fires_than_allowed_is_refused(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    refused = backfill(config, environment, "--max-fires", "3")
    assert refused.exit_code == 2, refused.output
    assert "names more than 3 fires of demo" in refused.stderr
    assert "--max-fires" in refused.stderr
    assert emulator.tasks() == []
    allowed = backfill(config, environment, "--max-fires", "4")
    assert allowed.exit_code == 0, allowed.output
    assert len(emulator.tasks()) == 4


def test_a_job_paused_now_is_skipped_and_nothing_recorded_until_resumed(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    held = invoke(
        "pause", "demo", "hourly", "--reason", "tree closed", "--config", str(config),
        env=environment,
    )  # fmt: skip
    assert held.exit_code == 0, held.output
    paused = backfilled(backfill(config, environment, "--json"))
    assert {fire["state"] for fire in paused["fires"]} == {"skipped"}
    assert {"tree closed" in fire["error"] for fire in paused["fires"]} == {True}
    assert emulator.tasks() == []
    with Ledger.open(read_config(config, environment).ledger_url) as ledger:
        assert ledger.fires(project="demo") == []
    resumed = invoke("resume", "demo", "hourly", "--config", str(config), env=environment)
    assert resumed.exit_code == 0, resumed.output
    assert backfilled(backfill(config, environment, "--json"))["counts"] == {"created": 4}


def test_a_failed_fire_exits_1(environment: dict[str, str], tmp_path: Path) -> None:
    broken = Repository(
        tmp_path / "broken", {".cron.yml": CRON, ".taskcluster.yml": "tasks: [{$if: '"}
    )
    config = write_service_config(tmp_path, broken)
    result = backfill(config, environment, "hourly")
    assert result.exit_code == 1, result.output
    assert "4 failed" in result.stdout
    again = backfilled(backfill(config, environment, "hourly", "--json"), exit_code=1)
    assert {fire["state"] for fire in again["fires"]} == {"failed"}, "shown as recorded"


def test_backfill_in_the_api_is_for_operators_and_audited(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    settings = read_config(config, environment)
    api = ApiSettings(
        host="127.0.0.1",
        port=0,
        tokens=(
            ApiToken("sheriffs", "operator", hash_token(OPERATOR)),
            ApiToken("dashboard", "viewer", hash_token(VIEWER)),
        ),
    )
    settings = replace(settings, api=api)
    body = {"jobs": ["hourly"], "start": format_slot(SIX), "until": format_slot(TEN)}

    async def ask() -> list[httpx.Response]:
        async with open_service(settings, clock=emulator.clock.now) as service:
            monitor = Monitor(service.ledger, service.engine.clock)
            server = ApiServer(service.operations(), settings.api, monitor)
            server.start()
            assert server.url is not None
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    path = "/api/v1/projects/demo/backfill"

                    async def post(token: str, sent: dict[str, Any]) -> httpx.Response:
                        headers = {"Authorization": f"Bearer {token}"}
                        return await client.post(path, json=sent, headers=headers)

                    return [
                        await post(VIEWER, body),
                        await post(OPERATOR, {**body, "jobs": ["nosuchjob"]}),
                        await post(OPERATOR, {**body, "max_fires": 0}),
                        await post(OPERATOR, body),
                    ]
            finally:
                await server.stop()

    viewer, unknown, invalid, operator = asyncio.run(ask())
    assert viewer.status_code == 403, viewer.text
    assert unknown.status_code == 404, unknown.text
    assert "its jobs: hourly, nightly" in unknown.json()["message"]
    assert invalid.status_code == 422, invalid.text
    assert operator.status_code == 200, operator.text
    answer = operator.json()
    assert states(answer) == [("hourly", format_slot(s), "created") for s in HOURS]
    assert [fire["task_id"] for fire in answer["fires"]] == task_ids(emulator, "hourly", HOURS)
    with Ledger.open(settings.ledger_url) as ledger:
        log = ledger.audit_log()
    assert [(e.actor, e.action, e.target, e.ok) for e in reversed(log)] == [
        ("sheriffs (api)", "backfill", "demo/nosuchjob", False),
        ("sheriffs (api)", "backfill", "demo/hourly", True),
    ]
    # The command line answers the same JSON: here, that each slot is fired already.
    shown = backfilled(backfill(config, environment, "hourly", "--json"))
    assert {key: shown[key] for key in ("project", "jobs", "start", "until", "revision")} == {
        key: answer[key] for key in ("project", "jobs", "start", "until", "revision")
    }
    assert states(shown) == [("hourly", format_slot(s), "already-fired") for s in HOURS]


class Recorded:
    """A backfill's progress, as a progress bar is told it."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.fires: list[FireResult] = []

    def planned(self, total: int) -> None:
        self.total = total

    def fired(self, fire: FireResult) -> None:
        self.fires.append(fire)


def test_progress_is_told_of_each_fire_as_it_ends(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    settings = read_config(config, environment)
    progress = Recorded()

    async def run() -> None:
        async with open_service(settings, clock=emulator.clock.now) as service:
            ops = service.operations()
            await ops.backfill("ann", "demo", (), start=SIX, until=TEN, progress=progress)

    asyncio.run(run())
    assert progress.total == 4
    assert sorted(fire.slot for fire in progress.fires) == HOURS
    assert {fire.state for fire in progress.fires} == {FireState.CREATED}


def test_a_claim_retakes_a_skipped_fire_only_when_asked(ledger: Ledger) -> None:
    """Skipped, a slot made nothing: a backfill may claim it (the next attempt), a tick not."""
    lease = timedelta(minutes=10)
    assert ledger.record_skip(
        "demo", "hourly", SIX, kind=FireKind.CATCH_UP, reason="not-newest", replica="r1", now=NOW
    )
    wanted = [("hourly", SIX, FireKind.CATCH_UP)]
    assert ledger.claim_many("demo", wanted, replica="r2", now=NOW, lease=lease) == [None]
    [claim] = ledger.claim_many(
        "demo", wanted, replica="r2", now=NOW, lease=lease, retake_unmade=True
    )
    assert claim is not None
    assert claim.attempt == 1
    taken = ledger.fire("demo", "hourly", SIX)
    assert taken is not None
    assert (taken.state, taken.error, taken.finished_at) == (FireState.CLAIMED, None, None)
    again = ledger.claim_many(
        "demo", wanted, replica="r3", now=NOW, lease=lease, retake_unmade=True
    )
    assert again == [None], "a claimed fire is not taken while its lease runs"
    assert ledger.finish(claim, state=FireState.CREATED, now=NOW, task_id="t")
    assert ledger.claim_many(
        "demo", wanted, replica="r3", now=NOW + lease, lease=lease, retake_unmade=True
    ) == [None], "a fire that made its task is never claimed again"


def test_a_range_at_the_calendars_end_is_refused_with_the_reason(
    emulator: Emulator, environment: dict[str, str], config: Path
) -> None:
    """The API takes any time to 9999 (the command line stops at 8999): a range that starts
    there names no begun slot, said as for any future range, never an internal error."""
    settings = read_config(config, environment)
    start = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)

    async def run() -> None:
        async with open_service(settings, clock=emulator.clock.now) as service:
            ops = service.operations()
            until = start + timedelta(seconds=30)
            await ops.backfill("ann", "demo", (), start=start, until=until)

    with pytest.raises(InvalidRangeError, match="has begun"):
        asyncio.run(run())


def test_slots_a_dry_run_service_recorded_are_fired_once_it_runs_for_real(
    emulator: Emulator, environment: dict[str, str], config: Path, tmp_path: Path
) -> None:
    """A service without credentials runs dry (`dry-run: auto`) and records each fire as a dry
    run; nothing was made, so a backfill once it runs for real fires those slots (its preview
    says it would), as it fires skipped ones."""
    dry = tmp_path / "dry.yml"
    dry.write_text("dry-run: true\n" + config.read_text())
    rehearsed = backfilled(backfill(dry, environment, "hourly", "--json"))
    assert {fire["state"] for fire in rehearsed["fires"]} == {"dry-run"}
    assert emulator.tasks() == []

    preview = backfilled(backfill(config, environment, "hourly", "--dry-run", "--json"))
    assert [fire["task_id"] for fire in preview["fires"]] == task_ids(emulator, "hourly", HOURS)
    assert {fire["state"] for fire in preview["fires"]} == {"dry-run"}
    answer = backfilled(backfill(config, environment, "hourly", "--json"))
    assert states(answer) == [("hourly", format_slot(s), "created") for s in HOURS]
    assert sorted(t.task_id for t in emulator.tasks()) == sorted(
        task_ids(emulator, "hourly", HOURS)
    )
    again = backfilled(backfill(config, environment, "hourly", "--json"))
    assert states(again) == [("hourly", format_slot(s), "already-fired") for s in HOURS]


def test_a_claim_retakes_a_dry_run_only_when_asked_and_forgets_what_it_rendered(
    ledger: Ledger,
) -> None:
    lease = timedelta(minutes=10)
    wanted = [("hourly", SIX, FireKind.SCHEDULED)]
    [held] = ledger.claim_many("demo", wanted, replica="r1", now=NOW, lease=lease)
    assert held is not None
    rendered = {"task": {"taskGroupId": "would-be"}}
    assert ledger.finish(held, state=FireState.DRY_RUN, now=NOW, task_id="t", details=rendered)
    assert ledger.claim_many("demo", wanted, replica="r2", now=NOW, lease=lease) == [None]
    [claim] = ledger.claim_many(
        "demo", wanted, replica="r2", now=NOW, lease=lease, retake_unmade=True
    )
    assert claim is not None
    assert claim.attempt == 2
    taken = ledger.fire("demo", "hourly", SIX)
    assert taken is not None
    assert (taken.state, taken.task_id, taken.details, taken.finished_at) == (
        FireState.CLAIMED,
        None,
        None,
        None,
    )
