"""A stalled Taskcluster holds nothing up past the configured deadline: `fire` returns with the
fire failed as timed out, a tick records it and fires the other projects, and what the stalled
call may have done is resolved later, exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from scheduler.actions.triggering import SETTLE
from scheduler.common.deadlines import DeadlineExceededError
from scheduler.config.model import CallBounds
from scheduler.ids import decision_task_id
from scheduler.ledger import FireKind, FireState, Ledger
from scheduler.retrying import FIRST_WAIT
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
def test_fire_on_a_stalled_queue_returns_at_its_deadline_failed_as_timed_out(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The ledger already follows a task, as one the service shares always does: the command
    follows it one step after its fire only if Taskcluster answered in time, so a stalled
    queue is waited on once, not once more for that step."""
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

    def fire_by_hand(job: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "scheduler", "fire", "demo", job, "--config", str(config)],
            env={**os.environ, **taskcluster_environment(emulator)},
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
        [fire] = ledger.fires(project="demo", job="nightly")
        # The failed fire was reported all the same; the task is left for the service to follow.
        assert [watch.job for watch in ledger.watches()] == ["hourly"]
    finally:
        ledger.close()
    assert (fire.kind, fire.state) == (FireKind.MANUAL, FireState.FAILED)
    assert "timed out after 2s" in (fire.error or "")
    # Released, the queue makes the task after all: the error named it for people to look up.
    assert wait_until(lambda: len(emulator.tasks()) == 2)
    [task] = [task for task in emulator.tasks() if task.task_id != followed_task.task_id]
    assert f"whether task {task.task_id} was created is not known" in (fire.error or "")


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
