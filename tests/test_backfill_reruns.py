"""A backfill's fires retried as a scheduled fire's are (their max-lateness counted from when the
backfill asked for them), and `--rerun-failed`: slots whose fire failed fired again, once."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import taskcluster

from scheduler.config.loading import read_config
from scheduler.config.model import ApiSettings, ApiToken, CatchUp, Config
from scheduler.cron import format_slot, load_cron
from scheduler.cron.slots import OpenFire, plan_open_fires
from scheduler.cron.timing import SLOT_LENGTH
from scheduler.engine.backfill import InvalidRangeError
from scheduler.ledger import (
    Claim,
    FireKind,
    FireState,
    Ledger,
    Notice,
    Outcome,
    WatchPhase,
    WatchSpec,
)
from scheduler.monitoring import Monitor
from scheduler.notify import sentry
from scheduler.notify.settings import NotifySettings, SentrySettings, SlackSettings
from scheduler.outcomes import FireResult
from scheduler.retrying import ROUND_GRACE
from scheduler.service import open_engine, open_service, tick_and_report
from scheduler.web.auth import hash_token
from scheduler.web.server import ApiServer
from tests.emulator import Emulator
from tests.emulator.sentry import FakeSentry
from tests.emulator.slack import FakeSlack
from tests.support.emulated import task_definition, taskcluster_environment
from tests.support.engine import seed_decision_with_actions
from tests.support.fakes import SLACK_TOKEN
from tests.support.projects import (
    HOURLY,
    OWN_TEMPLATE,
    make_config,
    project,
    write_service_config,
)
from tests.support.repos import Repository
from tests.test_backfill import (
    CRON,
    HOUR,
    NOW,
    OPERATOR,
    SIX,
    backfill,
    backfilled,
    invoke,
    states,
    task_ids,
)

# A slot a day before NOW: far past the default max-lateness (6h) of its job.
OLD = datetime(2026, 11, 23, 2, tzinfo=UTC)
# The calls of one attempt at createTask: the first and the client library's five retries.
ONE_ATTEMPT = ["503"] * 6
LEASE = timedelta(minutes=10)
BROKEN_TEMPLATE = "tasks: [{$if: '"


@pytest.fixture
def environment(emulator: Emulator) -> dict[str, str]:
    emulator.clock.set(NOW)
    return taskcluster_environment(emulator)


def recover(config: Config, emulator: Emulator) -> list[FireResult]:
    """A recovery round of the service, on the emulator's clock."""

    async def main() -> list[FireResult]:
        async with open_engine(config, clock=emulator.clock.now) as engine:
            return await engine.recover()

    return asyncio.run(main())


def recorded(config: Config, slot: datetime, job: str = "hourly") -> Any:
    with Ledger.open(config.ledger_url) as ledger:
        fire = ledger.fire("demo", job, slot)
    assert fire is not None
    return fire


def history(config: Path, env: dict[str, str]) -> list[tuple[str, str]]:
    shown = invoke("history", "--project", "demo", "--json", "--config", str(config), env=env)
    assert shown.exit_code == 0, shown.output
    answer = json.loads(shown.stdout)
    fires = answer["fires"] if isinstance(answer, dict) else answer
    return sorted((fire["slot"], fire["state"]) for fire in fires)


# -- retries -----------------------------------------------------------------------------------


def test_a_backfilled_fire_meeting_a_5xx_is_retrying_and_the_recovery_round_creates_it(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path
) -> None:
    """Its slot is a day old, far past max-lateness: measured from the slot, it failed at once
    ("max-lateness has passed"); measured from when the backfill asked for it, it is retried."""
    repository = Repository(
        tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = write_service_config(tmp_path, repository)
    emulator.faults.add("queue.createTask", script=ONE_ATTEMPT)

    answer = backfilled(
        backfill(config, environment, "hourly", "--json", start=OLD, until=OLD + HOUR)
    )

    [fire] = answer["fires"]
    assert fire["state"] == "retrying", fire["error"]
    assert "attempt 1 failed" in fire["error"]
    assert answer["counts"] == {"retrying": 1}
    assert "tried again by the service's recovery rounds" in answer["notes"][-1]
    assert emulator.tasks() == []
    settings = read_config(config, environment)
    retrying = recorded(settings, OLD)
    assert retrying.state is FireState.RETRYING
    assert retrying.asked_at is not None
    with Ledger.open(settings.ledger_url) as ledger:
        [act] = ledger.audit_log()
    assert act.ok, "a fire that will be retried is no failure of the backfill"

    emulator.clock.set(retrying.lease_until, frozen=True)
    [again] = recover(settings, emulator)

    assert (again.state, again.kind) == (FireState.CREATED, FireKind.CATCH_UP)
    assert [t.task_id for t in emulator.tasks()] == task_ids(emulator, "hourly", [OLD])
    done = recorded(settings, OLD)
    assert (done.state, done.attempt, done.error) == (FireState.CREATED, 2, None)
    assert history(config, environment) == [(format_slot(OLD), "created")]


def test_a_backfilled_fire_that_keeps_failing_is_given_up_with_the_reason(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path
) -> None:
    repository = Repository(
        tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    catch_up = "    catch-up: {max-lateness: 2m}\n"
    config = write_service_config(tmp_path, repository, extra=catch_up)
    emulator.faults.add("queue.createTask", error_rate=1.0, errors=["503"])

    answer = backfilled(
        backfill(config, environment, "hourly", "--json", start=OLD, until=OLD + HOUR)
    )
    assert answer["counts"] == {"retrying": 1}

    settings = read_config(config, environment)
    attempts = 1
    while (fire := recorded(settings, OLD)).state is FireState.RETRYING:
        emulator.clock.set(fire.lease_until, frozen=True)
        recover(settings, emulator)
        attempts += 1
        assert attempts < 10, "retries must stop at the max-lateness"

    assert fire.state is FireState.FAILED
    assert fire.attempt == attempts > 2
    assert fire.error is not None
    assert f"given up after {attempts} attempts" in fire.error
    assert "max-lateness 2m has passed since it was asked for" in fire.error
    assert "503" in fire.error
    assert emulator.tasks() == []
    shown = backfilled(
        backfill(config, environment, "hourly", "--json", start=OLD, until=OLD + HOUR),
        exit_code=1,
    )
    assert states(shown) == [("hourly", format_slot(OLD), "failed")]


def test_an_open_fire_a_backfill_asked_for_is_retried_within_its_max_lateness_from_then() -> None:
    """The slot plan measures a retry's lateness from when a backfill asked for the fire."""
    cron = load_cron(CRON, ".cron.yml")

    class Rule:
        policy, max_lateness, max_slots = "latest", timedelta(hours=6), 96

    def plan(open_fire: OpenFire) -> tuple[int, int]:
        planned = plan_open_fires(
            cron, [open_fire], (), lambda _: Rule(), NOW, before=NOW + SLOT_LENGTH
        )
        return len(planned.retries), len(planned.given_up)

    assert plan(OpenFire(OLD, "hourly", retrying=True)) == (0, 1)
    asked = OpenFire(OLD, "hourly", retrying=True, asked_at=NOW - HOUR)
    assert plan(asked) == (1, 0)
    assert plan(OpenFire(OLD, "hourly", retrying=True, asked_at=NOW - 7 * HOUR)) == (0, 1)


# -- the ledger's claims -----------------------------------------------------------------------


def test_a_backfills_claim_is_asked_for_now_and_its_retry_keeps_that(ledger: Ledger) -> None:
    wanted = [("hourly", OLD, FireKind.CATCH_UP)]
    [claim] = ledger.claim_many(
        "demo", wanted, replica="r1", now=NOW, lease=LEASE, retake_unmade=True
    )
    assert claim is not None
    assert claim.asked_at == NOW
    retry_at = NOW + timedelta(seconds=30)
    retrying = Outcome(claim, FireState.RETRYING, error="503", retry_at=retry_at)
    assert ledger.finish_many([retrying], now=NOW) == [True]

    [retried] = ledger.claim_many("demo", wanted, replica="r2", now=retry_at, lease=LEASE)
    assert retried is not None
    assert (retried.attempt, retried.asked_at) == (2, NOW)
    fire = ledger.fire("demo", "hourly", OLD)
    assert fire is not None
    assert fire.asked_at == NOW
    [scheduled] = ledger.claim_many(
        "demo", [("hourly", SIX, FireKind.SCHEDULED)], replica="r1", now=NOW, lease=LEASE
    )
    assert scheduled is not None
    assert scheduled.asked_at is None, "a scheduled fire's lateness counts from its slot"


def failed_and_reported(ledger: Ledger, watch: WatchSpec) -> Claim:
    """The `hourly` fire of SIX, failed and its failure reported (a letter queued)."""
    [claim] = ledger.claim_many(
        "demo", [("hourly", SIX, FireKind.CATCH_UP)], replica="r1", now=NOW, lease=LEASE
    )
    assert claim is not None
    failed = Outcome(claim, FireState.FAILED, "t1", "abc", "broken template", {"a": 1}, watch)
    assert ledger.finish_many([failed], now=NOW) == [True]
    [followed] = ledger.watches()
    assert followed.phase is WatchPhase.REPORT
    notice = Notice(f"fire-failed:{claim.fire_id}", {"title": "failed"}, ("slack:#ci",))
    assert ledger.advance_watch(followed, WatchPhase.DONE, now=NOW, notices=[notice])
    return claim


def test_a_failed_fire_is_claimed_again_only_to_rerun_it_and_starts_a_watch_of_its_own(
    ledger: Ledger,
) -> None:
    watch = WatchSpec()
    claim = failed_and_reported(ledger, watch)
    letters = ledger.letters()
    assert len(letters) == 1
    wanted = [("hourly", SIX, FireKind.CATCH_UP)]
    later = NOW + HOUR
    assert ledger.claim_many("demo", wanted, replica="r2", now=later, lease=LEASE) == [None]
    assert ledger.claim_many(
        "demo", wanted, replica="r2", now=later, lease=LEASE, retake_unmade=True
    ) == [None], "without rerun_failed, a failed fire stays as recorded"
    with pytest.raises(ValueError, match="retake_unmade"):
        ledger.claim_many("demo", wanted, replica="r2", now=later, lease=LEASE, rerun_failed=True)

    [rerun] = ledger.claim_many(
        "demo", wanted, replica="r2", now=later, lease=LEASE, retake_unmade=True, rerun_failed=True
    )

    assert rerun is not None
    assert (rerun.fire_id, rerun.attempt, rerun.asked_at) == (claim.fire_id, 2, later)
    taken = ledger.fire("demo", "hourly", SIX)
    assert taken is not None
    # What the failed attempt sent stays, for the rerun to find what it may have made.
    assert (taken.state, taken.error, taken.finished_at, taken.task_id, taken.details) == (
        FireState.CLAIMED,
        None,
        None,
        "t1",
        {"a": 1},
    )
    assert ledger.watch(claim.fire_id) is None, "the failure's watch is forgotten"
    assert ledger.letters() == letters, "the notices already sent stay as they are"

    created = Outcome(rerun, FireState.CREATED, "t1", "def", watch=watch)
    assert ledger.finish_many([created], now=later) == [True]
    started = ledger.watch(claim.fire_id)
    assert started is not None
    assert (started.phase, started.fire_state) == (WatchPhase.TASK, FireState.CREATED)
    assert ledger.claim_many(
        "demo", wanted, replica="r3", now=later, lease=LEASE, retake_unmade=True, rerun_failed=True
    ) == [None], "a fire that made its task is never claimed again"


def test_a_watch_read_before_a_rerun_never_moves_the_reruns_own(ledger: Ledger) -> None:
    [claim] = ledger.claim_many(
        "demo", [("hourly", SIX, FireKind.CATCH_UP)], replica="r1", now=NOW, lease=LEASE
    )
    assert claim is not None
    failed = Outcome(claim, FireState.FAILED, None, "abc", "broken template", None, WatchSpec())
    assert ledger.finish_many([failed], now=NOW) == [True]
    [stale] = ledger.watches()  # a watcher read the failure's watch, and is slow to report it
    later = NOW + HOUR
    [rerun] = ledger.claim_many(
        "demo", [("hourly", SIX, FireKind.CATCH_UP)], replica="r2", now=later, lease=LEASE,
        retake_unmade=True, rerun_failed=True,
    )  # fmt: skip
    assert rerun is not None
    again = Outcome(rerun, FireState.FAILED, None, "abc", "still broken", None, WatchSpec())
    assert ledger.finish_many([again], now=later) == [True]
    [fresh] = ledger.watches()
    assert (fresh.phase, fresh.phase) == (stale.phase, WatchPhase.REPORT)

    assert not ledger.advance_watch(stale, WatchPhase.DONE, now=later, notices=[])
    assert ledger.advance_watch(fresh, WatchPhase.DONE, now=later, notices=[])


# -- --rerun-failed, end to end ----------------------------------------------------------------


def test_rerun_failed_fires_each_failed_slot_again_once(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path, ledger_url: str
) -> None:
    """A broken `.taskcluster.yml` failed two slots; once it is fixed, `--rerun-failed` fires
    them again with their slots' task ids: one made, the other's task (made after all, say by
    the failed attempt) shown already fired, never doubled."""
    repository = Repository(
        tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": BROKEN_TEMPLATE}
    )
    config = write_service_config(tmp_path, repository, ledger=ledger_url)
    slots = [SIX, SIX + HOUR]
    until = SIX + 2 * HOUR

    def run(*arguments: str, exit_code: int = 0) -> dict[str, Any]:
        result = backfill(config, environment, "hourly", "--json", *arguments, until=until)
        return backfilled(result, exit_code)

    assert {fire["state"] for fire in run(exit_code=1)["fires"]} == {"failed"}
    repository.commit({".taskcluster.yml": OWN_TEMPLATE}, "fix the template")
    shown = run(exit_code=1)
    assert {fire["state"] for fire in shown["fires"]} == {"failed"}, "as recorded"
    preview = run("--rerun-failed", "--dry-run")
    assert states(preview) == [("hourly", format_slot(s), "dry-run") for s in slots]
    assert emulator.tasks() == []
    made_after_all = task_ids(emulator, "hourly", slots)[1]
    emulator.add_task(made_after_all, task_definition(NOW))

    rerun = run("--rerun-failed")

    assert states(rerun) == [
        ("hourly", format_slot(slots[0]), "created"),
        ("hourly", format_slot(slots[1]), "already-fired"),
    ]
    assert [fire["task_id"] for fire in rerun["fires"]] == task_ids(emulator, "hourly", slots)
    assert sorted(t.task_id for t in emulator.tasks()) == sorted(
        task_ids(emulator, "hourly", slots)
    )
    assert history(config, environment) == [
        (format_slot(slots[0]), "created"),
        (format_slot(slots[1]), "already-fired"),
    ]
    again = run("--rerun-failed")
    assert states(again) == [("hourly", format_slot(s), "already-fired") for s in slots]
    assert len(emulator.tasks()) == 2, "nothing made twice"
    with Ledger.open(ledger_url) as ledger:
        fires = ledger.fires(project="demo")
        log = ledger.audit_log()
    assert sorted((fire.slot, fire.attempt) for fire in fires) == [(s, 2) for s in slots]
    assert [(act.ok, act.input and act.input["rerun_failed"]) for act in reversed(log)] == [
        (False, False),
        (False, False),
        (True, True),
        (True, True),
        (True, True),
    ]


def test_the_api_reruns_failed_slots_when_asked_and_says_how_in_its_schema(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path
) -> None:
    repository = Repository(
        tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": BROKEN_TEMPLATE}
    )
    config = write_service_config(tmp_path, repository)
    failed = backfill(config, environment, "hourly", "--json", until=SIX + HOUR)
    assert backfilled(failed, exit_code=1)["counts"] == {"failed": 1}
    repository.commit({".taskcluster.yml": OWN_TEMPLATE}, "fix the template")
    settings = read_config(config, environment)
    api = ApiSettings(
        host="127.0.0.1", port=0, tokens=(ApiToken("sheriffs", "operator", hash_token(OPERATOR)),)
    )
    settings = replace(settings, api=api)
    body = {"jobs": ["hourly"], "start": format_slot(SIX), "until": format_slot(SIX + HOUR)}

    async def ask() -> tuple[list[httpx.Response], dict[str, Any]]:
        async with open_service(settings, clock=emulator.clock.now) as service:
            server = ApiServer(
                service.operations(), api, Monitor(service.ledger, emulator.clock.now)
            )
            server.start()
            assert server.url is not None
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    headers = {"Authorization": f"Bearer {OPERATOR}"}
                    path = "/api/v1/projects/demo/backfill"
                    answers = [
                        await client.post(path, json=sent, headers=headers)
                        for sent in (body, {**body, "rerun_failed": True})
                    ]
                    schema = (await client.get("/openapi.json")).json()
                    return answers, schema
            finally:
                await server.stop()

    (as_recorded, rerun), schema = asyncio.run(ask())
    assert as_recorded.status_code == 200, as_recorded.text
    assert states(as_recorded.json()) == [("hourly", format_slot(SIX), "failed")]
    assert rerun.status_code == 200, rerun.text
    assert states(rerun.json()) == [("hourly", format_slot(SIX), "created")]
    assert [t.task_id for t in emulator.tasks()] == task_ids(emulator, "hourly", [SIX])
    field = schema["components"]["schemas"]["BackfillBody"]["properties"]["rerun_failed"]
    assert "failed" in field["description"]
    helped = invoke("backfill", "--help", env=environment)
    assert "--rerun-failed" in helped.stdout
    assert "retrying" in helped.stdout


def test_a_backfill_again_before_the_retry_shows_the_fire_retrying(
    emulator: Emulator, environment: dict[str, str], tmp_path: Path
) -> None:
    """Not `claimed-elsewhere`: nobody holds it, it waits for its next attempt."""
    repository = Repository(
        tmp_path / "repo", {".cron.yml": CRON, ".taskcluster.yml": OWN_TEMPLATE}
    )
    settings = read_config(write_service_config(tmp_path, repository), environment)
    emulator.faults.add("queue.createTask", script=ONE_ATTEMPT)
    emulator.clock.set(NOW, frozen=True)

    async def twice() -> list[Any]:
        async with open_service(settings, clock=emulator.clock.now) as service:
            ops = service.operations()
            span = {"start": OLD, "until": OLD + HOUR}
            return [await ops.backfill("ann", "demo", ["hourly"], **span) for _ in range(2)]

    first, second = asyncio.run(twice())
    assert first.counts == second.counts == {"retrying": 1}
    [fire] = second.fires
    assert fire.error is not None
    assert "attempt 1 failed" in fire.error
    assert emulator.tasks() == []


def test_a_rerun_that_fails_again_after_a_recovery_is_reported_not_silenced(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    """The rerun is the same fire (same id) as the failure already reported: its own failure,
    once a success closed the first incident, opens a new one that must be announced; else the
    incident is open and unsaid, and the job's next failures are only counted in it."""
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": BROKEN_TEMPLATE}
    )
    settings = NotifySettings(
        slack=SlackSettings(token=SLACK_TOKEN, api_url=slack.api_url, channel="#releng")
    )
    config = make_config(emulator, tmp_path, project("alpha", repository), notify=settings)
    day = datetime(2026, 12, 1, tzinfo=UTC)

    async def scenario() -> None:
        async with open_service(config, clock=emulator.clock.now) as service:
            engine, notifier = service.engine, service.notifier
            emulator.clock.set(day, frozen=True)
            await tick_and_report(engine, notifier, day)
            await notifier.round()
            repository.commit({".taskcluster.yml": OWN_TEMPLATE}, "fix the template")
            emulator.clock.set(day + HOUR, frozen=True)
            await tick_and_report(engine, notifier, day + HOUR)
            await notifier.round()
            repository.commit({".taskcluster.yml": BROKEN_TEMPLATE + " "}, "break it again")
            emulator.clock.set(day + 2 * HOUR + timedelta(minutes=5), frozen=True)
            rerun = await service.operations().backfill(
                "ann", "alpha", ["hourly"], start=day, until=day + HOUR, rerun_failed=True
            )
            assert [fire.state for fire in rerun.fires] == [FireState.FAILED]
            await notifier.round()

    asyncio.run(scenario())

    broken, recovered, broken_again = (message.text or "" for message in slack.messages)
    assert "broken" in broken
    assert "renders again" in recovered
    assert "broken" in broken_again, "the rerun's failure opened an incident: it is said"
    assert repository.head[:12] in broken_again


# -- the ledger's memory -----------------------------------------------------------------------


def test_a_backfill_older_than_the_ledger_keeps_fires_is_refused_not_fired_twice(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Past `retention.fires` the ledger has forgotten a slot's fire: a backfill would take the
    slot for unfired and trigger its hook again (triggerHook is not idempotent)."""
    cron = """\
jobs:
  - name: add-jobs
    job: {type: trigger-action, action-name: add-new-jobs}
    when: [{hour: 3, minute: 0}]
"""
    repository = Repository(tmp_path / "fenix", {".cron.yml": cron})
    config = make_config(emulator, tmp_path, project("fenix", repository, trust_domain="mobile"))
    day = datetime(2026, 8, 1, tzinfo=UTC)
    emulator.clock.set(day + 3 * HOUR, frozen=True)
    route = f"index.mobile.v2.fenix.revision.{repository.head}.taskgraph.decision"
    seed_decision_with_actions(emulator, route)
    hook = ("project-mobile", "in-tree-action-3-generic/93267a5f84")
    later = day + config.retention.fires + timedelta(days=10)

    async def scenario() -> Any:
        async with open_service(config, clock=emulator.clock.now) as service:
            [ticked] = await service.engine.tick(day + 3 * HOUR)
            [fire] = ticked.fires
            assert (fire.state, fire.task_id is not None) == (FireState.CREATED, True), fire
            emulator.resolve_task(str(fire.task_id), "completed")
            await service.notifier.round()  # its task followed to its end
            emulator.clock.set(later, frozen=True)
            pruned = await service.operations().ledger.prune("ann", config.retention)
            assert pruned.fires == 1
            span = {"start": day, "until": day + timedelta(days=1)}
            return await service.operations().backfill("ann", "fenix", **span)

    with pytest.raises(InvalidRangeError, match=r"retention\.fires") as refused:
        asyncio.run(scenario())

    assert "backfill from 2026-" in str(refused.value)
    fired = taskcluster.Hooks(emulator.options()).listLastFires(*hook)["lastFires"]
    assert len(fired) == 1, "the hook is triggered once"


def test_a_rerun_checks_in_to_sentry_as_a_run_of_its_own(
    emulator: Emulator, tmp_path: Path, fake_sentry: FakeSentry
) -> None:
    """The failed fire's check-in ended `error`; the rerun's start and end are another run's:
    not dropped as the failure's (same fire id), nor left `in_progress` for Sentry to time out."""
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    lateness = timedelta(minutes=1)
    config = make_config(
        emulator,
        tmp_path,
        project("alpha", repository, catch_up=CatchUp(max_lateness=lateness)),
        notify=NotifySettings(sentry=SentrySettings(dsn=fake_sentry.dsn, environment="test")),
    )
    day = datetime(2026, 12, 1, tzinfo=UTC)
    emulator.faults.add("queue.createTask", script=ONE_ATTEMPT)

    async def scenario() -> None:
        async with open_service(config, clock=emulator.clock.now) as service:
            engine, notifier = service.engine, service.notifier
            emulator.clock.set(day, frozen=True)
            await tick_and_report(engine, notifier, day)
            emulator.clock.set(day + lateness + ROUND_GRACE + timedelta(seconds=1), frozen=True)
            await engine.recover()  # given up: failed, reported
            await notifier.round()
            emulator.clock.set(day + 2 * HOUR, frozen=True)
            rerun = await service.operations().backfill(
                "ann", "alpha", ["hourly"], start=day, until=day + HOUR, rerun_failed=True
            )
            [fire] = rerun.fires
            assert fire.state == "created", fire.error
            await notifier.round()
            emulator.resolve_task(str(fire.task_id), "completed")
            await notifier.round()

    asyncio.run(scenario())

    fake_sentry.wait_for("check_in", count=3)
    slug = sentry.monitor_slug("alpha", "hourly")
    check_ins = [c for c in fake_sentry.check_ins if c["monitor_slug"] == slug]
    assert [c["status"] for c in check_ins] == ["error", "in_progress", "ok"]
    failed, started, ended = (c["check_in_id"] for c in check_ins)
    assert started == ended != failed
