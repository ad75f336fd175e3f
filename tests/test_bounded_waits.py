"""A stalled Taskcluster holds nothing up past the configured deadline: `fire` returns with the
fire failed as timed out, a tick records it and fires the other projects, and what the stalled
call may have done is resolved later, exactly once: no manual fire follows while the last may
yet have made its task, and a fire is given up only once the queue was asked about its task."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.actions.triggering import SETTLE
from scheduler.cli.setup import EXIT_STATUS
from scheduler.clock import NOW_VARIABLE
from scheduler.common.deadlines import DeadlineExceededError
from scheduler.config.model import CallBounds, CatchUp
from scheduler.engine import Engine
from scheduler.engine.decision_task import create_unsure_for
from scheduler.errors import Category
from scheduler.ids import decision_task_id
from scheduler.ledger import Fire, FireKind, FireState, Ledger, WatchPhase
from scheduler.outcomes import FireResult, FireTooSoonError
from scheduler.retrying import FIRST_WAIT, ROUND_GRACE
from scheduler.taskcluster import MAX_RETRIES
from scheduler.taskcluster_failures import explain
from tests.emulator import Emulator
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import taskcluster_environment
from tests.support.engine import action_world, created_task_ids, fires, hook_fires, run, tick
from tests.support.projects import (
    DAY,
    HOURLY,
    NIGHTLY,
    OWN_TEMPLATE,
    make_config,
    own_project,
    write_service_config,
)
from tests.support.repos import Repository
from tests.support.waiting import wait_until

# Short bounds, so that a stalled call is given up soon; the limits the tests wait with are
# far longer, so that a loaded machine never fails them.
BOUNDS = CallBounds(timeout=timedelta(seconds=1), deadline=timedelta(seconds=2))
RETURNS_WITHIN = BOUNDS.deadline.total_seconds() + 60
# A job's last attempt: its default max-lateness after the slot.
LAST_CHANCE = DAY + CatchUp().max_lateness


def recorded_fires(tmp_path: Path, **filters: str) -> list[Fire]:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        return ledger.fires(**filters)
    finally:
        ledger.close()


def watch_phase(tmp_path: Path, fire_id: int) -> WatchPhase | None:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        watch = ledger.watch(fire_id)
    finally:
        ledger.close()
    return watch.phase if watch is not None else None


def test_a_call_past_its_deadline_is_said_to_have_timed_out() -> None:
    late = DeadlineExceededError("queue.createTask", timedelta(minutes=2))
    explained = explain(late, "queue.createTask", retries=MAX_RETRIES)
    assert explained.message == (
        "queue.createTask failed: timed out after 2m: Taskcluster did not answer"
    )
    assert (explained.timed_out, explained.uncertain, explained.transient) == (True, True, True)
    within = explain(late, "fetching public/actions.json of X", retries=MAX_RETRIES)
    assert "Taskcluster did not answer queue.createTask" in within.message


@pytest.mark.process
def test_a_stalled_manual_fire_returns_at_its_deadline_and_holds_off_the_next_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A manual fire's task id is its own: had its stalled createTask made the task, another
    fire would make a second one, so the next is refused until the queue has settled it. The
    ledger already follows a task, as one the service shares always does: the command follows
    it one step after its fire only if Taskcluster answered in time, so a stalled queue is
    waited on once, not once more for that step."""
    repository = Repository(
        tmp_path / "demo",
        {".cron.yml": HOURLY + NIGHTLY.removeprefix("jobs:\n"), ".taskcluster.yml": OWN_TEMPLATE},
    )
    config = write_service_config(
        tmp_path,
        repository,
        settings="taskcluster:\n  call-timeout: 1s\n  call-deadline: 2s\n",
    )
    emulator.clock.set(DAY.replace(hour=2, minute=1), frozen=True)

    def fire_by_hand(job: str, now: str | None = None) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, **taskcluster_environment(emulator)}
        if now is not None:
            environment[NOW_VARIABLE] = now
        return subprocess.run(
            [sys.executable, "-m", "scheduler", "fire", "demo", job, "--config", str(config)],
            env=environment,
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            timeout=RETURNS_WITHIN,  # held forever without a deadline
            check=False,
        )

    followed = fire_by_hand("hourly")
    assert followed.returncode == 0, followed.stderr
    [followed_task] = emulator.tasks()
    emulator.faults.add("queue.*", error_rate=1.0, errors=["hold"])
    try:
        finished = fire_by_hand("nightly")
        held = [route for route, _ in emulator.faults.injected]
        [first] = recorded_fires(tmp_path, job="nightly")
        assert first.sent_at is not None
        # Right after, by the clock the first fire was recorded by.
        refused = fire_by_hand("nightly", first.sent_at.isoformat())
        sent = [route for route, _ in emulator.faults.injected[len(held) :]]
        assert "queue.createTask" not in sent, "the refused fire created nothing"
        assert "queue.statuses" not in sent, "a refused fire has nothing to follow"
        assert len(recorded_fires(tmp_path, job="nightly")) == 1
    finally:
        emulator.faults.release()
    assert "queue.createTask" in held, "the queue was meant to be stalled"
    assert "queue.statuses" not in held, "the command waited on the stalled queue again"

    assert finished.returncode == 1, finished.stderr
    said = " ".join((finished.stdout + finished.stderr).split())  # tables wrap long messages
    assert "queue.createTask failed: timed out after 2s: Taskcluster did not answer" in said
    assert "Traceback" not in said
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        # The failed fire was reported all the same; the task is left for the service to follow.
        assert [watch.job for watch in ledger.watches()] == ["hourly"]
    finally:
        ledger.close()
    assert (first.kind, first.state) == (FireKind.MANUAL, FireState.FAILED)
    task_id = first.task_id
    assert f"whether task {task_id} was created is not known" in (first.error or "")
    assert f"whether task {task_id} was created is not known" in said
    assert refused.returncode == EXIT_STATUS[Category.TOO_SOON], refused.stderr
    told = " ".join((refused.stdout + refused.stderr).split())
    assert f"may have created task {task_id} although it failed ({first.error})" in told
    assert f": see {emulator.root_url}/tasks/{task_id}." in told
    allowed = first.sent_at + create_unsure_for(BOUNDS)
    assert f"A new fire is allowed from {allowed:%H:%M:%S} UTC (in " in told
    assert "Traceback" not in told
    # Released, the queue makes the first fire's task after all, and no other.
    assert wait_until(lambda: len(emulator.tasks()) == 2)
    assert created_task_ids(emulator) == sorted([followed_task.task_id, task_id])


def test_a_manual_fire_still_waiting_on_the_queue_holds_off_the_next_past_the_interval(
    emulator: Emulator, tmp_path: Path
) -> None:
    """`manual-fire-interval` (a minute) is shorter than the call deadline (two): a fire asked
    for while the last one's createTask is still unanswered is refused all the same."""
    slow = CallBounds(timeout=timedelta(minutes=1), deadline=timedelta(minutes=2))
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY), calls=slow)
    emulator.clock.set(DAY, frozen=True)
    emulator.faults.add("queue.createTask", error_rate=1.0, errors=["hold"])

    async def scenario(engine: Engine) -> tuple[FireResult, str]:
        first = asyncio.create_task(engine.fire_now("tc-scheduler", "hourly"))
        try:
            assert await asyncio.to_thread(wait_until, lambda: emulator.faults.holding > 0)
            later = DAY + config.manual_fire_interval + timedelta(seconds=1)
            emulator.clock.set(later, frozen=True)
            with pytest.raises(FireTooSoonError) as refused:
                await engine.fire_now("tc-scheduler", "hourly")
        finally:
            emulator.faults.release()
        return await first, str(refused.value)

    try:
        made, said = run(config, emulator, scenario)
    finally:
        emulator.faults.clear()
    assert made.state is FireState.CREATED, made.error
    assert f"may have created task {made.task_id} (its request has not been answered yet)" in said
    allowed = DAY + create_unsure_for(slow)
    assert f"A new fire is allowed from {allowed:%H:%M:%S} UTC (in 90 s)" in said
    assert created_task_ids(emulator) == [made.task_id]


def test_a_tick_records_a_stalled_create_as_timed_out_and_fires_the_other_projects(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The retry policy treats a timed-out createTask as it does a lost reply that cannot be
    checked: retrying, under the same task id, so that the retry addresses what the stalled
    call made instead of making a second task."""
    stalled, other = (own_project(tmp_path, HOURLY, name) for name in ("stalled", "other"))
    config = make_config(emulator, tmp_path, stalled, other, calls=BOUNDS)
    stalled_id, other_id = (
        decision_task_id(emulator.root_url, name, "hourly", DAY) for name in ("stalled", "other")
    )
    emulator.faults.add(
        "queue.createTask", error_rate=1.0, errors=["hold"], params={"taskId": stalled_id}
    )
    try:
        results = tick(config, emulator, DAY)
        assert created_task_ids(emulator) == [other_id]
    finally:
        emulator.faults.clear()  # releases what is held, and stalls nothing more

    fired = {result.project: result.fires for result in results}
    [made] = fired["other"]
    assert (made.state, made.task_id) == (FireState.CREATED, other_id)
    [timed_out] = fired["stalled"]
    assert timed_out.state is FireState.RETRYING
    error = timed_out.error or ""
    assert "queue.createTask failed: timed out after 2s" in error
    assert f"whether task {stalled_id} was created is not known" in error
    recorded = {fire.project: fire for fire in fires(config)}
    assert recorded["stalled"].state is FireState.RETRYING
    assert recorded["stalled"].error == error

    # The stalled call took effect once released. The retry sends the same task (same id,
    # same definition), which the queue takes as that task, not a second one.
    assert wait_until(lambda: created_task_ids(emulator) == sorted([stalled_id, other_id]))
    emulator.clock.set(DAY + FIRST_WAIT, frozen=True)
    [again] = run(config, emulator, lambda engine: engine.recover())
    assert (again.state, again.task_id) == (FireState.CREATED, stalled_id), again.error
    assert created_task_ids(emulator) == sorted([stalled_id, other_id])
    assert [fire.attempt for fire in fires(config) if fire.project == "stalled"] == [2]


def test_a_stalled_trigger_is_not_sent_again_until_its_task_can_be_looked_for(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path, calls=BOUNDS)
    emulator.faults.add("hooks.triggerHook", error_rate=1.0, errors=["hold"])
    try:
        [result] = tick(config, emulator, DAY)
    finally:
        emulator.faults.clear()

    [fired] = result.fires
    assert fired.state is FireState.RETRYING
    assert "hooks.triggerHook" in (fired.error or "")
    assert "timed out" in (fired.error or "")
    assert "whether it made a task is not known" in (fired.error or "")
    [recorded] = fires(config)
    assert recorded.lease_until == DAY + SETTLE
    # Released, the trigger made its task; once it cannot still be on its way, it is found.
    assert wait_until(lambda: len(hook_fires(emulator)) == 1)
    emulator.clock.set(DAY + SETTLE, frozen=True)
    [found] = run(config, emulator, lambda engine: engine.recover())
    [made] = hook_fires(emulator)
    assert (found.state, found.task_id) == (FireState.ALREADY_FIRED, made["taskId"]), found.error


def test_a_last_attempt_that_times_out_is_created_if_the_queue_has_its_task(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The first attempt's createTask is held; released, the queue makes the task, while the
    last attempt's stalls again: before giving the fire up, the queue is asked."""
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY), calls=BOUNDS)
    task_id = decision_task_id(emulator.root_url, "tc-scheduler", "hourly", DAY)
    emulator.faults.add(
        "queue.createTask", error_rate=1.0, errors=["hold"], params={"taskId": task_id}
    )
    try:
        [result] = tick(config, emulator, DAY)
        [first] = result.fires
        assert (first.state, first.task_id) == (FireState.RETRYING, task_id), first.error
        emulator.faults.release()
        assert wait_until(lambda: created_task_ids(emulator) == [task_id])
        emulator.clock.set(LAST_CHANCE, frozen=True)
        held = len(emulator.faults.injected)
        [last] = run(config, emulator, lambda engine: engine.recover())
        assert emulator.faults.injected[held:][0] == ("queue.createTask", "hold")
    finally:
        emulator.faults.clear()

    assert (last.state, last.task_id, last.error) == (FireState.CREATED, task_id, None)
    [recorded] = fires(config)
    assert (recorded.state, recorded.attempt, recorded.task_id) == (FireState.CREATED, 2, task_id)
    assert watch_phase(tmp_path, recorded.id) is WatchPhase.TASK  # followed, not reported failed
    assert created_task_ids(emulator) == [task_id]


def test_a_last_attempt_that_times_out_fails_as_not_created_if_the_queue_lacks_its_task(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY), calls=BOUNDS)
    task_id = decision_task_id(emulator.root_url, "tc-scheduler", "hourly", DAY)
    # A stalled createTask the queue drops unhandled: no task, ever.
    emulator.faults.stall_seconds = 3
    emulator.faults.add(
        "queue.createTask", error_rate=1.0, errors=["stall"], params={"taskId": task_id}
    )
    [result] = tick(config, emulator, DAY)
    assert [fire.state for fire in result.fires] == [FireState.RETRYING]
    emulator.clock.set(LAST_CHANCE, frozen=True)
    [last] = run(config, emulator, lambda engine: engine.recover())

    assert (last.state, last.task_id) == (FireState.FAILED, None)
    error = last.error or ""
    assert "queue.createTask failed: timed out after 2s" in error
    assert "(given up after 2 attempts: the job's max-lateness 6h has passed)" in error
    assert error.endswith(f"looked up then, task {task_id} does not exist: it was not created")
    [recorded] = fires(config)
    assert (recorded.state, recorded.error) == (FireState.FAILED, error)
    assert watch_phase(tmp_path, recorded.id) is WatchPhase.REPORT
    assert created_task_ids(emulator) == []


def test_a_retrying_fire_given_up_is_looked_up_before_it_is_reported(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Past max-lateness, the recovery round gives up a fire whose last attempt timed out: the
    one whose task the queue has is created; the one the queue does not answer about fails,
    saying that whether its task exists is not known, and where to look."""
    made, unknown = (own_project(tmp_path, HOURLY, name) for name in ("made", "unknown"))
    config = make_config(emulator, tmp_path, made, unknown, calls=BOUNDS)
    made_id, unknown_id = (
        decision_task_id(emulator.root_url, name, "hourly", DAY) for name in ("made", "unknown")
    )
    emulator.faults.add("queue.createTask", error_rate=1.0, errors=["hold"])
    try:
        results = tick(config, emulator, DAY)
        assert [fire.state for r in results for fire in r.fires] == [FireState.RETRYING] * 2
        emulator.faults.clear()  # the held calls make both tasks
        assert wait_until(lambda: created_task_ids(emulator) == sorted([made_id, unknown_id]))
        emulator.faults.add(
            "queue.task", error_rate=1.0, errors=["hold"], params={"taskId": unknown_id}
        )
        emulator.clock.set(LAST_CHANCE + ROUND_GRACE + FIRST_WAIT, frozen=True)
        assert run(config, emulator, lambda engine: engine.recover()) == []
    finally:
        emulator.faults.clear()

    recorded = {fire.project: fire for fire in fires(config)}
    assert (recorded["made"].state, recorded["made"].task_id) == (FireState.CREATED, made_id)
    assert recorded["made"].error is None
    assert watch_phase(tmp_path, recorded["made"].id) is WatchPhase.TASK
    given_up = recorded["unknown"]
    assert (given_up.state, given_up.task_id) == (FireState.FAILED, unknown_id)
    error = given_up.error or ""
    assert error.startswith("given up after 1 attempt: its max-lateness 6h has passed")
    assert "looking it up failed too (queue.task failed: timed out after 2s" in error
    assert error.endswith(
        f"so whether task {unknown_id} exists is still not known: "
        f"see {emulator.root_url}/tasks/{unknown_id}"
    )
    assert watch_phase(tmp_path, given_up.id) is WatchPhase.REPORT
