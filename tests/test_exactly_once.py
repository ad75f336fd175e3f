"""Fires whose outcome is unknown are resolved from Taskcluster, transient failures retried,
and a trigger is never sent twice: against the emulator, with injected faults."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import taskcluster

from scheduler.actions.triggering import SETTLE
from scheduler.config.model import CatchUp
from scheduler.engine import Engine
from scheduler.ids import decision_task_id
from scheduler.ledger import FireKind, FireState, Ledger
from scheduler.outcomes import FireResult, FireTooSoonError
from scheduler.retrying import FIRST_WAIT
from tests.emulator import Emulator
from tests.support.engine import (
    HOOK,
    action_world,
    created_task_ids,
    fires,
    hook_fires,
    run,
    tick,
)
from tests.support.projects import DAY, HOURLY, make_config, own_project, project
from tests.support.repos import Repository


def recover(config: Any, emulator: Emulator) -> list[FireResult]:
    return run(config, emulator, lambda engine: engine.recover())


def the_fire(config: Any) -> Any:
    [fire] = fires(config)
    return fire


def watched(config: Any) -> list[int]:
    ledger = Ledger.open(config.ledger_url)
    try:
        return [watch.fire_id for watch in ledger.watches()]
    finally:
        ledger.close()


def claim_hourly(ledger: Ledger, *, replica: str) -> None:
    """The claim a replica that then died took on the `hourly` fire of DAY."""
    claim = ledger.claim(
        "tc-scheduler",
        "hourly",
        DAY,
        kind=FireKind.SCHEDULED,
        replica=replica,
        now=DAY,
        lease=timedelta(minutes=1),
    )
    assert claim is not None


# -- decision tasks ----------------------------------------------------------------------------


def test_a_lost_create_task_reply_ends_created(emulator: Emulator, tmp_path: Path) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY))
    # The first call creates the task and loses its reply; every retry of the client loses its
    # connection: the outcome is unknown until the queue is asked.
    emulator.faults.add("queue.createTask", script=["reset-after"] + ["reset"] * 5)

    [result] = tick(config, emulator, DAY)

    [fired] = result.fires
    assert fired.state is FireState.CREATED, fired.error
    expected = decision_task_id(emulator.root_url, "tc-scheduler", "hourly", DAY)
    assert created_task_ids(emulator) == [expected]
    assert the_fire(config).state is FireState.CREATED


def test_a_transient_failure_is_retried_with_the_same_task_id(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY))
    emulator.faults.add("queue.createTask", script=["503"] * 6)

    [result] = tick(config, emulator, DAY)

    [fired] = result.fires
    assert fired.state is FireState.RETRYING
    assert "attempt 1 failed" in (fired.error or "")
    assert "503" in (fired.error or "")
    retrying = the_fire(config)
    assert retrying.lease_until == DAY + FIRST_WAIT
    assert watched(config) == [], "a fire being retried is not reported"
    assert created_task_ids(emulator) == []

    # Not before its time...
    emulator.clock.set(DAY + FIRST_WAIT - timedelta(seconds=1), frozen=True)
    assert recover(config, emulator) == []
    # ...then by the next recovery round, under the id of the slot.
    emulator.clock.set(DAY + FIRST_WAIT, frozen=True)
    [again] = recover(config, emulator)

    assert (again.state, again.kind) == (FireState.CREATED, FireKind.SCHEDULED)
    done = the_fire(config)
    assert (done.state, done.attempt, done.error) == (FireState.CREATED, 2, None)
    expected = decision_task_id(emulator.root_url, "tc-scheduler", "hourly", DAY)
    assert created_task_ids(emulator) == [expected]
    assert watched(config) == [done.id]


def test_a_fire_still_failing_at_its_max_lateness_is_given_up_and_reported(
    emulator: Emulator, tmp_path: Path
) -> None:
    lateness = timedelta(minutes=2)
    hourly = replace(own_project(tmp_path, HOURLY), catch_up=CatchUp(max_lateness=lateness))
    config = make_config(emulator, tmp_path, hourly)
    emulator.faults.add("queue.createTask", error_rate=1.0, errors=["503"])

    tick(config, emulator, DAY)
    attempts = 1
    while the_fire(config).state is FireState.RETRYING:
        emulator.clock.set(the_fire(config).lease_until, frozen=True)
        recover(config, emulator)
        attempts += 1
        assert attempts < 10, "retries must stop at the max-lateness"

    given_up = the_fire(config)
    assert given_up.state is FireState.FAILED
    assert given_up.error is not None
    assert "given up after" in given_up.error
    assert "max-lateness 2m" in given_up.error
    assert given_up.attempt == attempts
    assert watched(config) == [given_up.id], "the final failure is reported"


def test_a_failure_that_will_not_pass_is_not_retried(emulator: Emulator, tmp_path: Path) -> None:
    broken = project(
        "broken",
        Repository(
            tmp_path / "repos" / "broken",
            {".cron.yml": HOURLY, ".taskcluster.yml": "version: 1\ntasks: []\n"},
        ),
    )
    config = make_config(emulator, tmp_path, broken)

    [result] = tick(config, emulator, DAY)

    assert [f.state for f in result.fires] == [FireState.FAILED]
    emulator.clock.set(DAY + timedelta(hours=1, minutes=1), frozen=True)
    assert recover(config, emulator) == []


def test_a_dead_replicas_claim_is_taken_over_between_ticks(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY))
    ledger = Ledger.open(config.ledger_url)
    try:
        claim_hourly(ledger, replica="dead-replica")
    finally:
        ledger.close()
    emulator.clock.set(DAY + timedelta(seconds=59), frozen=True)
    assert recover(config, emulator) == [], "held until its lease runs out"

    emulator.clock.set(DAY + timedelta(minutes=1), frozen=True)
    [taken] = recover(config, emulator)

    assert taken.state is FireState.CREATED
    assert (the_fire(config).attempt, the_fire(config).replica) == (2, "replica-1")
    assert len(created_task_ids(emulator)) == 1


def test_a_process_restarting_under_its_name_takes_over_at_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY))
    ledger = Ledger.open(config.ledger_url)
    try:
        claim_hourly(ledger, replica=config.replica)
        emulator.clock.set(DAY + timedelta(seconds=5), frozen=True)
        assert recover(config, emulator) == []
        assert ledger.release_replica(config.replica, now=emulator.clock.now()) == (1, 0)
        assert ledger.release_replica(config.replica, now=emulator.clock.now()) == (0, 0)
    finally:
        ledger.close()

    [taken] = recover(config, emulator)

    assert taken.state is FireState.CREATED
    assert len(created_task_ids(emulator)) == 1


# -- trigger actions ---------------------------------------------------------------------------


def someone_else_triggers(emulator: Emulator, action_input: dict[str, Any]) -> str:
    """The hook triggered at DAY by someone other than the service; the task it made."""
    emulator.clock.set(DAY, frozen=True)
    hooks = taskcluster.Hooks(emulator.options())
    return str(hooks.triggerHook(*HOOK, {"user": {"input": action_input}})["taskId"])


def test_a_trigger_whose_reply_is_lost_is_not_sent_again(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    emulator.faults.add("hooks.triggerHook", script=["500-after"])

    [result] = tick(config, emulator, DAY)

    [fired] = result.fires
    [made] = hook_fires(emulator)
    assert (fired.state, fired.task_id) == (FireState.CREATED, made["taskId"]), fired.error
    assert ("hooks.triggerHook", "500-after") in emulator.faults.injected
    recorded = the_fire(config)
    assert recorded.sent_at == DAY
    assert recorded.details is not None
    assert recorded.details["marker"].startswith("tcs:")


def test_a_trigger_that_made_nothing_is_sent_again_once_it_cannot_still_land(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    emulator.faults.add("hooks.triggerHook", script=["503"])

    [result] = tick(config, emulator, DAY)

    assert [f.state for f in result.fires] == [FireState.RETRYING]
    said = result.fires[0].error or ""
    assert "answered 503" in said
    assert "retries" not in said, "a trigger is sent once by the client, never retried"
    assert "no task for it yet" in said
    assert hook_fires(emulator) == []
    # The hooks service could still be making its task: not tried again before it cannot be.
    assert the_fire(config).lease_until == DAY + SETTLE
    emulator.clock.set(DAY + FIRST_WAIT, frozen=True)
    assert recover(config, emulator) == []

    emulator.clock.set(DAY + SETTLE, frozen=True)
    [fired] = recover(config, emulator)

    [made] = hook_fires(emulator)
    assert (fired.state, fired.task_id) == (FireState.CREATED, made["taskId"]), fired.error


def test_a_trigger_sent_by_an_earlier_attempt_is_found_not_repeated(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    # The trigger takes effect and its reply is lost, and the hook's fires cannot be read at
    # first: the outcome stays unknown, so the fire waits without triggering again.
    emulator.faults.add("hooks.triggerHook", script=["500-after"])
    emulator.faults.add("hooks.listLastFires", script=["503"] * 6)

    [result] = tick(config, emulator, DAY)

    assert [f.state for f in result.fires] == [FireState.RETRYING]
    assert "not known" in (result.fires[0].error or "")
    emulator.clock.set(the_fire(config).lease_until, frozen=True)
    [found] = recover(config, emulator)

    [made] = hook_fires(emulator)
    assert (found.state, found.task_id) == (FireState.ALREADY_FIRED, made["taskId"])
    assert the_fire(config).attempt == 2


def test_another_fires_task_of_the_same_hook_is_not_taken_for_ours(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    # Someone else triggers the same hook at the same moment, with another fire's marker.
    someone_else_triggers(emulator, {"tc-scheduler-fire": "tcs:other"})
    emulator.faults.add("hooks.triggerHook", script=["503"])

    [result] = tick(config, emulator, DAY)

    assert [f.state for f in result.fires] == [FireState.RETRYING]
    emulator.clock.set(DAY + SETTLE, frozen=True)
    [fired] = recover(config, emulator)
    assert fired.state is FireState.CREATED
    assert len(hook_fires(emulator)) == 2


def test_an_unmarked_task_of_the_hook_counts_as_ours_so_nothing_fires_twice(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    # A task of the hook that shows no marker at all cannot be told apart from ours.
    unmarked = someone_else_triggers(emulator, {})
    emulator.faults.add("hooks.triggerHook", script=["503"])

    [result] = tick(config, emulator, DAY)

    assert [(f.state, f.task_id) for f in result.fires] == [(FireState.CREATED, unmarked)]
    assert len(hook_fires(emulator)) == 1


def test_a_manual_trigger_with_an_unknown_outcome_is_not_fired_again_by_hand_at_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    emulator.clock.set(DAY, frozen=True)
    emulator.faults.add("hooks.triggerHook", script=["503"])

    first = run(config, emulator, lambda engine: engine.fire_now("fenix", "add-jobs"))
    assert first.state is FireState.FAILED  # a person fired it: told at once, not retried

    async def again(engine: Engine) -> str:
        with pytest.raises(FireTooSoonError) as refused:
            await engine.fire_now("fenix", "add-jobs")
        return str(refused.value)

    emulator.clock.set(DAY + SETTLE - timedelta(seconds=1), frozen=True)
    said = run(config, emulator, again)
    assert "may have made its task" in said
    assert "try again in 2 s" in said

    emulator.clock.set(DAY + SETTLE, frozen=True)
    second = run(config, emulator, lambda engine: engine.fire_now("fenix", "add-jobs"))
    [made] = hook_fires(emulator)
    assert (second.state, second.task_id) == (FireState.CREATED, made["taskId"])


def test_a_manual_fire_the_queue_refused_does_not_hold_off_the_next_one(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Only a manual fire whose task may exist holds off the next (see test_bounded_waits): one
    the queue answered with a refusal made nothing, so the next may come at once."""
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY))
    emulator.clock.set(DAY, frozen=True)
    emulator.faults.add("queue.createTask", script=["429"])

    first = run(config, emulator, lambda engine: engine.fire_now("tc-scheduler", "hourly"))
    assert (first.state, first.task_id) == (FireState.FAILED, None)
    assert "429" in (first.error or "")
    assert the_fire(config).sent_at is None
    second = run(config, emulator, lambda engine: engine.fire_now("tc-scheduler", "hourly"))
    assert second.state is FireState.CREATED, second.error
    assert created_task_ids(emulator) == [second.task_id]


def test_a_fire_of_the_hook_that_made_no_task_is_looked_past(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = action_world(emulator, tmp_path)
    emulator.clock.set(DAY, frozen=True)
    # Another trigger of the hook fails to create its task: an error fire, with a task id
    # the queue does not know.
    role = "hook-id:project-mobile/in-tree-action-3-generic/*"
    emulator.set_role(role, [])
    with pytest.raises(taskcluster.TaskclusterRestFailure):
        taskcluster.Hooks(emulator.options()).triggerHook(*HOOK, {"user": {"input": {}}})
    emulator.set_role(role, ["queue:create-task:*", "queue:scheduler-id:*"])
    emulator.faults.add("hooks.triggerHook", script=["503"])

    tick(config, emulator, DAY)
    emulator.clock.set(DAY + SETTLE, frozen=True)
    [fired] = recover(config, emulator)

    assert fired.state is FireState.CREATED, fired.error
    assert [f["result"] for f in hook_fires(emulator)] == ["success", "error"]
