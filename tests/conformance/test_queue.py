"""The queue: creating tasks and its rules, task groups, dependents, cancelling and artifacts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
import slugid

from tests.conformance.target import (
    CREATE_TASK_SCOPES,
    SCHEDULER_ID,
    SCOPE_PREFIX,
    TASK_QUEUE_ID,
    Clients,
    Target,
    eventually,
    expect_error,
    iso,
    parse_iso,
)


def test_create_task_fills_in_defaults(api: Clients, target: Target) -> None:
    """createTask answers the pending status; `task` gives the definition with defaults."""
    task_id = target.new_task_id()
    definition = target.task_definition(payload={"command": ["true"]})
    reply = api.queue().createTask(task_id, definition)
    status = reply["status"]
    assert status["taskId"] == task_id
    assert status["state"] == "pending"
    assert [(run["runId"], run["state"], run["reasonCreated"]) for run in status["runs"]] == [
        (0, "pending", "scheduled")
    ]
    assert status["taskQueueId"] == TASK_QUEUE_ID
    assert (status["provisionerId"], status["workerType"]) == tuple(TASK_QUEUE_ID.split("/"))
    assert status["schedulerId"] == SCHEDULER_ID
    assert status["taskGroupId"] == task_id
    assert status["deadline"] == definition["deadline"]

    task = api.queue().task(task_id)
    for name in ("created", "deadline", "expires", "payload", "metadata", "taskQueueId"):
        assert task[name] == definition[name], name
    assert task["taskGroupId"] == task_id
    assert task["priority"] == "lowest"
    assert task["retries"] == 5
    assert task["projectId"] == "none"
    assert task["requires"] == "all-completed"
    assert (task["routes"], task["dependencies"], task["scopes"]) == ([], [], [])
    assert (task["tags"], task["extra"]) == ({}, {})
    assert api.queue().status(task_id) == reply


def test_create_task_is_idempotent_and_conflicts_on_change(api: Clients, target: Target) -> None:
    """The same definition again is the same task (200); another one under its id is 409."""
    task_id = target.new_task_id()
    definition = target.task_definition()
    first = api.queue().createTask(task_id, definition)
    assert api.queue().createTask(task_id, definition) == first
    changed = {**definition, "payload": {"different": True}}
    body = expect_error(409, "RequestConflict", api.queue().createTask, task_id, changed)
    assert body["requestInfo"]["params"] == {"taskId": task_id}
    assert api.queue().task(task_id)["payload"] == {}


@pytest.mark.parametrize(
    ("minutes", "accepted"), [(-16, False), (-10, True), (10, True), (16, False)]
)
def test_created_must_be_within_15_minutes_of_now(
    api: Clients, target: Target, minutes: int, accepted: bool
) -> None:
    """`created` more than 15 minutes from the queue's time is a 400 InputError."""
    now = target.now()
    definition = target.task_definition(
        created=iso(now + timedelta(minutes=minutes)), deadline=iso(now + timedelta(hours=1))
    )
    task_id = target.new_task_id()
    if accepted:
        assert api.queue().createTask(task_id, definition)["status"]["state"] == "pending"
    else:
        expect_error(400, "InputError", api.queue().createTask, task_id, definition)
        expect_error(404, "ResourceNotFound", api.queue().status, task_id)


@pytest.mark.parametrize(
    ("deadline", "expires"),
    [
        pytest.param(timedelta(minutes=-5), timedelta(days=1), id="deadline-in-the-past"),
        pytest.param(timedelta(days=12), timedelta(days=13), id="deadline-beyond-5-days"),
        pytest.param(timedelta(hours=2), timedelta(hours=1), id="expires-before-deadline"),
    ],
)
def test_deadline_and_expires_rules(
    api: Clients, target: Target, deadline: timedelta, expires: timedelta
) -> None:
    """The deadline must be in the future and within 5 days; expires must not precede it."""
    now = target.now()
    definition = target.task_definition(deadline=iso(now + deadline), expires=iso(now + expires))
    expect_error(400, "InputError", api.queue().createTask, target.new_task_id(), definition)


def test_create_task_needs_the_scopes_the_task_carries(api: Clients, target: Target) -> None:
    """A client lacking a scope of `task.scopes` gets 403 InsufficientScopes naming it."""
    credentials = target.make_client(CREATE_TASK_SCOPES)
    queue = api.queue(credentials)
    assert queue.createTask(target.new_task_id(), target.task_definition())  # allowed alone
    secret = target.unique(f"{SCOPE_PREFIX}secret:")
    definition = target.task_definition(scopes=[secret])
    body = expect_error(
        403, "InsufficientScopes", queue.createTask, target.new_task_id(), definition
    )
    assert secret in body["message"]
    assert credentials["clientId"] in body["message"]


def test_create_task_needs_the_scheduler_id_scope(api: Clients, target: Target) -> None:
    """Without `queue:scheduler-id:<schedulerId>` createTask is 403 naming that scope."""
    credentials = target.make_client([s for s in CREATE_TASK_SCOPES if "scheduler-id" not in s])
    body = expect_error(
        403,
        "InsufficientScopes",
        api.queue(credentials).createTask,
        target.new_task_id(),
        target.task_definition(),
    )
    assert f"queue:scheduler-id:{SCHEDULER_ID}" in body["message"]


def test_list_task_group_pages_with_continuation_tokens(api: Clients, target: Target) -> None:
    """listTaskGroup honours `limit` and hands out continuation tokens until all are listed."""
    group = slugid.nice()
    created = {target.create_task(taskGroupId=group) for _ in range(3)}
    whole = api.queue().listTaskGroup(group)
    assert whole["taskGroupId"] == group
    assert {entry["status"]["taskId"] for entry in whole["tasks"]} == created
    assert "continuationToken" not in whole

    seen: list[str] = []
    query: dict[str, Any] = {"limit": 2}
    pages = 0
    while True:
        page = api.queue().listTaskGroup(group, query=query)
        pages += 1
        assert len(page["tasks"]) <= 2
        assert {entry["task"]["taskGroupId"] for entry in page["tasks"]} <= {group}
        seen += [entry["status"]["taskId"] for entry in page["tasks"]]
        if "continuationToken" not in page:
            break
        query = {"limit": 2, "continuationToken": page["continuationToken"]}
    assert pages >= 2
    assert sorted(seen) == sorted(created)

    collected: list[str] = []
    api.queue().listTaskGroup(
        group,
        paginationHandler=lambda page: collected.extend(
            t["status"]["taskId"] for t in page["tasks"]
        ),
        paginationLimit=1,
    )
    assert sorted(collected) == sorted(created)


def test_list_task_group_of_an_unknown_group_is_404(api: Clients) -> None:
    """A task group nobody created is 404."""
    expect_error(404, "ResourceNotFound", api.queue().listTaskGroup, slugid.nice())


def test_cancel_task_resolves_exception_canceled(api: Clients, target: Target) -> None:
    """cancelTask resolves the pending run as exception/canceled; cancelling again is a no-op."""
    task_id = target.create_task()
    status = api.queue().cancelTask(task_id)["status"]
    assert status["state"] == "exception"
    assert status["runs"][-1]["state"] == "exception"
    assert status["runs"][-1]["reasonResolved"] == "canceled"
    again = api.queue().cancelTask(task_id)["status"]
    assert again == status
    assert api.queue().status(task_id)["status"] == status


def test_cancel_task_needs_scopes(api: Clients, target: Target) -> None:
    """A client without a cancel scope for the task gets 403 naming the task's cancel scope."""
    task_id = target.create_task()
    credentials = target.make_client([f"queue:status:{task_id}"])
    body = expect_error(403, "InsufficientScopes", api.queue(credentials).cancelTask, task_id)
    assert f"queue:cancel-task:{SCHEDULER_ID}/{task_id}/{task_id}" in body["message"]
    assert api.queue().status(task_id)["status"]["state"] == "pending"


def test_cancel_unknown_task_is_404(api: Clients) -> None:
    """Cancelling a task that does not exist is 404."""
    expect_error(404, "ResourceNotFound", api.queue().cancelTask, slugid.nice())


def test_list_dependent_tasks(api: Clients, target: Target) -> None:
    """Tasks naming a dependency are listed under it, unscheduled until it completes."""
    first = target.create_task()
    dependents = {target.create_task(dependencies=[first]) for _ in range(2)}
    reply = api.queue().listDependentTasks(first)
    assert reply["taskId"] == first
    assert {entry["status"]["taskId"] for entry in reply["tasks"]} == dependents
    assert {entry["status"]["state"] for entry in reply["tasks"]} == {"unscheduled"}
    assert all(entry["task"]["dependencies"] == [first] for entry in reply["tasks"])
    assert api.queue().listDependentTasks(next(iter(dependents)))["tasks"] == []

    page = api.queue().listDependentTasks(first, query={"limit": 1})
    assert len(page["tasks"]) == 1
    rest = api.queue().listDependentTasks(
        first, query={"limit": 1, "continuationToken": page["continuationToken"]}
    )
    assert {
        page["tasks"][0]["status"]["taskId"],
        rest["tasks"][0]["status"]["taskId"],
    } == dependents


def test_dependencies_must_exist(api: Clients, target: Target) -> None:
    """A dependency on a task that does not exist is a 400 InputError."""
    definition = target.task_definition(dependencies=[slugid.nice()])
    expect_error(400, "InputError", api.queue().createTask, target.new_task_id(), definition)


def test_get_and_seal_a_task_group(api: Clients, target: Target) -> None:
    """getTaskGroup describes the group; once sealed it takes no new tasks (409)."""
    group = slugid.nice()
    created = [target.create_task(taskGroupId=group) for _ in range(2)]
    described = api.queue().getTaskGroup(group)
    assert (described["taskGroupId"], described["schedulerId"]) == (group, SCHEDULER_ID)
    assert "sealed" not in described
    for task_id in created:
        task_expires = parse_iso(api.queue().task(task_id)["expires"])
        assert parse_iso(described["expires"]) >= task_expires

    sealed = api.queue().sealTaskGroup(group)
    assert sealed["taskGroupId"] == group
    assert "sealed" in sealed
    assert api.queue().getTaskGroup(group)["sealed"] == sealed["sealed"]
    assert api.queue().sealTaskGroup(group) == sealed
    late = target.task_definition(taskGroupId=group)
    expect_error(409, "RequestConflict", api.queue().createTask, target.new_task_id(), late)
    assert len(api.queue().listTaskGroup(group)["tasks"]) == 2
    expect_error(404, "ResourceNotFound", api.queue().getTaskGroup, slugid.nice())


def test_sealed_is_the_time_of_sealing(api: Clients, target: Target) -> None:
    """A sealed group's `sealed` is the moment it was sealed."""
    group = slugid.nice()
    target.create_task(taskGroupId=group)
    before = target.now() - timedelta(minutes=1)
    sealed = parse_iso(api.queue().sealTaskGroup(group)["sealed"])
    assert before <= sealed <= target.now() + timedelta(minutes=1)


# -- with a worker: the emulator's control surface, or the queue's worker API ------------------


def test_completing_a_dependency_schedules_its_dependents(api: Clients, target: Target) -> None:
    """When the dependency completes, an `all-completed` dependent becomes pending.

    A deployment's dependency resolver does this in the background, a few seconds later.
    """
    first = target.create_task()
    second = target.create_task(dependencies=[first])
    assert api.queue().status(second)["status"]["state"] == "unscheduled"
    target.resolve_task(first, "completed")
    assert api.queue().status(first)["status"]["state"] == "completed"
    status = eventually(
        lambda: api.queue().status(second)["status"],
        lambda status: status["state"] != "unscheduled",
        f"the dependent task {second} to be scheduled",
    )
    assert status["state"] == "pending"
    assert status["runs"][0]["reasonCreated"] == "scheduled"


def test_cancel_task_group_once_sealed_cancels_its_unresolved_tasks(
    api: Clients, target: Target
) -> None:
    """cancelTaskGroup: 404 for an unknown group, 409 until the group is sealed, then (given
    `queue:cancel-task-group:<schedulerId>/<taskGroupId>`) every unscheduled, pending or
    running task resolves exception/canceled; the reply lists only those, and the group's size."""
    expect_error(404, "ResourceNotFound", api.queue().cancelTaskGroup, slugid.nice())
    group = slugid.nice()
    done, running, pending = (target.create_task(taskGroupId=group) for _ in range(3))
    waiting = target.create_task(taskGroupId=group, dependencies=[running])
    target.resolve_task(done, "completed")
    target.run_task(running)
    expect_error(409, "RequestConflict", api.queue().cancelTaskGroup, group)
    api.queue().sealTaskGroup(group)
    credentials = target.make_client([f"queue:status:{pending}"])
    body = expect_error(403, "InsufficientScopes", api.queue(credentials).cancelTaskGroup, group)
    assert f"queue:cancel-task-group:{SCHEDULER_ID}/{group}" in body["message"]
    assert api.queue().status(pending)["status"]["state"] == "pending"

    reply = api.queue().cancelTaskGroup(group)
    assert (reply["taskGroupId"], reply["taskGroupSize"]) == (group, 4)
    assert reply["cancelledCount"] == 3
    assert sorted(reply["taskIds"]) == sorted([running, pending, waiting])
    for task_id in (running, pending, waiting):
        status = api.queue().status(task_id)["status"]
        assert (status["state"], status["runs"][-1]["reasonResolved"]) == ("exception", "canceled")
    assert api.queue().status(done)["status"]["state"] == "completed"
    again = api.queue().cancelTaskGroup(group)
    assert (again["cancelledCount"], again["taskIds"]) == (0, [])


def test_artifacts_of_the_latest_run(api: Clients, target: Target) -> None:
    """listLatestArtifacts, getLatestArtifact (303 body) and latestArtifact agree on content."""
    task_id = target.create_task()
    target.run_task(task_id)
    target.add_artifact(task_id, "public/build/result.json", {"ok": True}, "application/json")
    target.add_artifact(task_id, "public/logs/live.log", "all good\n", "text/plain")

    listing = api.queue().listLatestArtifacts(task_id)
    assert [a["name"] for a in listing["artifacts"]] == [
        "public/build/result.json",
        "public/logs/live.log",
    ]
    assert listing["artifacts"][0]["contentType"] == "application/json"
    first = api.queue().listLatestArtifacts(task_id, query={"limit": 1})
    assert [a["name"] for a in first["artifacts"]] == ["public/build/result.json"]
    second = api.queue().listLatestArtifacts(
        task_id, query={"continuationToken": first["continuationToken"]}
    )
    assert [a["name"] for a in second["artifacts"]] == ["public/logs/live.log"]

    redirect = api.queue().getLatestArtifact(task_id, "public/build/result.json")
    assert redirect["storageType"] == "s3"
    assert requests.get(redirect["url"], timeout=10).json() == {"ok": True}
    content = api.queue().latestArtifact(task_id, "public/logs/live.log")
    assert content["storageType"] == "s3"
    assert requests.get(content["url"], timeout=10).text == "all good\n"

    expect_error(404, "ResourceNotFound", api.queue().getLatestArtifact, task_id, "public/nope")
    expect_error(404, "ResourceNotFound", api.queue().latestArtifact, task_id, "public/nope")


def test_private_artifacts_need_the_get_artifact_scope(api: Clients, target: Target) -> None:
    """getLatestArtifact of a private artifact needs `queue:get-artifact:<name>` (else 403)."""
    task_id = target.create_task()
    target.run_task(task_id)
    target.add_artifact(task_id, "private/secret.txt", "s3cr3t", "text/plain")
    reader = target.make_client(["queue:get-artifact:public/*"])
    body = expect_error(
        403,
        "InsufficientScopes",
        api.queue(reader).getLatestArtifact,
        task_id,
        "private/secret.txt",
    )
    assert "queue:get-artifact:private/secret.txt" in body["message"]
    allowed = target.make_client(["queue:get-artifact:private/*"])
    url = api.queue(allowed).getLatestArtifact(task_id, "private/secret.txt")["url"]
    assert requests.get(url, timeout=10).text == "s3cr3t"


def test_artifacts_of_a_given_run(api: Clients, target: Target) -> None:
    """listArtifacts, getArtifact, artifact and artifactInfo address one run's artifacts."""
    task_id = target.create_task()
    target.run_task(task_id)
    name = "public/result.txt"
    target.add_artifact(task_id, name, "run zero\n", "text/plain")
    assert [a["name"] for a in api.queue().listArtifacts(task_id, 0)["artifacts"]] == [name]
    url = api.queue().getArtifact(task_id, 0, name)["url"]
    assert requests.get(url, timeout=10).text == "run zero\n"
    assert api.queue().artifact(task_id, 0, name)["url"] == url
    info = api.queue().artifactInfo(task_id, 0, name)
    assert (info["name"], info["storageType"]) == (name, "s3")
    assert info["contentType"].startswith("text/plain")
    assert api.queue().latestArtifactInfo(task_id, name) == info
    expect_error(404, "ResourceNotFound", api.queue().listArtifacts, task_id, 1)
    expect_error(404, "ResourceNotFound", api.queue().getArtifact, task_id, 1, name)
    expect_error(404, "ResourceNotFound", api.queue().artifactInfo, task_id, 0, "public/nope")


def test_artifacts_of_a_task_without_runs_are_404(api: Clients, target: Target) -> None:
    """A task whose dependency is unresolved has no run, so no artifacts (404)."""
    first = target.create_task()
    second = target.create_task(dependencies=[first])
    expect_error(404, "ResourceNotFound", api.queue().getLatestArtifact, second, "public/x")
    expect_error(404, "ResourceNotFound", api.queue().listLatestArtifacts, second)


# -- needs the emulator's clock ----------------------------------------------------------------


def test_deadline_resolves_an_unfinished_task(api: Clients, target: Target) -> None:
    """Past its deadline an unresolved task is exception/deadline-exceeded."""
    emulator = target.require_control()
    task_id = target.create_task()
    emulator.clock.advance(timedelta(hours=2))
    status = api.queue().status(task_id)["status"]
    assert status["state"] == "exception"
    assert status["runs"][-1]["reasonResolved"] == "deadline-exceeded"


def test_retrying_create_task_after_15_minutes_is_rejected(api: Clients, target: Target) -> None:
    """Re-sending an identical createTask 20 minutes later fails the `created` drift rule."""
    emulator = target.require_control()
    task_id = target.new_task_id()
    definition = target.task_definition()
    api.queue().createTask(task_id, definition)
    emulator.clock.advance(timedelta(minutes=20))
    expect_error(400, "InputError", api.queue().createTask, task_id, definition)


def test_cancel_after_the_deadline_is_409(api: Clients, target: Target) -> None:
    """A task cannot be cancelled once its deadline has passed (409)."""
    emulator = target.require_control()
    task_id = target.create_task()
    emulator.clock.advance(timedelta(hours=2))
    expect_error(409, "RequestConflict", api.queue().cancelTask, task_id)
