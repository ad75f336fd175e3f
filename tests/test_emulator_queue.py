"""The emulated queue's rules and state machine, through the real taskcluster client."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure

from tests.emulator import Clock, Emulator
from tests.emulator.clock import format_time, parse_time
from tests.support.emulated import task_definition


@pytest.fixture
def queue(emulator: Emulator) -> taskcluster.Queue:
    return taskcluster.Queue(emulator.options(maxRetries=0))


def rejected(call, *args, **kwargs) -> TaskclusterRestFailure:
    with pytest.raises(TaskclusterRestFailure) as raised:
        call(*args, **kwargs)
    return raised.value


def test_create_is_idempotent_for_the_same_definition(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    definition = task_definition(emulator.clock.now())
    first = queue.createTask(task_id, definition)
    assert queue.createTask(task_id, definition) == first
    assert len(emulator.tasks()) == 1


def test_create_with_another_definition_is_409(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    error = rejected(
        queue.createTask, task_id, task_definition(emulator.clock.now(), payload={"x": 1})
    )
    assert error.status_code == 409
    assert error.body["code"] == "RequestConflict"
    assert queue.task(task_id)["payload"] == {}


@pytest.mark.parametrize(
    ("minutes", "accepted"), [(-16, False), (-14, True), (14, True), (16, False)]
)
def test_created_must_be_within_15_minutes(emulator: Emulator, queue, minutes, accepted) -> None:
    created = emulator.clock.now() + timedelta(minutes=minutes)
    definition = task_definition(
        created,
        deadline=format_time(emulator.clock.now() + timedelta(hours=1)),
    )
    if accepted:
        queue.createTask(slugid.nice(), definition)
    else:
        error = rejected(queue.createTask, slugid.nice(), definition)
        assert error.status_code == 400
        assert "15 minutes" in error.body["message"]


def test_deadline_rules(emulator: Emulator, queue) -> None:
    now = emulator.clock.now()
    too_far = task_definition(now, deadline=format_time(now + timedelta(days=5, minutes=1)))
    assert "5 days" in rejected(queue.createTask, slugid.nice(), too_far).body["message"]
    past = task_definition(
        now - timedelta(minutes=10), deadline=format_time(now - timedelta(minutes=1))
    )
    assert "past" in rejected(queue.createTask, slugid.nice(), past).body["message"]
    early = task_definition(now, expires=format_time(now + timedelta(minutes=30)))
    assert "expires" in rejected(queue.createTask, slugid.nice(), early).body["message"]
    assert not emulator.tasks()


def test_max_deadline_is_configurable() -> None:
    with Emulator(max_deadline=timedelta(days=10)) as emulator:
        queue = taskcluster.Queue(emulator.options())
        now = emulator.clock.now()
        queue.createTask(
            slugid.nice(), task_definition(now, deadline=format_time(now + timedelta(days=9)))
        )


def test_expires_defaults_to_a_year_after_the_deadline(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    definition = task_definition(emulator.clock.now())
    status = queue.createTask(task_id, definition)["status"]
    assert parse_time(status["expires"]) - parse_time(status["deadline"]) == timedelta(days=365)
    assert status["deadline"] == definition["deadline"]


def test_dependencies_must_exist_and_outlive_the_deadline(emulator: Emulator, queue) -> None:
    now = emulator.clock.now()
    missing = slugid.nice()
    error = rejected(queue.createTask, slugid.nice(), task_definition(now, dependencies=[missing]))
    assert missing in error.body["message"]
    short = slugid.nice()
    queue.createTask(
        short,
        task_definition(now, expires=format_time(now + timedelta(hours=2))),
    )
    late = task_definition(
        now, deadline=format_time(now + timedelta(hours=3)), dependencies=[short]
    )
    error = rejected(queue.createTask, slugid.nice(), late)
    assert error.status_code == 400
    assert "before this task's deadline" in error.body["message"]


def test_dependent_task_waits_then_becomes_pending(emulator: Emulator, queue) -> None:
    now = emulator.clock.now()
    first, second = slugid.nice(), slugid.nice()
    queue.createTask(first, task_definition(now))
    queue.createTask(second, task_definition(now, dependencies=[first]))
    assert queue.status(second)["status"]["state"] == "unscheduled"
    assert [t["status"]["taskId"] for t in queue.listDependentTasks(first)["tasks"]] == [second]
    emulator.resolve_task(first, "completed")
    status = queue.status(second)["status"]
    assert status["state"] == "pending"
    assert status["runs"][0]["reasonCreated"] == "scheduled"


def test_failed_dependency_leaves_dependent_unscheduled_until_its_deadline(
    emulator: Emulator, queue
) -> None:
    now = emulator.clock.now()
    first, second = slugid.nice(), slugid.nice()
    queue.createTask(first, task_definition(now))
    queue.createTask(second, task_definition(now, dependencies=[first]))
    emulator.resolve_task(first, "failed")
    assert queue.status(second)["status"]["state"] == "unscheduled"
    emulator.clock.advance(timedelta(hours=2))
    status = queue.status(second)["status"]
    assert status["state"] == "exception"
    assert status["runs"][-1]["reasonResolved"] == "deadline-exceeded"


def test_all_resolved_dependent_runs_after_a_failure(emulator: Emulator, queue) -> None:
    now = emulator.clock.now()
    first, second = slugid.nice(), slugid.nice()
    queue.createTask(first, task_definition(now))
    queue.createTask(second, task_definition(now, dependencies=[first], requires="all-resolved"))
    emulator.resolve_task(first, "exception", "malformed-payload")
    assert queue.status(second)["status"]["state"] == "pending"


def test_state_machine_through_the_control_surface(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    emulator.run_task(task_id)
    run = queue.status(task_id)["status"]["runs"][0]
    assert (run["state"], run["workerId"]) == ("running", "emulator-worker")
    emulator.resolve_task(task_id, "completed")
    status = queue.status(task_id)["status"]
    assert (status["state"], status["runs"][0]["reasonResolved"]) == ("completed", "completed")
    with pytest.raises(ValueError, match="already completed"):
        emulator.resolve_task(task_id, "failed")


def test_cancel_resolves_as_canceled_and_is_idempotent(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    status = queue.cancelTask(task_id)["status"]
    assert (status["state"], status["runs"][-1]["reasonResolved"]) == ("exception", "canceled")
    assert queue.cancelTask(task_id)["status"] == status


def test_cancel_needs_the_scheduler_scopes(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now(), schedulerId="sched"))
    other = emulator.add_client("other", ["queue:cancel-task:other/*"])
    error = rejected(taskcluster.Queue(emulator.options(other)).cancelTask, task_id)
    assert error.status_code == 403
    allowed = emulator.add_client("allowed", [f"queue:cancel-task:sched/{task_id}/*"])
    assert (
        taskcluster.Queue(emulator.options(allowed)).cancelTask(task_id)["status"]["state"]
        == "exception"
    )


def test_expired_task_is_gone(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    emulator.clock.advance(timedelta(days=366))
    error = rejected(queue.status, task_id)
    assert (error.status_code, error.body["code"]) == (404, "ResourceNotFound")


def test_task_group_lists_with_continuation(emulator: Emulator, queue) -> None:
    group = slugid.nice()
    now = emulator.clock.now()
    created = sorted(slugid.nice() for _ in range(7))
    for task_id in created:
        queue.createTask(task_id, task_definition(now, taskGroupId=group))
    first = queue.listTaskGroup(group, query={"limit": 3})
    assert len(first["tasks"]) == 3
    assert "continuationToken" in first
    seen: list[str] = []
    queue.listTaskGroup(
        group,
        paginationHandler=lambda page: seen.extend(t["status"]["taskId"] for t in page["tasks"]),
        paginationLimit=3,
    )
    assert sorted(seen) == created
    bad = rejected(queue.listTaskGroup, group, query={"continuationToken": "!!"})
    assert bad.status_code == 400


def test_task_group_is_tied_to_its_scheduler(emulator: Emulator, queue) -> None:
    group = slugid.nice()
    now = emulator.clock.now()
    queue.createTask(slugid.nice(), task_definition(now, taskGroupId=group, schedulerId="a"))
    error = rejected(
        queue.createTask, slugid.nice(), task_definition(now, taskGroupId=group, schedulerId="b")
    )
    assert error.status_code == 409


def test_cancel_task_group_cancels_its_unresolved_tasks_once_sealed(
    emulator: Emulator, queue
) -> None:
    group = slugid.nice()
    now = emulator.clock.now()
    done, running, pending = (slugid.nice() for _ in range(3))
    for task_id in (done, running, pending):
        queue.createTask(task_id, task_definition(now, taskGroupId=group, schedulerId="sched"))
    waiting = slugid.nice()
    queue.createTask(
        waiting,
        task_definition(now, taskGroupId=group, schedulerId="sched", dependencies=[running]),
    )
    emulator.resolve_task(done, "completed")
    emulator.run_task(running)
    unsealed = rejected(queue.cancelTaskGroup, group)
    assert (unsealed.status_code, unsealed.body["code"]) == (409, "RequestConflict")
    assert "unsealed" in unsealed.body["message"]
    assert queue.status(pending)["status"]["state"] == "pending"

    queue.sealTaskGroup(group)
    other = emulator.add_client("other", ["queue:cancel-task-group:other/*"])
    refused = rejected(taskcluster.Queue(emulator.options(other)).cancelTaskGroup, group)
    assert refused.status_code == 403
    assert f"queue:cancel-task-group:sched/{group}" in refused.body["message"]
    assert queue.status(pending)["status"]["state"] == "pending"

    allowed = emulator.add_client("allowed", [f"queue:cancel-task-group:sched/{group}"])
    reply = taskcluster.Queue(emulator.options(allowed)).cancelTaskGroup(group)
    assert (reply["taskGroupId"], reply["taskGroupSize"]) == (group, 4)
    assert (reply["cancelledCount"], sorted(reply["taskIds"])) == (
        3,
        sorted([running, pending, waiting]),
    )
    for task_id in (running, pending, waiting):
        status = queue.status(task_id)["status"]
        assert (status["state"], status["runs"][-1]["reasonResolved"]) == ("exception", "canceled")
    assert queue.status(done)["status"]["state"] == "completed"
    again = queue.cancelTaskGroup(group)
    assert (again["cancelledCount"], again["taskIds"], again["taskGroupSize"]) == (0, [], 4)


def test_cancel_task_group_of_an_unknown_group_is_404(emulator: Emulator, queue) -> None:
    error = rejected(queue.cancelTaskGroup, slugid.nice())
    assert (error.status_code, error.body["code"]) == (404, "ResourceNotFound")


def test_artifacts_redirect_and_expire(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    expires = emulator.clock.now() + timedelta(days=1)
    emulator.add_artifact(task_id, "public/build/target.json", {"ok": True}, expires=expires)
    listed = queue.listLatestArtifacts(task_id)["artifacts"]
    assert [(a["name"], a["contentType"]) for a in listed] == [
        ("public/build/target.json", "application/json")
    ]
    location = queue.getLatestArtifact(task_id, "public/build/target.json")
    assert location["storageType"] == "s3"
    assert queue.latestArtifact(task_id, "public/build/target.json")["url"] == location["url"]
    assert requests.get(location["url"], timeout=10).json() == {"ok": True}
    emulator.clock.set(expires + timedelta(seconds=1))
    error = rejected(queue.getLatestArtifact, task_id, "public/build/target.json")
    assert (error.status_code, error.body["code"]) == (410, "ResourceExpired")
    assert queue.listLatestArtifacts(task_id)["artifacts"] == []


def test_missing_artifact_is_404(emulator: Emulator, queue) -> None:
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    assert rejected(queue.getLatestArtifact, task_id, "public/none.json").status_code == 404


def test_frozen_clock_keeps_time_still() -> None:
    clock = Clock(frozen=True)
    before = clock.now()
    assert clock.advance(timedelta(minutes=5)) == before + timedelta(minutes=5)
    assert clock.now() == before + timedelta(minutes=5)
