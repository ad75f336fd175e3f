"""Notifications end to end: the service against the emulator, the local Slack and Sentry.

What people hear when a fire fails, a task group has failures, a project breaks, Slack is down
or two replicas run, and that no secret reaches Slack, Sentry, the log or the ledger.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import string
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sentry_sdk
import slugid
import structlog
from sqlalchemy import create_engine, select

from scheduler.common import logs
from scheduler.config.loading import load_config
from scheduler.config.model import CallBounds, CatchUp, Config
from scheduler.engine import Engine
from scheduler.expiry.model import CachedTask, ExpiryEvent, ExpiryEventKind
from scheduler.ids import decision_task_id
from scheduler.ledger import Ledger, LetterState
from scheduler.ledger.models import Base
from scheduler.notify import sentry
from scheduler.notify.events import EventKind
from scheduler.notify.settings import NotifySettings, SentrySettings, SlackRoute, SlackSettings
from scheduler.notify.slack import SlackSender
from scheduler.outcomes import SlotResult
from scheduler.retrying import FIRST_WAIT, ROUND_GRACE
from scheduler.service import Notifier, open_service, scan_and_report, tick_and_report
from tests.emulator import Emulator
from tests.emulator.sentry import FakeSentry
from tests.emulator.slack import FakeSlack, Message
from tests.support.emulated import REPOSITORY_ROLES, task_definition
from tests.support.expiry import CACHED, seed, seed_rebuild_action
from tests.support.fakes import SLACK_CHANNELS, SLACK_TOKEN
from tests.support.ledger_backends import postgresql_schema_url
from tests.support.projects import HOURLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository

T = TypeVar("T")
DAY = datetime(2026, 12, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SHERIFFS = "<!subteam^S0SHERIFF>"
THREE_JOBS = """\
jobs:
"""
for _name in ("alpha", "bravo", "charlie"):
    THREE_JOBS += f"""\
  - name: {_name}
    job: {{type: decision-task, treeherder-symbol: {_name[0].upper()}, target-tasks-method: x}}
    when: [{{minute: 0}}]
"""


def notify_settings(slack: FakeSlack, fake_sentry: FakeSentry | None = None) -> NotifySettings:
    return NotifySettings(
        slack=SlackSettings(
            token=SLACK_TOKEN,
            api_url=slack.api_url,
            channel="#releng",
            mentions=(SHERIFFS,),
        ),
        sentry=SentrySettings(dsn=fake_sentry.dsn, environment="test") if fake_sentry else None,
    )


# -- driving the service -------------------------------------------------------------------------


def serve(
    config: Config, emulator: Emulator, work: Callable[[Engine, Notifier], Awaitable[T]]
) -> T:
    async def main() -> T:
        async with open_service(config, clock=emulator.clock.now) as (engine, notifier, _):
            return await work(engine, notifier)

    return asyncio.run(main())


async def tick(
    engine: Engine, notifier: Notifier, emulator: Emulator, slot: datetime
) -> list[SlotResult]:
    emulator.clock.set(slot, frozen=True)
    return await tick_and_report(engine, notifier, slot)


def task_of(emulator: Emulator, project: str, job: str, slot: datetime) -> str:
    return decision_task_id(emulator.root_url, project, job, slot)


def text_of(message: Message) -> str:
    """Everything a person can read in a message: its text and its blocks."""
    return json.dumps([message.text, message.blocks])


def block_texts(message: Message) -> list[str]:
    texts = []
    for block in message.blocks or []:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields", []))
        texts.extend(element.get("text", "") for element in block.get("elements", []))
    return texts


def letters(config: Config) -> list[Any]:
    with Ledger.open(config.ledger_url) as ledger:
        return ledger.letters()


# -- a decision task fails, then the job recovers ----------------------------------------------


def test_a_failed_decision_task_is_reported_once_and_its_recovery_in_the_thread(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack, fake_sentry: FakeSentry
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack, fake_sentry)
    )
    failing = task_of(emulator, "alpha", "hourly", DAY)
    passing = task_of(emulator, "alpha", "hourly", DAY + HOUR)

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        await tick(engine, notifier, emulator, DAY)
        emulator.resolve_task(failing, "failed")
        await notifier.round()
        await notifier.round()  # nothing new: nothing more is said
        await tick(engine, notifier, emulator, DAY + HOUR)
        emulator.resolve_task(passing, "completed")
        await notifier.round()
        await notifier.round()

    serve(config, emulator, scenario)

    failure, recovery = slack.messages
    assert failure.channel == "C0RELENG"
    assert failure.thread_ts is None
    assert failure.text is not None
    assert failure.text.startswith(SHERIFFS)
    assert "alpha hourly: decision task failed" in failure.text
    texts = block_texts(failure)
    assert f"{emulator.root_url}/tasks/{failing}" in texts[0], "the link to click comes first"
    fields = "\n".join(texts)
    for expected in ("alpha", "hourly", "2026-12-01 00:00 UTC", failing, "What to do"):
        assert expected in fields
    assert f"{emulator.root_url}/tasks/groups/{failing}" in fields
    assert "tc-scheduler fire alpha hourly" in fields

    assert recovery.thread_ts == failure.ts, "the recovery is a reply in the failure's thread"
    assert recovery.channel == failure.channel
    assert recovery.text is not None
    assert "recovered" in recovery.text
    assert SHERIFFS not in text_of(recovery), "nobody is called for good news"
    assert f"{emulator.root_url}/tasks/{passing}" in text_of(recovery)
    assert "Failures" in text_of(recovery)

    slug = sentry.monitor_slug("alpha", "hourly")
    fake_sentry.wait_for("check_in", count=4)
    check_ins = [c for c in fake_sentry.check_ins if c["monitor_slug"] == slug]
    assert [c["status"] for c in check_ins] == ["in_progress", "error", "in_progress", "ok"]
    first, second = check_ins[:2], check_ins[2:]
    assert first[0]["check_in_id"] == first[1]["check_in_id"]
    assert second[0]["check_in_id"] == second[1]["check_in_id"] != first[0]["check_in_id"]
    assert check_ins[0]["monitor_config"]["schedule"] == {"type": "crontab", "value": "0 * * * *"}
    ticks = [c for c in fake_sentry.check_ins if c["monitor_slug"] == "tc-scheduler-tick"]
    assert [c["status"] for c in ticks] == ["in_progress", "ok", "in_progress", "ok"]
    assert all(letter.state is LetterState.SENT for letter in letters(config))


def test_a_manual_fire_reports_without_a_check_in(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack, fake_sentry: FakeSentry
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack, fake_sentry)
    )

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        emulator.clock.set(DAY + timedelta(minutes=20), frozen=True)
        result = await engine.fire_now("alpha", "hourly")
        assert result.task_id is not None
        emulator.resolve_task(result.task_id, "exception", "malformed-payload")
        await notifier.round()

    serve(config, emulator, scenario)
    [message] = slack.messages
    assert "decision task exception (malformed-payload)" in text_of(message)
    assert "manual" in text_of(message)
    sentry.close()
    slug = sentry.monitor_slug("alpha", "hourly")
    assert not [c for c in fake_sentry.check_ins if c["monitor_slug"] == slug]


def test_canceled_tasks_are_not_failures_unless_configured(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    quiet = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )
    loud = replace(quiet, notify=replace(quiet.notify, canceled=True))

    def canceled_at(config: Config, slot: datetime) -> None:
        async def scenario(engine: Engine, notifier: Notifier) -> None:
            await tick(engine, notifier, emulator, slot)
            emulator.resolve_task(
                task_of(emulator, "alpha", "hourly", slot), "exception", "canceled"
            )
            await notifier.round()

        serve(config, emulator, scenario)

    canceled_at(quiet, DAY)
    assert slack.messages == []
    canceled_at(loud, DAY + HOUR)
    [message] = slack.messages
    assert "decision task exception (canceled)" in text_of(message)


def test_a_fire_given_up_whose_task_may_exist_is_reported_as_not_known(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    """Its createTask timed out at every attempt and the queue does not say whether the task
    exists: the notice says so, names the task, and does not advise firing it again blindly."""
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    bounds = CallBounds(timeout=timedelta(seconds=1), deadline=timedelta(seconds=2))
    config = make_config(
        emulator,
        tmp_path,
        project("alpha", repository),
        notify=notify_settings(slack),
        calls=bounds,
    )
    task_id = task_of(emulator, "alpha", "hourly", DAY)
    emulator.faults.add("queue.createTask", error_rate=1.0, errors=["hold"])
    emulator.faults.add("queue.task", error_rate=1.0, errors=["hold"])

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        await tick(engine, notifier, emulator, DAY)  # retrying: nothing to report yet
        emulator.clock.set(DAY + CatchUp().max_lateness + ROUND_GRACE + FIRST_WAIT, frozen=True)
        await engine.recover()
        await notifier.round()

    try:
        serve(config, emulator, scenario)
    finally:
        emulator.faults.clear()
    [message] = slack.messages
    text = text_of(message)
    assert "alpha hourly: could not start the decision task" in text
    assert f"so whether task {task_id} exists is still not known" in text
    assert f"once task {task_id} is seen not to exist." in text


def test_a_fire_that_cannot_start_is_reported_with_its_error(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    action_job = """\
jobs:
  - name: nightly-action
    job: {type: trigger-action, action-name: nightly}
    when: [{minute: 0}]
"""
    repository = Repository(tmp_path / "alpha", {".cron.yml": action_job})
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )
    serve(config, emulator, lambda engine, notifier: tick(engine, notifier, emulator, DAY))
    [message] = slack.messages
    assert "alpha nightly-action: could not start the action task" in text_of(message)
    assert "has not completed" in text_of(message), "the error says why"


# -- a task group with failures ------------------------------------------------------------------


def test_a_task_group_with_failures_is_summarised_in_one_message(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator,
        tmp_path,
        project("alpha", repository, watch_task_groups=("hourly",)),
        notify=notify_settings(slack),
    )
    decision = task_of(emulator, "alpha", "hourly", DAY)
    failed_names = ["build-linux64/opt", "test-windows11/debug-mochitest-1", "lint-eslint"]

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        await tick(engine, notifier, emulator, DAY)
        scheduler_id = emulator.tasks()[0].definition["schedulerId"]

        def add(name: str, **extra: Any) -> str:
            task_id = slugid.nice()
            emulator.add_task(
                task_id,
                task_definition(
                    DAY,
                    taskGroupId=decision,
                    schedulerId=scheduler_id,
                    metadata={
                        "name": name,
                        "description": name,
                        "owner": "ci@example.com",
                        "source": "https://example.com/ci",
                    },
                    **extra,
                ),
            )
            return task_id

        failed = [add(name) for name in failed_names]
        passed = [add(f"build-{n}") for n in range(45)]
        add("upload-symbols", dependencies=[failed[0]])  # never runs: waits on a failure
        for task_id in failed:
            emulator.resolve_task(task_id, "failed")
        for task_id in passed[:-1]:
            emulator.resolve_task(task_id, "completed")
        emulator.resolve_task(decision, "completed")
        await notifier.round()
        await notifier.round()
        assert slack.messages == [], "not before every task of the group resolved"
        emulator.resolve_task(passed[-1], "completed")
        await notifier.round()
        await notifier.round()

    serve(config, emulator, scenario)

    [message] = slack.messages
    assert message.text is not None
    assert "alpha hourly: 3 of 50 tasks failed" in message.text
    content = text_of(message)
    for name in failed_names:
        assert name in content
    assert "build-0" not in content, "only the failures are named"
    assert "1 tasks wait on a failed dependency" in content
    failed_ids = {t.task_id for t in emulator.tasks() if t.state == "failed"}
    for task_id in failed_ids:
        assert f"{emulator.root_url}/tasks/{task_id}" in content


# -- Slack misbehaving -----------------------------------------------------------------------


def failing_hourly(tmp_path: Path, emulator: Emulator, slack: FakeSlack, **changes: Any) -> Config:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    return make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack), **changes
    )


def test_rate_limit_then_server_error_then_ok_posts_once(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    config = failing_hourly(tmp_path, emulator, slack)

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        await tick(engine, notifier, emulator, DAY)
        slack.rate_limit(retry_after=0, method="chat.postMessage")
        slack.server_error(method="chat.postMessage")
        emulator.resolve_task(task_of(emulator, "alpha", "hourly", DAY), "failed")
        await notifier.round()
        emulator.clock.set(DAY + HOUR, frozen=True)  # any retry would be due by now
        await notifier.round()

    serve(config, emulator, scenario)
    [message] = slack.messages
    assert "decision task failed" in text_of(message)
    assert [c.status for c in slack.calls_to("chat.postMessage")] == [429, 500, 200]
    [letter] = letters(config)
    assert letter.state is LetterState.SENT


def test_slack_down_for_an_hour_delays_messages_not_fires(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": THREE_JOBS, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )
    jobs = ("alpha", "bravo", "charlie")

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        # Down: every call answers 503, and the sender does not retry within a call.
        slack.server_error(100_000, status=503)
        notifier.postman.slack = SlackSender(token=SLACK_TOKEN, base_url=slack.api_url, retries=0)
        await tick(engine, notifier, emulator, DAY)
        for job in jobs:
            emulator.resolve_task(task_of(emulator, "alpha", job, DAY), "failed")
        moment = DAY
        while moment < DAY + HOUR:
            moment += timedelta(minutes=5)
            if moment.minute % 15 == 0:
                results = await tick(engine, notifier, emulator, moment)
                assert all(result.ok for result in results)
            else:
                emulator.clock.set(moment, frozen=True)
                await notifier.round()
        # The fires of 01:00 happened on time, Slack or not.
        assert {t.task_id for t in emulator.tasks()} >= {
            task_of(emulator, "alpha", job, DAY + HOUR) for job in jobs
        }
        for job in jobs:
            emulator.resolve_task(task_of(emulator, "alpha", job, DAY + HOUR), "completed")
        await notifier.round()
        assert slack.messages == []
        assert len(slack.calls) >= 5, "it kept trying"
        slack.reset()  # back up
        emulator.clock.set(DAY + HOUR + timedelta(minutes=11), frozen=True)
        await notifier.round()
        await notifier.round()

    serve(config, emulator, scenario)

    queued = letters(config)
    assert [letter.state for letter in queued] == [LetterState.SENT] * 6
    posted = slack.messages
    assert [m.ts for m in posted] == [letter.posted["ts"] for letter in queued], "in order"
    failures, recoveries = posted[:3], posted[3:]
    assert all(m.thread_ts is None for m in failures)
    for failure, letter in zip(failures, queued[:3], strict=True):
        assert letter.event["kind"] == EventKind.TASK_FAILED
        assert f"alpha {letter.event['job']}: decision task failed" in text_of(failure)
    parents = {m.ts: m for m in failures}
    for recovery, letter in zip(recoveries, queued[3:], strict=True):
        assert letter.event["kind"] == EventKind.RECOVERED
        parent = parents[recovery.thread_ts or ""]
        assert f"alpha {letter.event['job']}:" in text_of(parent)


def test_a_permanent_slack_error_gives_up_without_blocking_later_messages(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    config = failing_hourly(tmp_path, emulator, slack)

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        slack.api_error("invalid_blocks", method="chat.postMessage")
        await tick(engine, notifier, emulator, DAY)
        emulator.resolve_task(task_of(emulator, "alpha", "hourly", DAY), "failed")
        await notifier.round()
        await tick(engine, notifier, emulator, DAY + HOUR)
        emulator.resolve_task(task_of(emulator, "alpha", "hourly", DAY + HOUR), "completed")
        await notifier.round()

    serve(config, emulator, scenario)
    failed, recovered = letters(config)
    assert failed.state is LetterState.FAILED
    assert failed.last_error is not None
    assert "invalid_blocks" in failed.last_error
    assert recovered.state is LetterState.SENT
    [message] = slack.messages
    assert message.thread_ts is None, "with no failure message to reply to, it stands alone"


# -- two replicas ---------------------------------------------------------------------------------


def test_two_replicas_report_each_event_once(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    broken_job = """\
  - name: broken
    job: {type: decision-task, treeherder-symbol: B, target-tasks-method: x}
    when: [{minute: 7}]
"""
    repository = Repository(
        tmp_path / "alpha",
        {".cron.yml": HOURLY + broken_job, ".taskcluster.yml": OWN_TEMPLATE},
    )
    with postgresql_schema_url() as url:
        configs = [
            make_config(
                emulator,
                tmp_path / name,
                project("alpha", repository),
                notify=notify_settings(slack),
                ledger_url=url,
                replica=name,
            )
            for name in ("replica-1", "replica-2")
        ]

        async def both(work: Callable[[Engine, Notifier], Awaitable[Any]]) -> None:
            async with (
                open_service(configs[0], clock=emulator.clock.now) as one,
                open_service(configs[1], clock=emulator.clock.now) as two,
            ):
                await asyncio.gather(work(one.engine, one.notifier), work(two.engine, two.notifier))

        async def scenario() -> None:
            for slot, state in ((DAY, "failed"), (DAY + HOUR, "completed")):
                emulator.clock.set(slot, frozen=True)
                await both(lambda e, n, s=slot: tick_and_report(e, n, s))
                emulator.resolve_task(task_of(emulator, "alpha", "hourly", slot), state)
                for _ in range(3):
                    await both(lambda e, n: n.round())

        asyncio.run(scenario())
        queued = letters(configs[0])

    kinds = sorted(letter.event["kind"] for letter in queued)
    assert kinds == sorted([EventKind.PROJECT_BROKEN, EventKind.TASK_FAILED, EventKind.RECOVERED])
    assert len(slack.messages) == 3
    assert len({m.ts for m in slack.messages}) == 3


# -- a project broken, then fixed -----------------------------------------------------------------


def test_an_invalid_cron_file_is_reported_once_per_revision_and_its_fix_once(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )

    revisions: list[str] = []

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        slot = DAY
        await tick(engine, notifier, emulator, slot)
        revisions.append(repository.commit({".cron.yml": "jobs:\n  - name: [oops\n"}))
        for _ in range(8):
            slot += timedelta(minutes=15)
            await tick(engine, notifier, emulator, slot)
        assert len(slack.messages) == 1
        revisions.append(repository.commit({".cron.yml": "jobs: 42\n"}))
        for _ in range(3):
            slot += timedelta(minutes=15)
            await tick(engine, notifier, emulator, slot)
        assert len(slack.messages) == 2
        repository.commit({".cron.yml": HOURLY})
        for _ in range(3):
            slot += timedelta(minutes=15)
            await tick(engine, notifier, emulator, slot)

    serve(config, emulator, scenario)

    broken, broken_again, fixed = slack.messages
    assert f".cron.yml has errors at {revisions[0][:12]}" in text_of(broken)
    assert f".cron.yml has errors at {revisions[1][:12]}" in text_of(broken_again)
    assert SHERIFFS in (broken.text or "")
    assert "tc-scheduler check .cron.yml" in text_of(broken)
    assert broken_again.thread_ts is None
    assert fixed.thread_ts == broken_again.ts, "the fix is told where the latest breakage was"
    assert ".cron.yml is valid again" in text_of(fixed)
    assert "Failures" in text_of(fixed)


def test_an_unreachable_repository_is_reported_once_and_its_return(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    moved = tmp_path / "moved"
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        repository.path.rename(moved)
        for minutes in (0, 15, 30, 45):
            await tick(engine, notifier, emulator, DAY + timedelta(minutes=minutes))
        moved.rename(repository.path)
        await tick(engine, notifier, emulator, DAY + HOUR)

    serve(config, emulator, scenario)
    broken, back = slack.messages
    assert "alpha: cannot read the repository, nothing fires" in text_of(broken)
    assert back.thread_ts == broken.ts
    assert "the repository can be read again" in text_of(back)


# -- routing -------------------------------------------------------------------------------------


def test_routes_send_a_job_to_its_channel_with_its_mentions(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": THREE_JOBS, ".taskcluster.yml": OWN_TEMPLATE}
    )
    settings = notify_settings(slack)
    assert settings.slack is not None
    routed = replace(
        settings.slack,
        routes=(SlackRoute(channel="#nightly", jobs=("b*",), mentions=("@here",)),),
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=replace(settings, slack=routed)
    )

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        await tick(engine, notifier, emulator, DAY)
        for job in ("alpha", "bravo"):
            emulator.resolve_task(task_of(emulator, "alpha", job, DAY), "failed")
        await notifier.round()

    serve(config, emulator, scenario)
    [nightly] = slack.messages_in("nightly")
    [releng] = slack.messages_in("releng")
    assert "alpha bravo:" in text_of(nightly)
    assert (nightly.text or "").startswith("<!here>")
    assert "alpha alpha:" in text_of(releng)
    assert (releng.text or "").startswith(SHERIFFS)


# -- secrets -------------------------------------------------------------------------------------


class Canaries:
    """Made-up secrets of each kind, new for the test."""

    def __init__(self) -> None:
        alphabet = string.ascii_letters + string.digits
        self.tc_token = "Tc" + "".join(secrets.choice(alphabet) for _ in range(42))
        self.slack_token = "xoxb-7777-" + "".join(secrets.choice(alphabet) for _ in range(24))
        self.api_token = "api" + "".join(secrets.choice(alphabet) for _ in range(29))
        self.sentry_key = secrets.token_hex(16)

    def all(self) -> list[str]:
        return [self.tc_token, self.slack_token, self.api_token, self.sentry_key]


def test_secret_canaries_reach_no_message_event_log_or_ledger_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = Canaries()
    monkeypatch.setenv("TC_SCHEDULER_API_TOKEN", canaries.api_token)
    log_stream = io.StringIO()
    # A job whose weekday is a token, so that the errors about it quote one.
    leaky_cron = HOURLY + (
        "  - name: leaky\n"
        "    job: {type: decision-task, treeherder-symbol: L, target-tasks-method: x}\n"
        f"    when: [{{weekday: {canaries.slack_token}}}]\n"
    )
    with (
        Emulator(root_access_token=canaries.tc_token, roles=REPOSITORY_ROLES) as emulator,
        FakeSlack.running(token=canaries.slack_token, channels=SLACK_CHANNELS) as slack,
        FakeSentry.running(public_key=canaries.sentry_key) as fake_sentry,
        sentry_sdk.isolation_scope() as scope,
    ):
        scope.set_new_propagation_context()
        repository = Repository(
            tmp_path / "alpha", {".cron.yml": leaky_cron, ".taskcluster.yml": OWN_TEMPLATE}
        )
        unreachable = f"https://ci:{canaries.api_token}@127.0.0.1:9/private.git"
        config_file = tmp_path / "config.yml"
        config_file.write_text(
            json.dumps(
                {
                    "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
                    "dry-run": False,
                    "notify": {
                        "slack": {"api-url": slack.api_url, "channel": "#releng"},
                        "sentry": {"environment": "test"},
                    },
                    "projects": [
                        {
                            "name": "alpha",
                            "repository": "https://github.com/example/alpha",
                            "fetch-from": repository.url,
                            "trust-domain": "tcs",
                        },
                        {
                            "name": "beta",
                            "repository": "https://github.com/example/beta",
                            "fetch-from": unreachable,
                            "trust-domain": "tcs",
                        },
                    ],
                }
            )
        )
        environment = {
            **os.environ,
            "TASKCLUSTER_ROOT_URL": emulator.root_url,
            "TASKCLUSTER_CLIENT_ID": emulator.root_credentials["clientId"],
            "TASKCLUSTER_ACCESS_TOKEN": canaries.tc_token,
            "SLACK_BOT_TOKEN": canaries.slack_token,
            "SENTRY_DSN": fake_sentry.dsn,
        }
        config = load_config(config_file.read_text(), str(config_file), environment)
        logs.configure(json=True, stream=log_stream)
        try:

            def leak(token: str) -> None:
                slack_token = canaries.slack_token  # noqa: F841 - a local Sentry must not show
                raise RuntimeError(f"could not use {token} with {canaries.api_token}")

            async def scenario(engine: Engine, notifier: Notifier) -> None:
                await tick(engine, notifier, emulator, DAY)
                emulator.resolve_task(task_of(emulator, "alpha", "hourly", DAY), "failed")
                await notifier.round()
                try:
                    leak(canaries.tc_token)
                except RuntimeError:
                    structlog.get_logger("test").exception("unexpected", project="alpha")

            serve(config, emulator, scenario)
        finally:
            structlog.reset_defaults()

        received = {
            "slack": json.dumps([[m.text, m.blocks] for m in slack.messages]),
            "sentry": json.dumps(
                [[item.headers, repr(item.payload)] for item in fake_sentry.items]
            ),
            "log": log_stream.getvalue(),
            "ledger": ledger_dump(config.ledger_url),
        }
        # Each place got something to look through, including what held a secret.
        assert "cannot read the repository" in received["slack"]
        assert ".cron.yml has errors" in received["slack"]
        assert "decision task failed" in received["slack"]
        assert "could not use" in received["sentry"]
        [unexpected] = fake_sentry.events
        assert unexpected["tags"]["project"] == "alpha", "logged exceptions carry their fire's tags"
        assert unexpected["environment"] == "test"
        assert "notified" in received["log"]
        assert "fire resolved" in received["log"]
        assert "could not use" in received["log"]
        for where in ("slack", "log", "ledger"):
            assert "weekday must be one of" in received[where], f"the {where} has the error"
        for where, text in received.items():
            for canary in canaries.all():
                assert canary not in text, f"a secret reached the {where}"


def ledger_dump(url: str) -> str:
    """Every row of every table of the ledger, as text."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = [
                [table.name, *map(str, row)]
                for table in Base.metadata.sorted_tables
                for row in connection.execute(select(table))
            ]
    finally:
        engine.dispose()
    return json.dumps(rows)


# -- more that people hear about ------------------------------------------------------------------


def test_a_broken_template_is_one_project_message_not_one_per_job(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": THREE_JOBS, ".taskcluster.yml": "tasks: []\n"}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        await tick(engine, notifier, emulator, DAY)
        await tick(engine, notifier, emulator, DAY + HOUR)
        assert len(slack.messages) == 1
        repository.commit({".taskcluster.yml": OWN_TEMPLATE})
        await tick(engine, notifier, emulator, DAY + 2 * HOUR)

    serve(config, emulator, scenario)
    broken, fixed = slack.messages
    assert "alpha: .taskcluster.yml is broken at" in text_of(broken)
    assert "tc-scheduler render" in text_of(broken)
    assert fixed.thread_ts == broken.ts
    assert ".taskcluster.yml renders again" in text_of(fixed)


def test_missed_slots_the_catch_up_skips_are_reported(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        await tick(engine, notifier, emulator, DAY)
        # Down from 00:15 to 04:10: 01:00, 02:00 and 03:00 were missed; `latest` fires 03:00.
        await tick(engine, notifier, emulator, DAY + timedelta(hours=4, minutes=10))

    serve(config, emulator, scenario)
    [message] = slack.messages
    content = text_of(message)
    assert "alpha: 2 missed slots not fired after a gap" in content
    assert "hourly at 2026-12-01 01:00" in content
    assert "hourly at 2026-12-01 02:00" in content
    assert "tc-scheduler fire alpha hourly" in content
    assert SHERIFFS not in (message.text or ""), "a warning calls nobody"


def test_watching_survives_a_restart(emulator: Emulator, tmp_path: Path, slack: FakeSlack) -> None:
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )
    serve(config, emulator, lambda engine, notifier: tick(engine, notifier, emulator, DAY))
    emulator.resolve_task(task_of(emulator, "alpha", "hourly", DAY), "exception", "worker-shutdown")
    serve(config, emulator, lambda engine, notifier: notifier.round())
    serve(config, emulator, lambda engine, notifier: notifier.round())
    [message] = slack.messages
    assert "decision task exception (worker-shutdown)" in text_of(message)
    assert "the worker running the task shut down" in text_of(message)


def test_expiry_findings_are_said_once_until_they_change(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    repository = Repository(tmp_path / "alpha", {".cron.yml": HOURLY})
    config = make_config(
        emulator, tmp_path, project("alpha", repository), notify=notify_settings(slack)
    )

    def expiring(*task_ids: str) -> ExpiryEvent:
        at_risk = tuple(
            CachedTask(
                task_id,
                "gecko.cache.level-3.toolchains.v3.linux64-clang",
                "toolchain",
                DAY + timedelta(days=3),
                "task",
            )
            for task_id in task_ids
        )
        return ExpiryEvent(
            ExpiryEventKind.EXPIRING, "alpha", f"{len(at_risk)} cached tasks expire soon", at_risk
        )

    first, second = slugid.nice(), slugid.nice()

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        emulator.clock.set(DAY, frozen=True)
        for findings in ([expiring(first)], [expiring(first)], [expiring(first, second)]):
            await notifier.expiry_scanned("alpha", findings)
            await notifier.round()
        failed = ExpiryEvent(ExpiryEventKind.SCAN_FAILED, "alpha", "the expiry scan failed: 403")
        await notifier.expiry_scanned("alpha", [failed])
        await notifier.expiry_scanned("alpha", [failed])
        await notifier.expiry_scanned("alpha", [])
        await notifier.round()

    serve(config, emulator, scenario)
    found, found_more, scan_failed, scan_back = slack.messages
    assert "alpha: cached tasks expire soon" in text_of(found)
    assert "2 cached tasks expire soon" in text_of(found_more)
    assert "alpha: the expiry scan failed" in text_of(scan_failed)
    assert scan_back.thread_ts == scan_failed.ts


def test_a_scheduled_expiry_scan_that_taskcluster_fails_is_said_not_raised(
    emulator: Emulator, tmp_path: Path, slack: FakeSlack
) -> None:
    """The scan `run` schedules: Taskcluster failing it, in the scan or while following the
    rebuild, is an expiry-scan-failed message that names the call and the answer, and the job
    ends normally (never APScheduler's "Job raised an exception")."""
    repository = Repository(tmp_path / "alpha", {".cron.yml": HOURLY})
    alpha = project("alpha", repository)
    config = make_config(emulator, tmp_path, alpha, notify=notify_settings(slack))
    emulator.clock.set(DAY, frozen=True)
    seed_rebuild_action(emulator, "alpha")
    for namespace in CACHED:
        seed(emulator, f"{namespace}.latest", timedelta(days=7))

    def scan() -> None:
        serve(config, emulator, lambda engine, notifier: scan_and_report(engine, notifier, alpha))

    emulator.faults.add("index.listNamespaces", error_rate=1.0, errors=["502"])
    scan()
    [scan_failed] = slack.messages
    assert "alpha: the expiry scan failed" in text_of(scan_failed)
    assert (
        "index.listNamespaces(tcs.cache.level-1) failed: Taskcluster answered 502 Bad Gateway, "
        "still after 5 retries" in text_of(scan_failed)
    )

    emulator.faults.clear()
    scan()  # the scan works again, and starts the rebuild
    [started] = [m for m in slack.messages if "rebuilding expiring cached tasks" in text_of(m)]
    [action] = [t for t in emulator.tasks() if t.task_id in text_of(started)]
    emulator.resolve_task(action.task_id, "completed")
    emulator.clock.advance(HOUR)  # the next scheduled scan
    emulator.faults.add("queue.listTaskGroup", error_rate=1.0, errors=["503"])
    before = len(slack.messages)
    scan()
    [following_failed] = slack.messages[before:]
    assert "alpha: the expiry scan failed" in text_of(following_failed)
    assert (
        f"queue.listTaskGroup({action.task_id}) failed: Taskcluster answered 503 Service "
        "Unavailable, still after 5 retries" in text_of(following_failed)
    )
