"""Overlap policies per job (`allow`, `skip`, `replace`): the ledger's read of the fires that may
still run (both backends), the pure plan, and the engine against the emulator, its clock and the
service's injected, with the watcher following the earlier fire's task as the service does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import slugid
import taskcluster
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.config.loading import load_config
from scheduler.config.model import ApiSettings, Config, Project
from scheduler.cron import load_cron
from scheduler.cron.overlap import RunningFire, plan_overlap
from scheduler.cron.plan import PlannedFire
from scheduler.cron.slots import Decision, GiveUp, Occasion, OpenFire, SkipReason
from scheduler.engine import Engine
from scheduler.findings import findings_of
from scheduler.ids import decision_task_id
from scheduler.ledger import (
    FireKind,
    FireState,
    Ledger,
    Outcome,
    RunState,
    WatchPhase,
    WatchSpec,
)
from scheduler.notifier import Notifier
from scheduler.outcomes import SlotResult
from scheduler.preflight import preflight
from scheduler.service import open_service
from tests.emulator import Emulator
from tests.emulator.clock import format_time
from tests.support.dashboard import serving_pages
from tests.support.emulated import REPOSITORY_ROLES, task_definition
from tests.support.engine import action_world, fires
from tests.support.projects import DAY, HOURLY, make_config, own_project

T = TypeVar("T")
HOUR = timedelta(hours=1)
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DAY_LONG = timedelta(days=1)
CANCEL_SCOPES = ["queue:seal-task-group:*", "queue:cancel-task-group:*"]


# -- the ledger: which fires may still run -----------------------------------------------------


def _finished(
    ledger: Ledger, job: str, slot: datetime, state: FireState, *, watch: WatchSpec | None
) -> int:
    claim = ledger.claim("p", job, slot, kind=FireKind.SCHEDULED, replica="r", now=slot, lease=HOUR)
    assert claim is not None
    task = slugid.nice()
    details = {"task": {"taskGroupId": f"group-of-{job}"}}
    ledger.finish_many([Outcome(claim, state, task, None, None, details, watch)], now=slot)
    return claim.fire_id


def test_unresolved_fires_are_those_being_made_followed_or_recent_without_a_watch(
    ledger: Ledger,
) -> None:
    watch = WatchSpec()
    followed = _finished(ledger, "followed", T0, FireState.CREATED, watch=watch)
    resolved = _finished(ledger, "resolved", T0, FireState.CREATED, watch=watch)
    [done] = [w for w in ledger.watches() if w.fire_id == resolved]
    assert ledger.advance_watch(done, WatchPhase.DONE, now=T0, task_state="completed")
    _finished(ledger, "failed", T0, FireState.FAILED, watch=watch)  # no task: nothing runs
    old_unwatched = _finished(ledger, "old", T0 - timedelta(days=6), FireState.CREATED, watch=None)
    _finished(ledger, "unwatched", T0, FireState.ALREADY_FIRED, watch=None)
    being_made = ledger.claim(
        "p", "claimed", T0, kind=FireKind.SCHEDULED, replica="r", now=T0, lease=HOUR
    )
    assert being_made is not None
    ledger.claim("other", "x", T0, kind=FireKind.SCHEDULED, replica="r", now=T0, lease=HOUR)

    found = ledger.unresolved_fires("p", unwatched_since=T0 - timedelta(days=5))
    by_job = {fire.job: fire for fire in found}
    assert set(by_job) == {"followed", "unwatched", "claimed"}
    assert by_job["followed"].fire_id == followed
    assert (by_job["followed"].phase, by_job["followed"].task_group_id) == (
        WatchPhase.TASK,
        "group-of-followed",
    )
    assert by_job["unwatched"].phase is None
    assert not by_job["unwatched"].being_made
    assert by_job["claimed"].being_made
    assert by_job["claimed"].task_id is None
    assert old_unwatched not in {fire.fire_id for fire in found}


# -- the plan ----------------------------------------------------------------------------------

CRON = load_cron(HOURLY)
[JOB] = CRON.jobs


def _decision(slot: datetime, occasion: Occasion = Occasion.SCHEDULED) -> Decision:
    return Decision(PlannedFire(slot, JOB.name, JOB), occasion)


def _running(slot: datetime, **changes: Any) -> RunningFire:
    fire = RunningFire(JOB.name, slot, False, "TaskA", "GroupA", "running")
    return replace(fire, **changes)


def test_allow_fires_everything_and_replaces_nothing() -> None:
    plan = plan_overlap([_decision(T0)], [_running(T0 - HOUR)], lambda job: "allow")
    assert (plan.fires, plan.skipped, plan.replacing) == ((_decision(T0),), (), {})


def test_skip_holds_every_new_fire_while_another_runs_and_names_it() -> None:
    caught_up, due = _decision(T0 - HOUR, Occasion.CATCH_UP), _decision(T0)
    plan = plan_overlap([caught_up, due], [_running(T0 - 2 * HOUR)], lambda job: "skip")
    assert plan.fires == ()
    assert [s.why for s in plan.skipped] == [SkipReason.OVERLAP] * 2
    assert "task TaskA, running" in plan.skipped[0].reason
    # Nothing runs: the first fires, the next of the same tick would overlap it.
    plan = plan_overlap([caught_up, due], [], lambda job: "skip")
    assert plan.fires == (caught_up,)
    [held] = plan.skipped
    assert held.fire == due.fire
    assert "made at the same tick" in held.reason


def test_a_slots_own_fire_is_not_its_previous_one() -> None:
    """Ticking a slot again finds its own fire unresolved: that is no overlap."""
    plan = plan_overlap([_decision(T0)], [_running(T0)], lambda job: "skip")
    assert plan.fires == (_decision(T0),)


def test_a_retry_is_never_held_back() -> None:
    retry = Decision(
        PlannedFire(T0 - HOUR, JOB.name, JOB),
        Occasion.RETRY,
        retried=OpenFire(T0 - HOUR, JOB.name, retrying=True),
    )
    running = [_running(T0 - HOUR, being_made=True, state="retrying", task_id=None)]
    plan = plan_overlap([retry, _decision(T0)], running, lambda job: "replace")
    assert plan.fires == (retry,)
    [held] = plan.skipped
    assert "its task not made yet" in held.reason
    assert "not fired" in held.reason


def test_a_fire_given_up_at_this_tick_that_sent_no_task_holds_nothing_back() -> None:
    stuck = OpenFire(T0 - 8 * HOUR, JOB.name, retrying=True, error="503")
    given_up = GiveUp(stuck, JOB, None, "given up")
    running = [_running(stuck.slot, being_made=True, state="retrying", task_id=None)]
    plan = plan_overlap([_decision(T0)], running, lambda job: "skip", given_up=[given_up])
    assert plan.fires == (_decision(T0),)
    # One that may have made its task may still run: held back, as it is settled first.
    sent = GiveUp(replace(stuck, task_id="TaskA"), JOB, None, "given up")
    plan = plan_overlap([_decision(T0)], running, lambda job: "skip", given_up=[sent])
    assert plan.fires == ()


def test_replace_makes_the_newest_after_cancelling_what_runs() -> None:
    older, newest = _decision(T0 - HOUR, Occasion.CATCH_UP), _decision(T0)
    running = _running(T0 - 2 * HOUR)
    plan = plan_overlap([older, newest], [running], lambda job: "replace")
    assert plan.fires == (newest,)
    assert plan.replacing == {newest.fire: (running,)}
    [superseded] = plan.skipped
    assert superseded.fire == older.fire
    assert "replaces it" in superseded.reason


def test_replace_never_cancels_an_actions_group_an_unknown_one_nor_a_newer_fire() -> None:
    for running, words in (
        (_running(T0 - HOUR, action=True), "push's"),
        (_running(T0 - HOUR, task_group_id=None), "not known"),
        (_running(T0 + HOUR, manual=True), "newer fire"),
    ):
        plan = plan_overlap([_decision(T0)], [running], lambda job: "replace")
        assert plan.fires == ()
        [held] = plan.skipped
        assert held.why is SkipReason.OVERLAP
        assert words in held.reason


# -- the engine against the emulator ----------------------------------------------------------


def _serve(
    config: Config, emulator: Emulator, work: Callable[[Engine, Notifier], Awaitable[T]]
) -> T:
    async def main() -> T:
        async with open_service(config, clock=emulator.clock.now) as (engine, notifier, _):
            return await work(engine, notifier)

    return asyncio.run(main())


async def _tick(engine: Engine, emulator: Emulator, slot: datetime) -> SlotResult:
    emulator.clock.set(slot, frozen=True)
    [result] = await engine.tick(slot)
    return result


def _hourly(emulator: Emulator, tmp_path: Path, **changes: Any) -> tuple[Config, Project]:
    project = replace(own_project(tmp_path, HOURLY), **changes)
    return make_config(emulator, tmp_path, project), project


def _task(emulator: Emulator, slot: datetime) -> str:
    return decision_task_id(emulator.root_url, "tc-scheduler", "hourly", slot)


def _state(emulator: Emulator, task_id: str) -> tuple[str, str | None]:
    status = taskcluster.Queue(emulator.options()).status(task_id)["status"]
    return status["state"], status["runs"][-1].get("reasonResolved")


async def _first_fire_running(engine: Engine, notifier: Notifier, emulator: Emulator) -> str:
    """The 00:00 fire made, its task running and seen so by the watcher; its task id."""
    first = await _tick(engine, emulator, DAY)
    assert [f.state for f in first.fires] == [FireState.CREATED]
    task = _task(emulator, DAY)
    emulator.run_task(task)
    await notifier.round()
    return task


def test_allow_fires_while_the_previous_fire_runs(emulator: Emulator, tmp_path: Path) -> None:
    config, _ = _hourly(emulator, tmp_path)

    async def scenario(engine: Engine, notifier: Notifier) -> SlotResult:
        await _first_fire_running(engine, notifier, emulator)
        return await _tick(engine, emulator, DAY + HOUR)

    second = _serve(config, emulator, scenario)
    assert [f.state for f in second.fires] == [FireState.CREATED]
    assert _state(emulator, _task(emulator, DAY)) == ("running", None)
    assert _state(emulator, _task(emulator, DAY + HOUR))[0] == "pending"


def test_skip_records_the_fire_skipped_naming_the_running_one_then_fires_once_it_resolved(
    emulator: Emulator, tmp_path: Path
) -> None:
    config, _ = _hourly(emulator, tmp_path, overlap="skip")

    async def scenario(engine: Engine, notifier: Notifier) -> tuple[SlotResult, SlotResult]:
        first = await _first_fire_running(engine, notifier, emulator)
        held = await _tick(engine, emulator, DAY + HOUR)
        emulator.resolve_task(first, "completed")
        await notifier.round()
        return held, await _tick(engine, emulator, DAY + 2 * HOUR)

    held, later = _serve(config, emulator, scenario)
    assert held.fires == ()
    [skipped] = held.overlapping
    assert (skipped.state, skipped.skip_reason) == (FireState.SKIPPED, SkipReason.OVERLAP)
    first = _task(emulator, DAY)
    assert f"task {first}, running" in (skipped.error or "")
    recorded = {f.slot: f for f in fires(config)}
    assert recorded[DAY + HOUR].state is FireState.SKIPPED
    assert "overlap policy skip" in (recorded[DAY + HOUR].error or "")
    assert {task.task_id for task in emulator.tasks()} == {first, _task(emulator, DAY + 2 * HOUR)}
    assert [f.state for f in later.fires] == [FireState.CREATED]


def test_skip_waits_for_a_watched_group(emulator: Emulator, tmp_path: Path) -> None:
    config, _ = _hourly(emulator, tmp_path, overlap="skip", watch_task_groups=True)

    async def scenario(engine: Engine, notifier: Notifier) -> SlotResult:
        first = await _first_fire_running(engine, notifier, emulator)
        child = task_definition(emulator.clock.now(), taskGroupId=first, schedulerId="tcs-level-1")
        taskcluster.Queue(emulator.options()).createTask(slugid.nice(), child)
        emulator.resolve_task(first, "completed")
        await notifier.round()  # the decision task completed; its group has not
        return await _tick(engine, emulator, DAY + HOUR)

    held = _serve(config, emulator, scenario)
    [skipped] = held.overlapping
    assert "task group" in (skipped.error or "")
    assert "still running) has not resolved" in (skipped.error or "")


def test_replace_cancels_the_previous_fires_group_then_fires(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.set_role("repo:*", [*REPOSITORY_ROLES["repo:*"], *CANCEL_SCOPES])
    config, _ = _hourly(emulator, tmp_path, job_overlap={"hourly": "replace"})

    async def scenario(engine: Engine, notifier: Notifier) -> tuple[str, SlotResult]:
        first = await _first_fire_running(engine, notifier, emulator)
        child, now = slugid.nice(), emulator.clock.now()
        definition = task_definition(
            now, taskGroupId=first, schedulerId="tcs-level-1", deadline=format_time(now + DAY_LONG)
        )
        taskcluster.Queue(emulator.options()).createTask(child, definition)
        return child, await _tick(engine, emulator, DAY + HOUR)

    child, second = _serve(config, emulator, scenario)
    assert [f.state for f in second.fires] == [FireState.CREATED]
    assert _state(emulator, _task(emulator, DAY)) == ("exception", "canceled")
    assert _state(emulator, child) == ("exception", "canceled")
    assert _state(emulator, _task(emulator, DAY + HOUR))[0] == "pending"


def test_replace_without_the_cancel_scope_fails_the_fire_and_leaves_one_running(
    emulator: Emulator, tmp_path: Path
) -> None:
    config, _ = _hourly(emulator, tmp_path, overlap="replace")

    async def scenario(engine: Engine, notifier: Notifier) -> SlotResult:
        await _first_fire_running(engine, notifier, emulator)
        return await _tick(engine, emulator, DAY + HOUR)

    second = _serve(config, emulator, scenario)
    [failed] = second.fires
    assert failed.state is FireState.FAILED
    assert failed.task_id is None
    error = failed.error or ""
    assert "could not cancel task group" in error
    assert "queue:seal-task-group:" in error
    assert "Firing anyway would leave both running" in error
    assert _state(emulator, _task(emulator, DAY)) == ("running", None)
    assert {task.task_id for task in emulator.tasks()} == {_task(emulator, DAY)}


# -- preflight: replace needs the project to hold the cancel scopes ------------------------------


def _preflight(config: Config, emulator: Emulator) -> list[str]:
    async def run() -> list[str]:
        async with open_service(config, clock=emulator.clock.now) as (engine, _, _):
            return [str(f) for f in findings_of(await preflight(engine, config.projects))]

    return asyncio.run(run())


def test_preflight_names_the_cancel_scopes_a_replacing_job_lacks(tmp_path: Path) -> None:
    role = "repo:github.com/example/tc-scheduler:cron:*"
    cron_role = ["queue:create-task:*", "queue:route:*", "queue:scheduler-id:*"]
    hourly = own_project(tmp_path, HOURLY)
    for granted, overlap in (([], "allow"), ([], "replace"), (CANCEL_SCOPES, "replace")):
        with Emulator(roles={role: [*cron_role, *granted]}) as emulator:
            emulator.clock.set(DAY, frozen=True)
            config = make_config(emulator, tmp_path, replace(hourly, overlap=overlap))
            found = _preflight(config, emulator)
        if granted or overlap == "allow":
            assert found == []
            continue
        assert len(found) == 2
        for message, verb in zip(found, ("seal", "cancel"), strict=True):
            assert f"tc-scheduler/hourly: error: missing scope queue:{verb}-task-group:" in message
            assert (
                "(for cancelling the task group of a fire still running (overlap: replace)); "
                f"grant queue:{verb}-task-group:tcs-level-1/* to role {role} (the scope changes "
                "with every push)"
            ) in message


# -- what operators see: jobs (CLI and API) and the project page --------------------------------


def test_each_jobs_policy_shows_in_the_jobs_overview_the_api_and_the_project_page(
    emulator: Emulator, tmp_path: Path
) -> None:
    two_jobs = HOURLY + (
        "  - name: nightly\n"
        "    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}\n"
        "    when: [{hour: 3, minute: 0}]\n"
    )
    project = replace(own_project(tmp_path, two_jobs), job_overlap={"nightly": "replace"})
    public = ApiSettings(host="127.0.0.1", port=0, public_reads=True)
    config = replace(make_config(emulator, tmp_path, project), api=public)
    emulator.clock.set(DAY, frozen=True)

    async def main() -> tuple[dict[str, str], str, str]:
        async with serving_pages(config, emulator.clock.now) as (client, operations, _):
            overview = await operations.jobs("tc-scheduler")
            listed = await client.get("/api/v1/projects/tc-scheduler/jobs")
            assert listed.status_code == 200, listed.text
            assert {job["name"]: job["overlap"] for job in listed.json()["jobs"]} == {
                job.name: job.overlap for job in overview.jobs
            }
            page = await client.get("/projects/tc-scheduler")
            assert page.status_code == 200, page.text
            return {job.name: job.overlap for job in overview.jobs}, page.text, listed.text

    policies, page, _ = asyncio.run(main())
    assert policies == {"hourly": "allow", "nightly": "replace"}
    assert '<th scope="col">Overlap</th>' in page
    assert "allow: fires while its previous fire runs" in page
    assert "replace: cancels the previous fire&#39;s task group, then fires" in page


# -- the configuration ----------------------------------------------------------------------------

SERVICE = """\
taskcluster: {root-url: https://tc.example.com}
overlap: {policy: skip}
projects:
  - name: a
    repository: https://example.com/a
    trust-domain: x
    overlap:
      policy: replace
      jobs:
        hourly: {policy: allow}
  - name: b
    repository: https://example.com/b
    trust-domain: x
"""


def test_the_policy_is_the_jobs_else_the_projects_else_the_default_else_allow() -> None:
    config = load_config(SERVICE, "service.yml", {})
    a, b = config.projects
    assert (a.overlap_for("hourly"), a.overlap_for("nightly"), b.overlap_for("x")) == (
        "allow",
        "replace",
        "skip",
    )
    assert config.masked()["projects"][0]["job-overlap"] == {"hourly": "allow"}
    without = load_config(SERVICE.replace("overlap: {policy: skip}\n", ""), "service.yml", {})
    assert without.projects[1].overlap_for("x") == "allow"


def test_config_check_names_a_bad_policy_and_what_to_write(tmp_path: Path) -> None:
    path = tmp_path / "service.yml"
    path.write_text(SERVICE.replace("{policy: allow}", "{policy: sometimes}"))
    result = CliRunner().invoke(main, ["config", "check", "--config", str(path)])
    assert result.exit_code != 0
    assert (
        f"{path}:10:26: error: policy must be allow (fire while the previous fire runs), skip "
        "(not while it runs) or replace (cancel the previous fire's task group, then fire) "
        '(got "sometimes")'
    ) in result.output


def test_preflight_warns_that_replace_does_not_cancel_an_actions_group(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    [fenix] = config.projects
    config = replace(config, projects=(replace(fenix, overlap="replace"),))
    found = _preflight(config, emulator)
    assert any(
        "fenix/add-jobs: warning: overlap policy replace does not cancel an action's task group"
        in message
        for message in found
    ), found


def test_a_replaced_runs_cancelled_group_is_not_shown_completed(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The run whose watched group `replace` cancelled ends as exception (the group's tasks
    were canceled), whatever the notifications count as a failure: never `completed`."""
    emulator.set_role("repo:*", [*REPOSITORY_ROLES["repo:*"], *CANCEL_SCOPES])
    config, _ = _hourly(emulator, tmp_path, overlap="replace", watch_task_groups=True)

    async def scenario(engine: Engine, notifier: Notifier) -> None:
        first = await _first_fire_running(engine, notifier, emulator)
        now = emulator.clock.now()
        definition = task_definition(
            now, taskGroupId=first, schedulerId="tcs-level-1", deadline=format_time(now + DAY_LONG)
        )
        taskcluster.Queue(emulator.options()).createTask(slugid.nice(), definition)
        emulator.resolve_task(first, "completed")
        await notifier.round()  # the decision task completed; its group runs
        await _tick(engine, emulator, DAY + HOUR)  # replaces it: the group is cancelled
        await notifier.round()
        await notifier.round()

    _serve(config, emulator, scenario)
    ledger = Ledger.open(config.ledger_url)
    try:
        [replaced] = [f for f in ledger.fires() if f.slot == DAY]
        watch = ledger.watch(replaced.id)
    finally:
        ledger.close()
    assert watch is not None
    assert watch.phase is WatchPhase.DONE
    assert watch.group is not None
    assert watch.group.exception == 1
    assert watch.run_state is RunState.EXCEPTION


def test_replace_leaves_the_group_of_a_decision_task_that_resolved_unseen(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The previous fire's decision task completed since the watcher last looked: for a job
    whose group is not watched the run is over, so its group (the builds it made) is not
    cancelled, and the new fire is made."""
    emulator.set_role("repo:*", [*REPOSITORY_ROLES["repo:*"], *CANCEL_SCOPES])
    config, _ = _hourly(emulator, tmp_path, overlap="replace")

    async def scenario(engine: Engine, notifier: Notifier) -> tuple[str, SlotResult]:
        first = await _first_fire_running(engine, notifier, emulator)
        child, now = slugid.nice(), emulator.clock.now()
        definition = task_definition(
            now, taskGroupId=first, schedulerId="tcs-level-1", deadline=format_time(now + DAY_LONG)
        )
        taskcluster.Queue(emulator.options()).createTask(child, definition)
        emulator.resolve_task(first, "completed")  # no watcher round since
        return child, await _tick(engine, emulator, DAY + HOUR)

    child, second = _serve(config, emulator, scenario)
    assert [f.state for f in second.fires] == [FireState.CREATED]
    assert _state(emulator, _task(emulator, DAY))[0] == "completed"
    assert _state(emulator, child)[0] == "pending"


def test_skip_fires_when_the_previous_task_resolved_since_the_watcher_looked(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The watcher last saw the previous fire's task running; it has completed since (a
    watcher round comes after the tick): the queue is asked, and the slot fires."""
    config, _ = _hourly(emulator, tmp_path, overlap="skip")

    async def scenario(engine: Engine, notifier: Notifier) -> SlotResult:
        first = await _first_fire_running(engine, notifier, emulator)
        emulator.resolve_task(first, "completed")  # no watcher round since
        return await _tick(engine, emulator, DAY + HOUR)

    second = _serve(config, emulator, scenario)
    assert second.overlapping == ()
    assert [f.state for f in second.fires] == [FireState.CREATED]
