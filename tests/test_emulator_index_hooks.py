"""The emulated index and hooks services, through the real taskcluster client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import slugid
import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure

from tests.emulator import Emulator
from tests.emulator.clock import format_time
from tests.support.emulated import task_definition


def rejected(call, *args, **kwargs) -> TaskclusterRestFailure:
    with pytest.raises(TaskclusterRestFailure) as raised:
        call(*args, **kwargs)
    return raised.value


@pytest.fixture
def index(emulator: Emulator) -> taskcluster.Index:
    return taskcluster.Index(emulator.options(maxRetries=0))


@pytest.fixture
def hooks(emulator: Emulator) -> taskcluster.Hooks:
    return taskcluster.Hooks(emulator.options(maxRetries=0))


def insert(index: taskcluster.Index, emulator: Emulator, namespace: str, rank: int = 0, **kw: Any):
    expires = kw.pop("expires", emulator.clock.now() + timedelta(days=30))
    body = {
        "taskId": kw.pop("task_id", slugid.nice()),
        "rank": rank,
        "data": kw,
        "expires": format_time(expires),
    }
    return index.insertTask(namespace, body)


def test_insert_and_find(emulator: Emulator, index) -> None:
    inserted = insert(
        index, emulator, "tcs.cache.level-3.toolchains.v3.linux64-clang.latest", digest="ab"
    )
    found = index.findTask("tcs.cache.level-3.toolchains.v3.linux64-clang.latest")
    assert found == inserted
    assert found["data"] == {"digest": "ab"}


def test_lower_rank_does_not_replace(emulator: Emulator, index) -> None:
    first = insert(index, emulator, "a.b", rank=5)
    assert insert(index, emulator, "a.b", rank=4)["taskId"] == first["taskId"]
    replaced = insert(index, emulator, "a.b", rank=5)
    assert index.findTask("a.b")["taskId"] == replaced["taskId"] != first["taskId"]


def test_find_after_expiry_is_404(emulator: Emulator, index) -> None:
    insert(index, emulator, "a.b", expires=emulator.clock.now() + timedelta(hours=1))
    emulator.clock.advance(timedelta(hours=2))
    error = rejected(index.findTask, "a.b")
    assert (error.status_code, error.body["code"]) == (404, "ResourceNotFound")
    assert index.listTasks("a")["tasks"] == []
    assert index.listNamespaces("")["namespaces"] == []


def test_namespaces_and_tasks_list_one_level(emulator: Emulator, index) -> None:
    for path in ("p.one.x", "p.one.y", "p.two.z", "p.t"):
        insert(index, emulator, path)
    assert [n["namespace"] for n in index.listNamespaces("p")["namespaces"]] == ["p.one", "p.two"]
    assert [t["namespace"] for t in index.listTasks("p")["tasks"]] == ["p.t"]
    assert [n["name"] for n in index.listNamespaces("")["namespaces"]] == ["p"]


def test_100000_entries_page_by_1000(emulator: Emulator, index) -> None:
    expires = emulator.clock.now() + timedelta(days=30)
    with emulator.lock:
        for number in range(100_000):
            emulator.index.insert(f"big.{number:06d}", "fbjLSZ6jQxOBPO_A3SOcgw", expires=expires)
    first = index.listTasks("big", query={"limit": 5000})
    assert len(first["tasks"]) == 1000
    names: list[str] = []
    index.listTasks(
        "big", paginationHandler=lambda page: names.extend(t["namespace"] for t in page["tasks"])
    )
    assert len(names) == 100_000
    assert names == sorted(names)
    assert names[-1] == "big.099999"


def test_completed_task_with_index_routes_is_indexed(emulator: Emulator, index) -> None:
    queue = taskcluster.Queue(emulator.options())
    task_id = slugid.nice()
    routes = ["index.tcs.v2.proj.revision.abc.taskgraph.decision", "tc-treeherder.v2.proj.abc"]
    queue.createTask(task_id, task_definition(emulator.clock.now(), routes=routes))
    rejected(index.findTask, "tcs.v2.proj.revision.abc.taskgraph.decision")
    emulator.resolve_task(task_id, "completed")
    found = index.findTask("tcs.v2.proj.revision.abc.taskgraph.decision")
    assert found["taskId"] == task_id
    assert found["expires"] == queue.task(task_id)["expires"]


def test_failed_task_is_not_indexed(emulator: Emulator, index) -> None:
    queue = taskcluster.Queue(emulator.options())
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now(), routes=["index.x.y"]))
    emulator.resolve_task(task_id, "failed")
    assert rejected(index.findTask, "x.y").status_code == 404


def test_find_artifact_from_task_redirects(emulator: Emulator, index) -> None:
    queue = taskcluster.Queue(emulator.options())
    task_id = slugid.nice()
    queue.createTask(task_id, task_definition(emulator.clock.now()))
    emulator.add_artifact(task_id, "public/actions.json", {"version": 1})
    insert(index, emulator, "p.decision", task_id=task_id)
    url = index.buildUrl("findArtifactFromTask", "p.decision", "public/actions.json")
    assert requests.get(url, timeout=10).json() == {"version": 1}


def hook_definition(emulator: Emulator, **overrides: Any) -> dict[str, Any]:
    template = task_definition(emulator.clock.now())
    template["created"] = {"$fromNow": "0 seconds"}
    template["deadline"] = {"$fromNow": "1 hour"}
    template["payload"] = {"input": {"$eval": "payload"}, "firedBy": "${firedBy}"}
    return {
        "metadata": {
            "name": "test hook",
            "description": "d",
            "owner": "o@example.com",
            "emailOnError": False,
        },
        "task": template,
        "triggerSchema": {
            "type": "object",
            "properties": {"kind": {"type": "string", "enum": ["rebuild", "nightly"]}},
            "required": ["kind"],
            "additionalProperties": False,
        },
    } | overrides


def test_hook_lifecycle(emulator: Emulator, hooks) -> None:
    created = hooks.createHook("project-releng", "cron/nightly", hook_definition(emulator))
    assert (created["hookGroupId"], created["hookId"], created["schedule"]) == (
        "project-releng",
        "cron/nightly",
        [],
    )
    assert hooks.hook("project-releng", "cron/nightly") == created
    assert hooks.listHookGroups() == {"groups": ["project-releng"]}
    assert [h["hookId"] for h in hooks.listHooks("project-releng")["hooks"]] == ["cron/nightly"]
    updated = hooks.updateHook(
        "project-releng", "cron/nightly", hook_definition(emulator, schedule=["0 0 * * *"])
    )
    assert updated["schedule"] == ["0 0 * * *"]
    assert (
        rejected(
            hooks.createHook, "project-releng", "cron/nightly", hook_definition(emulator)
        ).status_code
        == 409
    )
    hooks.removeHook("project-releng", "cron/nightly")
    assert rejected(hooks.hook, "project-releng", "cron/nightly").status_code == 404
    assert rejected(hooks.listHooks, "project-releng").status_code == 404


def test_trigger_renders_the_template_with_the_hook_role(emulator: Emulator, hooks) -> None:
    hooks.createHook("g", "h", hook_definition(emulator))
    emulator.set_role("hook-id:g/h", ["queue:create-task:*", "queue:scheduler-id:-"])
    assert hooks.getHookStatus("g", "h") == {"lastFire": {"result": "no-fire"}}
    assert rejected(hooks.listLastFires, "g", "h").status_code == 404
    fired = hooks.triggerHook("g", "h", {"kind": "rebuild"})
    task = taskcluster.Queue(emulator.options()).task(fired["taskId"])
    assert task["payload"] == {"input": {"kind": "rebuild"}, "firedBy": "triggerHook"}
    assert task["expires"]  # defaulted by the hooks service
    fires = hooks.listLastFires("g", "h")["lastFires"]
    assert [(f["taskId"], f["result"]) for f in fires] == [(fired["taskId"], "success")]
    assert hooks.getHookStatus("g", "h")["lastFire"]["taskId"] == fired["taskId"]


def test_trigger_rejects_a_payload_outside_the_trigger_schema(emulator: Emulator, hooks) -> None:
    hooks.createHook("g", "h", hook_definition(emulator))
    emulator.set_role("hook-id:g/h", ["queue:create-task:*", "queue:scheduler-id:-"])
    error = rejected(hooks.triggerHook, "g", "h", {"kind": "other"})
    assert (error.status_code, error.body["code"]) == (400, "InputError")
    assert "kind" in error.body["message"]
    assert emulator.tasks() == []


def test_trigger_without_role_scopes_fails_and_is_recorded(emulator: Emulator, hooks) -> None:
    hooks.createHook("g", "h", hook_definition(emulator))
    error = rejected(hooks.triggerHook, "g", "h", {"kind": "nightly"})
    assert error.status_code == 403
    fires = hooks.listLastFires("g", "h")["lastFires"]
    assert fires[0]["result"] == "error"
    assert "scopes" in fires[0]["error"]


def test_trigger_needs_the_callers_trigger_scope(emulator: Emulator) -> None:
    taskcluster.Hooks(emulator.options()).createHook("g", "h", hook_definition(emulator))
    other = emulator.add_client("other", ["hooks:trigger-hook:g/other"])
    error = rejected(
        taskcluster.Hooks(emulator.options(other, maxRetries=0)).triggerHook,
        "g",
        "h",
        {"kind": "nightly"},
    )
    assert error.status_code == 403
    assert "hooks:trigger-hook:g/h" in error.body["message"]


def test_create_hook_needs_to_assume_the_hook_role(emulator: Emulator) -> None:
    modifier = emulator.add_client("modifier", ["hooks:modify-hook:g/*"])
    client = taskcluster.Hooks(emulator.options(modifier, maxRetries=0))
    error = rejected(client.createHook, "g", "h", hook_definition(emulator))
    assert error.status_code == 403
    assert "assume:hook-id:g/h" in error.body["message"]


def test_template_rendering_nothing_creates_no_task(emulator: Emulator, hooks) -> None:
    definition = hook_definition(
        emulator,
        task={"$if": "payload.kind == 'rebuild'", "then": hook_definition(emulator)["task"]},
    )
    hooks.createHook("g", "h", definition)
    emulator.set_role("hook-id:g/h", ["queue:create-task:*", "queue:scheduler-id:-"])
    assert hooks.triggerHook("g", "h", {"kind": "nightly"}) == {}
    assert emulator.tasks() == []


def test_schedules_are_checked_as_the_hooks_service_does(emulator: Emulator, hooks) -> None:
    for schedule, accepted in ((["0 0 * * *"], True), (["0 0 0 * * * *"], False)):
        definition = hook_definition(emulator, schedule=schedule)
        if accepted:
            assert hooks.createHook("g", "ok", definition)["schedule"] == schedule
        else:
            error = rejected(hooks.createHook, "g", "bad", definition)
            assert (error.status_code, error.body["code"]) == (400, "InputError")
            assert error.body["message"].startswith(
                "Invalid cron expression, too many fields in 0 0 0 * * * *"
            )
    error = rejected(
        hooks.updateHook, "g", "ok", hook_definition(emulator, schedule=["60 * * * *"])
    )
    assert error.status_code == 400
    assert hooks.hook("g", "ok")["schedule"] == ["0 0 * * *"]


def test_hook_status_gives_the_next_scheduled_date(emulator: Emulator, hooks) -> None:
    emulator.clock.set(datetime(2026, 3, 10, 8, 30, 15, tzinfo=UTC), frozen=True)
    hooks.createHook("g", "h", hook_definition(emulator, schedule=["0 0 12 * * mon#2", "@daily"]))
    assert hooks.getHookStatus("g", "h") == {
        "lastFire": {"result": "no-fire"},
        "nextScheduledDate": "2026-03-11T00:00:00.000Z",
    }
    # The emulator never fires a schedule, but moves the date on as a deployment's scheduler does.
    emulator.clock.set(datetime(2026, 4, 13, 11, 0, tzinfo=UTC), frozen=True)
    assert hooks.getHookStatus("g", "h")["nextScheduledDate"] == "2026-04-13T12:00:00.000Z"
    assert emulator.tasks() == []
    hooks.updateHook("g", "h", hook_definition(emulator))
    assert hooks.getHookStatus("g", "h") == {"lastFire": {"result": "no-fire"}}


def test_a_schedule_cron_parser_cannot_search_is_a_server_error(emulator: Emulator, hooks) -> None:
    # cron-parser parses a bare `L` weekday but throws looking for a date: the service's 500.
    error = rejected(
        hooks.createHook, "g", "h", hook_definition(emulator, schedule=["0 0 0 * * L"])
    )
    assert (error.status_code, error.body["code"]) == (500, "InternalServerError")
    assert rejected(hooks.hook, "g", "h").status_code == 404
