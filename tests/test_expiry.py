"""The expiry watch's scan: which cached tasks expire soon, through the index and task groups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import slugid
import taskcluster
import taskcluster.exceptions
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.config.model import ExpiryWatch, Project, TaskGroupWatch
from scheduler.expiry.model import (
    CachedTask,
    ExpiryEvent,
    ExpiryEventKind,
    ExpiryReport,
    TaskHealth,
    at_risk,
    findings,
    kind_of_namespace,
)
from scheduler.expiry.remediation import Remediator, scan_and_remediate
from scheduler.expiry.scan import Scanner
from scheduler.ledger import AsyncLedger, Ledger, RemediationState
from scheduler.taskcluster import connect
from tests.emulator import Emulator
from tests.emulator.clock import format_time
from tests.support.emulated import task_definition, taskcluster_environment
from tests.support.expiry import CACHED, HOOK, demo_config, seed, seed_rebuild_action

# The emulator's clock is frozen here; the commands under test run on it too
# (taskcluster_environment passes it as TC_SCHEDULER_NOW).
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
THRESHOLD = timedelta(days=30)
KINDS = ("toolchains", "docker-images", "content")


@pytest.mark.parametrize(
    ("namespace", "kind"),
    [
        ("gecko.cache.level-3.toolchains.v3.linux64-clang.hash.ab12", "toolchain"),
        ("tcs.cache.level-1.docker-images.v2.decision.latest", "docker-image"),
        ("translations.cache.level-3.content.v1.fetch-cuda.hash.9f", "fetch"),
        ("gecko.cache.level-3.other.v1.x", "other"),
        ("gecko.v2.mozilla-central.latest.firefox.linux64-opt", None),
    ],
)
def test_kind_of_namespace(namespace: str, kind: str | None) -> None:
    assert kind_of_namespace(namespace) == kind


def test_classification_and_order() -> None:
    def cached(task_id: str, days: float, gone: bool = False) -> CachedTask:
        return CachedTask(task_id, "ns", "toolchain", NOW + timedelta(days=days), "task", gone)

    tasks = [cached("late", 31), cached("soon", 3), cached("past", -1), cached("gone", 90, True)]
    assert [t.health(NOW, THRESHOLD) for t in tasks] == [
        TaskHealth.HEALTHY,
        TaskHealth.EXPIRING,
        TaskHealth.EXPIRED,
        TaskHealth.EXPIRED,
    ]
    assert [t.task_id for t in at_risk(tasks, NOW, THRESHOLD)] == ["gone", "past", "soon"]
    assert cached("x", 1.5).days_left(NOW) == 1.5


@pytest.fixture
def index_of_10000(emulator: Emulator) -> dict[str, timedelta | None]:
    """10,000 index entries across levels and kinds; returns the at-risk level-3 tasks.

    Each cached name has a `latest` entry and a `hash` namespace of digests, as taskgraph
    indexes them; `latest` points at one of the digests' tasks.
    """
    emulator.clock.set(NOW, frozen=True)
    healthy = timedelta(days=200)
    risky: dict[str, timedelta | None] = {}
    entries = 0
    for level, names in ((3, 20), (1, 13)):
        for kind in KINDS:
            for name in range(names):
                base = f"tcs.cache.level-{level}.{kind}.v3.{kind}-{name}"
                for digest in range(80):
                    task_id = seed(emulator, f"{base}.hash.d{digest:04d}", healthy)
                    entries += 1
                seed(emulator, f"{base}.latest", healthy, task_id)
                entries += 1
    # One namespace with more entries than a page holds (1,000), so listing must follow tokens.
    while entries < 10_000:
        seed(emulator, f"tcs.cache.level-3.toolchains.v3.extra.hash.e{entries}", healthy)
        entries += 1
    # Within the threshold, at level 3 (watched) and level 1 (not watched).
    for days in (5, 12, 29.5):
        task_id = seed(
            emulator,
            f"tcs.cache.level-3.toolchains.v3.soon-{int(days * 10)}.latest",
            timedelta(days=days),
        )
        risky[task_id] = timedelta(days=days)
    seed(emulator, "tcs.cache.level-1.toolchains.v3.soon.latest", timedelta(days=3))
    seed(emulator, "tcs.cache.level-3.toolchains.v3.fine.latest", timedelta(days=31))
    # Already gone: the index still points at tasks the queue no longer has.
    for name in ("gone-a", "gone-b"):
        task_id = seed(emulator, f"tcs.cache.level-3.docker-images.v3.{name}.latest", healthy)
        emulator.expire_task(task_id)
        with emulator.lock:
            emulator.index.insert(
                f"tcs.cache.level-3.docker-images.v3.{name}.latest",
                task_id,
                rank=1,
                expires=NOW + timedelta(days=100),
            )
        risky[task_id] = None
    assert 10_000 <= len(emulator.index.entries) < 10_010
    return risky


def test_report_lists_exactly_what_is_at_risk_through_pagination(
    emulator: Emulator, index_of_10000: dict[str, timedelta | None], tmp_path: Path
) -> None:
    config = demo_config(tmp_path, "level: 3")
    emulator.clock.set(NOW, frozen=True)
    result = CliRunner().invoke(
        main,
        ["expiry", "report", "--json", "--config", str(config)],
        env=taskcluster_environment(emulator),
        catch_exceptions=False,
    )
    report = json.loads(result.stdout)
    rows = report["at_risk"]
    assert result.exit_code == 1  # something is at risk
    assert {row["task_id"] for row in rows} == set(index_of_10000)
    # Gone first, then soonest first; days left from the emulator's clock.
    assert [row["health"] for row in rows] == [
        "expired",
        "expired",
        "expiring",
        "expiring",
        "expiring",
    ]
    for row in rows:
        expected = index_of_10000[row["task_id"]]
        if expected is None:
            assert row["because"] == "task is gone"
        else:
            assert row["days_left"] == pytest.approx(expected / timedelta(days=1), abs=0.01)
            assert row["kind"] == "toolchain"
    # Every watched task once (a `latest` entry shares its task with a digest).
    watched = {
        entry.task_id
        for path, entry in emulator.index.entries.items()
        if path.startswith("tcs.cache.level-3.")
    }
    assert report["scanned"] == len(watched)
    assert f"{len(watched)} cached tasks scanned, 5 at risk" in result.stderr


def test_report_within_days_overrides_the_threshold(
    emulator: Emulator, index_of_10000: dict[str, timedelta | None]
) -> None:
    project = Project(name="demo", repository="https://x/y", trust_domain="tcs", level=3)

    async def scan(days: float) -> set[str]:
        async with connect(emulator.root_url, emulator.root_credentials) as clients:
            watch = replace(project.expiry, threshold=timedelta(days=days))
            report = await Scanner(clients).report(project, watch, NOW)
            return {t.task_id for t in report.at_risk}

    gone = {task_id for task_id, days in index_of_10000.items() if days is None}
    assert asyncio.run(scan(6)) == gone | {
        task_id for task_id, days in index_of_10000.items() if days == timedelta(days=5)
    }


def test_task_group_mode_finds_the_cached_kinds_near_expiry(emulator: Emulator) -> None:
    emulator.clock.set(NOW, frozen=True)
    group = slugid.nice()
    near: set[str] = set()
    for number in range(300):
        kind = ("toolchain", "docker-image", "fetch", "build", "test")[number % 5]
        days = 10 if number in (0, 100, 200) else (5 if kind == "build" else 200)
        task_id = slugid.nice()
        emulator.add_task(
            task_id,
            task_definition(
                NOW,
                taskGroupId=group,
                tags={"kind": kind, "label": f"{kind}-{number}"},
                expires=format_time(NOW + timedelta(days=days)),
            ),
        )
        if number in (0, 100, 200):
            near.add(task_id)
    project = Project(
        name="translations",
        repository="https://x/y",
        trust_domain="translations",
        expiry=ExpiryWatch(
            namespaces=("translations.cache.none",),
            task_groups=(TaskGroupWatch(group, kinds=("toolchain", "docker-image", "fetch")),),
        ),
    )

    async def scan() -> list[CachedTask]:
        async with connect(emulator.root_url, emulator.root_credentials) as clients:
            return list((await Scanner(clients).report(project, project.expiry, NOW)).at_risk)

    found = asyncio.run(scan())
    # Builds expiring in 5 days are not cached tasks: only the three toolchains are reported.
    assert {task.task_id for task in found} == near
    assert {task.kind for task in found} == {"toolchain"}
    assert all(task.where == f"task-group {group}" for task in found)


def test_expired_artifacts_count_when_asked(emulator: Emulator) -> None:
    emulator.clock.set(NOW, frozen=True)
    task_id = seed(emulator, "tcs.cache.level-1.toolchains.v3.x.latest", timedelta(days=300))
    emulator.resolve_task(task_id, "completed")
    emulator.add_artifact(task_id, "public/build/x.tar.zst", b"x", expires=NOW + timedelta(days=7))
    project = Project(name="p", repository="https://x/y", trust_domain="tcs")

    async def scan(artifacts: bool) -> list[CachedTask]:
        watch = replace(project.expiry, artifacts=artifacts)
        async with connect(emulator.root_url, emulator.root_credentials) as clients:
            return list((await Scanner(clients).report(project, watch, NOW)).at_risk)

    assert asyncio.run(scan(False)) == []
    [found] = asyncio.run(scan(True))
    assert found.because == "artifact public/build/x.tar.zst"
    assert found.days_left(NOW) == pytest.approx(7)


# -- remediation -----------------------------------------------------------------------------


@pytest.fixture
def deployment(emulator: Emulator) -> Emulator:
    """A decision task with the rebuild action, its hook, and two cached tasks near expiry."""
    emulator.clock.set(NOW, frozen=True)
    seed_rebuild_action(emulator, "demo")
    for namespace in CACHED:
        seed(emulator, f"{namespace}.latest", timedelta(days=10))
    return emulator


def demo(**expiry: Any) -> Project:
    project = Project(name="demo", repository="https://x/y", trust_domain="tcs")
    return replace(project, expiry=replace(project.expiry, **expiry))


def step(
    emulator: Emulator,
    ledger: Ledger,
    project: Project,
    *,
    replica: str = "replica-1",
    credentials: dict[str, str] | None = None,
    dry_run: bool = False,
) -> ExpiryEvent | None:
    async def run() -> ExpiryEvent | None:
        async with connect(emulator.root_url, credentials or emulator.root_credentials) as clients:
            report = await Scanner(clients).report(project, project.expiry, emulator.clock.now())
            remediator = Remediator(clients, AsyncLedger(ledger), replica, emulator.clock.now)
            return await remediator.step(project, report, dry_run=dry_run)

    return asyncio.run(run())


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield opened
    opened.close()


def fires_of_hook(emulator: Emulator) -> list[dict[str, Any]]:
    try:
        return taskcluster.Hooks(emulator.options()).listLastFires(*HOOK)["lastFires"]
    except taskcluster.exceptions.TaskclusterRestFailure:
        return []


def rebuild(emulator: Emulator, task_group_id: str, *, state: str = "completed") -> None:
    """What the action task does: new cached tasks in its group, re-indexed with later expiry;
    then the action task (whose id names the group) completes."""
    for namespace in CACHED:
        task_id = slugid.nice()
        emulator.add_task(
            task_id,
            task_definition(
                NOW, taskGroupId=task_group_id, expires=format_time(NOW + timedelta(days=365))
            ),
        )
        emulator.resolve_task(task_id, state)
        if state == "completed":
            with emulator.lock:
                emulator.index.insert(
                    f"{namespace}.latest", task_id, rank=1, expires=NOW + timedelta(days=365)
                )
    emulator.resolve_task(task_group_id, "completed")


def test_remediation_triggers_once_then_succeeds(deployment: Emulator, ledger: Ledger) -> None:
    project = demo()
    started = step(deployment, ledger, project)
    assert started is not None
    assert started.kind is ExpiryEventKind.STARTED
    assert len(started.at_risk) == 2
    [fire] = fires_of_hook(deployment)
    assert started.task_group_id == fire["taskId"]
    action = taskcluster.Queue(deployment.options()).task(fire["taskId"])
    assert action["payload"]["action"]["user"]["input"] == {}
    # Repeated scans, and a second replica, follow it and do not trigger again while it runs.
    for replica in ("replica-1", "replica-2"):
        following = step(deployment, ledger, project, replica=replica)
        assert following is not None
        assert following.kind is ExpiryEventKind.RUNNING
        assert following.task_group_id == started.task_group_id
        assert f"its action task {started.task_group_id} is pending" in following.message
    assert len(fires_of_hook(deployment)) == 1

    rebuild(deployment, started.task_group_id)
    finished = step(deployment, ledger, project)
    assert finished is not None
    assert finished.kind is ExpiryEventKind.SUCCEEDED
    assert finished.at_risk == ()
    [record] = ledger.remediations(project="demo")
    assert (record.state, record.task_group_id) == (
        RemediationState.SUCCEEDED,
        started.task_group_id,
    )
    assert step(deployment, ledger, project) is None  # nothing at risk any more


def test_two_replicas_scanning_at_once_trigger_once(deployment: Emulator, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"

    async def replica(name: str) -> ExpiryEvent | None:
        ledger = Ledger.open(url)
        try:
            async with connect(deployment.root_url, deployment.root_credentials) as clients:
                project = demo()
                report = await Scanner(clients).report(project, project.expiry, NOW)
                remediator = Remediator(clients, AsyncLedger(ledger), name, deployment.clock.now)
                return await remediator.step(project, report, dry_run=False)
        finally:
            ledger.close()

    async def both() -> list[ExpiryEvent | None]:
        return list(await asyncio.gather(replica("a"), replica("b")))

    events = asyncio.run(both())
    started = [e for e in events if e is not None and e.kind is ExpiryEventKind.STARTED]
    # The other replica finds the remediation running (and follows it) or loses the race to
    # start it (waiting); either way it triggers nothing.
    others = [e.kind for e in events if e is not None and e not in started]
    assert len(started) == 1
    assert others in ([ExpiryEventKind.RUNNING], [ExpiryEventKind.WAITING])
    assert len(fires_of_hook(deployment)) == 1


def test_a_missing_action_fails_and_waits_for_the_cooldown(
    deployment: Emulator, ledger: Ledger
) -> None:
    project = demo(action="rebuild-docker-images-and-toolchains", cooldown=timedelta(hours=6))
    failed = step(deployment, ledger, project)
    assert failed is not None
    assert failed.kind is ExpiryEventKind.FAILED
    assert "no task-group action named 'rebuild-docker-images-and-toolchains'" in failed.message
    assert "rebuild-cached-tasks" in failed.message  # what is there instead
    waiting = step(deployment, ledger, project)
    assert waiting is not None
    assert waiting.kind is ExpiryEventKind.WAITING
    deployment.clock.advance(timedelta(hours=6, minutes=1))
    again = step(deployment, ledger, project)
    assert again is not None
    assert again.kind is ExpiryEventKind.FAILED
    assert [r.state for r in ledger.remediations(project="demo")] == [RemediationState.FAILED] * 2
    assert fires_of_hook(deployment) == []


def test_a_rebuild_taskcluster_kept_from_starting_is_tried_at_the_next_scan(
    deployment: Emulator, ledger: Ledger
) -> None:
    project = demo(cooldown=timedelta(hours=6))
    deployment.faults.add("index.findTask", script=["503"] * 6)

    blocked = step(deployment, ledger, project)

    assert blocked is not None
    assert blocked.kind is ExpiryEventKind.SCAN_FAILED
    assert "tried again at the next scan" in blocked.message
    assert "503" in blocked.message
    assert ledger.remediations(project="demo") == [], "nothing started: no cooldown to wait"
    started = step(deployment, ledger, project)
    assert started is not None
    assert started.kind is ExpiryEventKind.STARTED
    assert len(fires_of_hook(deployment)) == 1


def test_a_403_from_trigger_hook_is_recorded(deployment: Emulator, ledger: Ledger) -> None:
    reader = deployment.add_client("reader", ["queue:*", "index:*"])
    failed = step(deployment, ledger, demo(), credentials=reader)
    assert failed is not None
    assert failed.kind is ExpiryEventKind.FAILED
    assert "403" in failed.message
    assert f"hooks:trigger-hook:{HOOK[0]}/{HOOK[1]}" in failed.message
    [record] = ledger.remediations(project="demo")
    assert record.error == failed.message


def test_a_rebuild_whose_tasks_fail_is_a_failure(deployment: Emulator, ledger: Ledger) -> None:
    started = step(deployment, ledger, demo())
    assert started is not None
    assert started.task_group_id is not None
    rebuild(deployment, started.task_group_id, state="failed")
    failed = step(deployment, ledger, demo())
    assert failed is not None
    assert failed.kind is ExpiryEventKind.FAILED
    assert "2 rebuild tasks" in failed.message
    assert "did not complete" in failed.message


def test_dry_run_says_what_it_would_trigger(deployment: Emulator, ledger: Ledger) -> None:
    event = step(deployment, ledger, demo(), dry_run=True)
    assert event is not None
    assert event.kind is ExpiryEventKind.DRY_RUN
    assert f"{HOOK[0]}/{HOOK[1]}" in event.message
    assert fires_of_hook(deployment) == []


def test_remediate_command(deployment: Emulator, tmp_path: Path) -> None:
    config = demo_config(tmp_path, "expiry: {threshold: 30d}")
    env = taskcluster_environment(deployment)
    dry = CliRunner().invoke(
        main, ["expiry", "remediate", "demo", "--dry-run", "--config", str(config)], env=env
    )
    assert dry.exit_code == 0, dry.output
    assert "demo: expiring-found: 2 cached tasks expire within 30d" in dry.stdout
    assert "remediation-dry-run: would trigger rebuild-cached-tasks" in dry.stdout
    assert fires_of_hook(deployment) == []
    real = CliRunner().invoke(
        main, ["expiry", "remediate", "demo", "--config", str(config)], env=env
    )
    assert real.exit_code == 0, real.output
    assert "remediation-started" in real.stdout
    assert len(fires_of_hook(deployment)) == 1


def test_task_group_mode_remediates_too(deployment: Emulator, ledger: Ledger) -> None:
    group = slugid.nice()
    for number in range(30):
        deployment.add_task(
            slugid.nice(),
            task_definition(
                NOW,
                taskGroupId=group,
                tags={"kind": "toolchain" if number < 3 else "train"},
                expires=format_time(NOW + timedelta(days=5 if number < 6 else 200)),
            ),
        )
    project = demo(
        namespaces=("tcs.cache.none",),
        task_groups=(TaskGroupWatch(group, kinds=("toolchain",)),),
    )
    started = step(deployment, ledger, project)
    assert started is not None
    assert started.kind is ExpiryEventKind.STARTED
    assert len(started.at_risk) == 3  # the toolchains, not the training tasks
    assert len(fires_of_hook(deployment)) == 1


def test_findings_name_what_expired_and_what_expires_soon() -> None:
    tasks = (
        CachedTask(
            "gone", "tcs.cache.level-1.toolchains.v3.a.latest", "toolchain", NOW, "task", True
        ),
        CachedTask(
            "soon",
            "tcs.cache.level-1.toolchains.v3.b.latest",
            "toolchain",
            NOW + timedelta(days=4),
            "task",
        ),
    )
    report = ExpiryReport("demo", 10, THRESHOLD, NOW, tasks)
    expired, expiring = findings(report)
    assert expired.kind is ExpiryEventKind.EXPIRED
    assert expired.at_risk == tasks[:1]
    assert "v3.a.latest (task)" in expired.message
    assert expiring.kind is ExpiryEventKind.EXPIRING
    assert expiring.at_risk == tasks[1:]
    assert "in 4.0 days" in expiring.message
    assert findings(ExpiryReport("demo", 10, THRESHOLD, NOW, ())) == []


def test_the_rebuild_can_come_from_a_configured_decision_task(
    deployment: Emulator, ledger: Ledger
) -> None:
    missing = step(
        deployment, ledger, demo(decision_index="tcs.v2.demo.release.taskgraph.decision")
    )
    assert missing is not None
    assert missing.kind is ExpiryEventKind.FAILED
    assert (
        "no decision task is indexed at tcs.v2.demo.release.taskgraph.decision" in missing.message
    )


# -- judging a rebuild by its action task, and scans that Taskcluster fails --------------------


def action_task(started: ExpiryEvent | None) -> str:
    """The action task a STARTED event names (its id names the rebuild's group too)."""
    assert started is not None
    assert started.kind is ExpiryEventKind.STARTED, started
    assert started.task_group_id is not None
    return started.task_group_id


def test_an_action_that_completes_without_creating_tasks_is_done_and_said(
    deployment: Emulator, ledger: Ledger
) -> None:
    """Seen against real Taskcluster: the action task completed and made no task, so its group
    never came to be; the rebuild must not stay running, and the next one must be able to start
    once the cooldown has passed."""
    project = demo(cooldown=timedelta(hours=6))
    task_id = action_task(step(deployment, ledger, project))
    deployment.run_task(task_id)
    running = step(deployment, ledger, project)
    assert running is not None
    assert running.kind is ExpiryEventKind.RUNNING
    assert f"its action task {task_id} is running" in running.message

    deployment.resolve_task(task_id, "completed")
    done = step(deployment, ledger, project)

    assert done is not None
    assert done.kind is ExpiryEventKind.NOTHING_REBUILT
    assert not done.failed
    assert f"the action task {task_id} completed without creating any task" in done.message
    assert "nothing was rebuilt" in done.message
    assert "2 of the cached tasks it was started for are still at risk" in done.message
    assert "after the cooldown (6h)" in done.message
    [record] = ledger.remediations(project="demo")
    assert record.state is RemediationState.SUCCEEDED
    assert record.finished_at == NOW
    # Still at risk: the cooldown holds the next rebuild back, then lets it start.
    waiting = step(deployment, ledger, project)
    assert waiting is not None
    assert waiting.kind is ExpiryEventKind.WAITING
    assert len(fires_of_hook(deployment)) == 1
    deployment.clock.advance(timedelta(hours=6, minutes=1))
    assert action_task(step(deployment, ledger, project)) != task_id
    assert len(fires_of_hook(deployment)) == 2


@pytest.mark.parametrize(
    ("state", "reason", "says"),
    [
        ("failed", None, "resolved failed;"),
        ("exception", "deadline-exceeded", "resolved exception (deadline-exceeded);"),
    ],
)
def test_an_action_task_that_fails_fails_the_rebuild(
    deployment: Emulator, ledger: Ledger, state: str, reason: str | None, says: str
) -> None:
    project = demo(cooldown=timedelta(hours=6))
    task_id = action_task(step(deployment, ledger, project))

    deployment.resolve_task(task_id, state, reason)
    failed = step(deployment, ledger, project)

    assert failed is not None
    assert failed.kind is ExpiryEventKind.FAILED
    assert f"the action task {task_id} {says}" in failed.message
    assert "look at its log" in failed.message
    [record] = ledger.remediations(project="demo")
    assert (record.state, record.error) == (RemediationState.FAILED, failed.message)
    waiting = step(deployment, ledger, project)
    assert waiting is not None
    assert waiting.kind is ExpiryEventKind.WAITING
    deployment.clock.advance(timedelta(hours=6, minutes=1))
    assert action_task(step(deployment, ledger, project)) != task_id
    assert [r.state for r in ledger.remediations(project="demo")] == [
        RemediationState.RUNNING,
        RemediationState.FAILED,
    ]


def test_a_completed_action_whose_rebuild_runs_on_is_still_running(
    deployment: Emulator, ledger: Ledger
) -> None:
    """The action task completes once it has created the rebuild; its tasks run on after it."""
    project = demo()
    task_id = action_task(step(deployment, ledger, project))
    rebuilt = slugid.nice()
    deployment.add_task(rebuilt, task_definition(NOW, taskGroupId=task_id))
    deployment.resolve_task(task_id, "completed")

    following = step(deployment, ledger, project)
    assert following is not None
    assert following.kind is ExpiryEventKind.RUNNING
    assert f"0 of the 1 tasks of its group {task_id} have resolved" in following.message
    [record] = ledger.remediations(project="demo")
    assert record.state is RemediationState.RUNNING


def scan_once(
    emulator: Emulator, ledger: Ledger, project: Project, *, dry_run: bool = False
) -> list[ExpiryEvent]:
    """One scheduled expiry scan and its remediation step, as the service makes it."""

    async def run() -> list[ExpiryEvent]:
        async with connect(emulator.root_url, emulator.root_credentials) as clients:
            return await scan_and_remediate(
                clients,
                AsyncLedger(ledger),
                project,
                replica="replica-1",
                clock=emulator.clock.now,
                dry_run=dry_run,
            )

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("call", "outcomes", "says"),
    [
        # Every namespace's listing fails; whichever gives up first fails the scan.
        ("index.listTasks", ["503"], "Taskcluster answered 503 Service Unavailable"),
        # One call for both tasks' statuses: answers, then a lost connection at the last retry.
        ("queue.statuses", ["500"] * 5 + ["reset"], "Taskcluster answered 500 Internal Server"),
    ],
)
def test_a_scan_that_taskcluster_fails_is_an_expiry_scan_failed_event(
    deployment: Emulator, ledger: Ledger, call: str, outcomes: list[str], says: str
) -> None:
    if len(outcomes) == 1:
        deployment.faults.add(call, error_rate=1.0, errors=outcomes)
    else:
        deployment.faults.add(call, script=outcomes)

    [failed] = scan_once(deployment, ledger, demo())

    assert {outcome for _, outcome in deployment.faults.injected} == set(outcomes)
    assert failed.kind is ExpiryEventKind.SCAN_FAILED
    assert failed.failed
    assert failed.message.startswith(f"the expiry scan failed: {call}("), failed.message
    assert f"{says}" in failed.message
    assert "still after 5 retries" in failed.message
    assert ledger.remediations(project="demo") == []
    assert fires_of_hook(deployment) == []


def test_following_a_rebuild_that_taskcluster_fails_keeps_the_findings(
    deployment: Emulator, ledger: Ledger
) -> None:
    project = demo()
    task_id = action_task(step(deployment, ledger, project))
    deployment.resolve_task(task_id, "completed")
    deployment.faults.add("queue.status", script=["502"] * 6)

    events = scan_once(deployment, ledger, project)

    assert [event.kind for event in events] == [
        ExpiryEventKind.EXPIRING,
        ExpiryEventKind.SCAN_FAILED,
    ]
    assert (
        f"queue.status({task_id}) failed: Taskcluster answered 502 Bad Gateway" in events[1].message
    )
    [record] = ledger.remediations(project="demo")
    assert record.state is RemediationState.RUNNING  # judged by a later scan, not guessed
    later = scan_once(deployment, ledger, project)
    assert [event.kind for event in later] == [
        ExpiryEventKind.EXPIRING,
        ExpiryEventKind.NOTHING_REBUILT,
    ]


def test_remediate_command_says_what_failed_without_a_traceback(
    deployment: Emulator, tmp_path: Path
) -> None:
    config = demo_config(tmp_path, "expiry: {threshold: 30d}")
    deployment.faults.add("index.listNamespaces", script=["503"] * 6)
    result = CliRunner().invoke(
        main,
        ["expiry", "remediate", "demo", "--config", str(config)],
        env=taskcluster_environment(deployment),
    )
    assert result.exit_code == 1, result.output
    # Not a terminal: the error is the last line of the command's log.
    last = json.loads(result.stderr.splitlines()[-1])
    assert (last["level"], last["error"]) == ("error", "taskcluster-error"), result.stderr
    assert last["event"] == (
        "demo: the expiry scan failed: index.listNamespaces(tcs.cache.level-1) failed: "
        "Taskcluster answered 503 Service Unavailable, still after 5 retries"
    )
    assert "Traceback" not in result.output
    with Ledger.open(f"sqlite:///{tmp_path / '.tc-scheduler' / 'ledger.db'}") as opened:
        [act] = opened.audit_log()
    assert (act.action, act.ok) == ("expiry-remediate", False)
    assert "index.listNamespaces(tcs.cache.level-1) failed" in act.result
