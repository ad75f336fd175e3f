"""Hooks: defining, reading, updating and removing hooks; triggering them and their fires."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conformance.target import (
    HOOK_GROUP,
    OWNER,
    SCHEDULER_ID,
    SCOPE_PREFIX,
    SOURCE,
    TASK_QUEUE_ID,
    Clients,
    Target,
    expect_error,
    expect_scope_needed,
    parse_iso,
    public_and_private,
)

TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
    "additionalProperties": False,
}
# A trigger schema that also lets the payload name the task's id (`payload.taskId`).
TASK_ID_TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "taskId": {"type": "string"}},
    "required": ["message"],
    "additionalProperties": False,
}


def hook_definition(
    *,
    task_scopes: list[str] | None = None,
    name: str = "conformance",
    schedule: list[str] | None = None,
    trigger_schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A createHook request whose task (JSON-e) echoes the trigger payload's message."""
    return {
        "metadata": {
            "name": name,
            "description": "Created by tc-scheduler's conformance tests; safe to delete.",
            "owner": OWNER,
            "emailOnError": False,
        },
        "task": {
            "taskQueueId": TASK_QUEUE_ID,
            "schedulerId": SCHEDULER_ID,
            "scopes": task_scopes or [],
            "payload": {"message": "${payload.message}", "firedBy": "${firedBy}"},
            "deadline": {"$fromNow": "1 hour"},
            "expires": {"$fromNow": "1 day"},
            "metadata": {
                "name": "tc-scheduler conformance hook task",
                "description": "Created by triggering a conformance test hook; nothing runs it.",
                "owner": OWNER,
                "source": SOURCE,
            },
        },
        "triggerSchema": trigger_schema or TRIGGER_SCHEMA,
        # Given explicitly: the real createHook echoes the request (without a default for
        # `bindings`), while `hook` reads back `bindings: []`.
        "bindings": [],
        "schedule": schedule or [],
    }


def make_hook(target: Target, group: str = HOOK_GROUP, **definition: Any) -> str:
    """A hook (made as root) with its `hook-id:` role; both removed at teardown."""
    hook_id = target.hook_id(group)
    target.make_hook_role(group, hook_id)
    target.root("hooks").createHook(group, hook_id, hook_definition(**definition))
    return hook_id


def test_create_hook_and_read_it_back(api: Clients, target: Target) -> None:
    """createHook answers the definition; hook, listHooks and listHookGroups show it."""
    hook_id = target.hook_id()
    target.make_hook_role(HOOK_GROUP, hook_id)
    definition = hook_definition()
    reply = api.hooks().createHook(HOOK_GROUP, hook_id, definition)
    assert (reply["hookGroupId"], reply["hookId"]) == (HOOK_GROUP, hook_id)
    for name in ("metadata", "task", "triggerSchema"):
        assert reply[name] == definition[name], name
    assert (reply["schedule"], reply["bindings"]) == ([], [])

    assert api.hooks().hook(HOOK_GROUP, hook_id) == reply
    listed = api.hooks().listHooks(HOOK_GROUP)["hooks"]
    assert [hook for hook in listed if hook["hookId"] == hook_id] == [reply]
    assert HOOK_GROUP in api.hooks().listHookGroups()["groups"]


def test_create_hook_is_idempotent_and_conflicts_on_change(api: Clients, target: Target) -> None:
    """createHook again with the same definition is fine; with another one it is 409."""
    hook_id = target.hook_id()
    target.make_hook_role(HOOK_GROUP, hook_id)
    first = api.hooks().createHook(HOOK_GROUP, hook_id, hook_definition())
    assert api.hooks().createHook(HOOK_GROUP, hook_id, hook_definition()) == first
    expect_error(
        409,
        "RequestConflict",
        api.hooks().createHook,
        HOOK_GROUP,
        hook_id,
        hook_definition(name="another"),
    )
    assert api.hooks().hook(HOOK_GROUP, hook_id)["metadata"]["name"] == "conformance"


def test_create_hook_needs_to_assume_the_hook_role(api: Clients, target: Target) -> None:
    """createHook needs `assume:hook-id:<group>/<id>` as well as the modify-hook scope."""
    hook_id = target.hook_id()
    credentials = target.make_client([f"hooks:modify-hook:{HOOK_GROUP}/{hook_id}"])
    body = expect_error(
        403,
        "InsufficientScopes",
        api.hooks(credentials).createHook,
        HOOK_GROUP,
        hook_id,
        hook_definition(),
    )
    assert f"assume:hook-id:{HOOK_GROUP}/{hook_id}" in body["message"]
    expect_error(404, "ResourceNotFound", api.hooks().hook, HOOK_GROUP, hook_id)


def test_update_hook(api: Clients, target: Target) -> None:
    """updateHook replaces the definition; updating a hook that does not exist is 404."""
    hook_id = make_hook(target)
    changed = hook_definition(name="renamed")
    changed["triggerSchema"] = {"type": "object"}
    reply = api.hooks().updateHook(HOOK_GROUP, hook_id, changed)
    assert reply["metadata"]["name"] == "renamed"
    assert reply["triggerSchema"] == {"type": "object"}
    assert api.hooks().hook(HOOK_GROUP, hook_id) == reply

    missing = target.hook_id()
    target.make_hook_role(HOOK_GROUP, missing)
    expect_error(404, "ResourceNotFound", api.hooks().updateHook, HOOK_GROUP, missing, changed)


def test_remove_hook_and_the_empty_group(api: Clients, target: Target) -> None:
    """removeHook deletes the hook; listHooks of a group with no hooks is 404."""
    group = target.unique(f"{HOOK_GROUP}-")
    expect_error(404, "ResourceNotFound", api.hooks().listHooks, group)
    hook_id = make_hook(target, group)
    assert [hook["hookId"] for hook in api.hooks().listHooks(group)["hooks"]] == [hook_id]
    api.hooks().removeHook(group, hook_id)
    expect_error(404, "ResourceNotFound", api.hooks().hook, group, hook_id)
    expect_error(404, "ResourceNotFound", api.hooks().listHooks, group)
    assert group not in api.hooks().listHookGroups()["groups"]


def test_trigger_hook_creates_the_task(api: Clients, target: Target) -> None:
    """triggerHook renders the task with the payload and creates it in a new task group."""
    hook_id = make_hook(target)
    reply = api.hooks().triggerHook(HOOK_GROUP, hook_id, {"message": "hello"})
    task_id = reply["taskId"]
    target.track_task(task_id)
    assert reply["status"] == {"taskId": task_id}

    task = api.queue().task(task_id)
    assert task["payload"] == {"message": "hello", "firedBy": "triggerHook"}
    assert (task["taskQueueId"], task["schedulerId"]) == (TASK_QUEUE_ID, SCHEDULER_ID)
    assert task["taskGroupId"] == task_id
    assert api.queue().status(task_id)["status"]["state"] == "pending"


def test_last_fires_and_status_before_and_after_a_fire(api: Clients, target: Target) -> None:
    """listLastFires is 404 before the first fire and lists it after; so does getHookStatus."""
    hook_id = make_hook(target)
    expect_error(404, "ResourceNotFound", api.hooks().listLastFires, HOOK_GROUP, hook_id)
    assert api.hooks().getHookStatus(HOOK_GROUP, hook_id) == {"lastFire": {"result": "no-fire"}}

    task_id = api.hooks().triggerHook(HOOK_GROUP, hook_id, {"message": "hi"})["taskId"]
    target.track_task(task_id)
    fires = api.hooks().listLastFires(HOOK_GROUP, hook_id)["lastFires"]
    assert len(fires) == 1
    fire = fires[0]
    assert (fire["hookGroupId"], fire["hookId"], fire["taskId"]) == (HOOK_GROUP, hook_id, task_id)
    assert (fire["firedBy"], fire["result"]) == ("triggerHook", "success")
    status = api.hooks().getHookStatus(HOOK_GROUP, hook_id)["lastFire"]
    assert (status["result"], status["taskId"]) == ("success", task_id)


def test_trigger_rejects_a_payload_not_matching_the_trigger_schema(
    api: Clients, target: Target
) -> None:
    """A payload the hook's triggerSchema rejects is a 400; no task is created, nothing fired."""
    hook_id = make_hook(target)
    for payload in ({"message": 5}, {}, {"message": "x", "extra": True}):
        body = expect_error(400, None, api.hooks().triggerHook, HOOK_GROUP, hook_id, payload)
        assert body["requestInfo"]["params"] == {"hookGroupId": HOOK_GROUP, "hookId": hook_id}
    expect_error(404, "ResourceNotFound", api.hooks().listLastFires, HOOK_GROUP, hook_id)


def test_trigger_schema_rejection_is_an_input_error(api: Clients, target: Target) -> None:
    """The hooks service reports a payload failing triggerSchema as `InputError`."""
    hook_id = make_hook(target)
    expect_error(400, "InputError", api.hooks().triggerHook, HOOK_GROUP, hook_id, {"message": 5})


def test_trigger_fails_when_the_role_lacks_the_task_scopes(api: Clients, target: Target) -> None:
    """A hook whose task needs scopes its role lacks fails to fire (403), recorded as an error."""
    secret = target.unique(f"{SCOPE_PREFIX}secret:")
    hook_id = make_hook(target, task_scopes=[secret])
    body = expect_error(
        403, "InsufficientScopes", api.hooks().triggerHook, HOOK_GROUP, hook_id, {"message": "x"}
    )
    assert secret in body["message"]
    fires = api.hooks().listLastFires(HOOK_GROUP, hook_id)["lastFires"]
    assert [fire["result"] for fire in fires] == ["error"]
    assert api.hooks().getHookStatus(HOOK_GROUP, hook_id)["lastFire"]["result"] == "error"

    # With the scope added to the role, the same trigger works.
    role_id = f"hook-id:{HOOK_GROUP}/{hook_id}"
    role = target.root("auth").role(role_id)
    target.root("auth").updateRole(role_id, {**target.role_request(role["scopes"] + [secret])})
    task_id = api.hooks().triggerHook(HOOK_GROUP, hook_id, {"message": "x"})["taskId"]
    target.track_task(task_id)
    assert api.queue().task(task_id)["scopes"] == [secret]


def test_trigger_scope_failure_names_the_hook_role(api: Clients, target: Target) -> None:
    """The 403 of a trigger without enough scopes names the role `hook-id:<group>/<id>`."""
    secret = target.unique(f"{SCOPE_PREFIX}secret:")
    hook_id = make_hook(target, task_scopes=[secret])
    body = expect_error(
        403, "InsufficientScopes", api.hooks().triggerHook, HOOK_GROUP, hook_id, {"message": "x"}
    )
    assert f"hook-id:{HOOK_GROUP}/{hook_id}" in body["message"]


def test_create_hook_applies_schema_defaults(api: Clients, target: Target) -> None:
    """Properties left out of createHook come back with the schema's defaults."""
    hook_id = target.hook_id()
    target.make_hook_role(HOOK_GROUP, hook_id)
    definition = copy.deepcopy(hook_definition())
    del definition["metadata"]["emailOnError"]
    del definition["triggerSchema"]
    reply = api.hooks().createHook(HOOK_GROUP, hook_id, definition)
    assert reply["schedule"] == []
    assert reply["triggerSchema"] == {"type": "object", "additionalProperties": False}
    assert reply["metadata"]["emailOnError"] is True


def test_remove_hook_is_idempotent(api: Clients, target: Target) -> None:
    """Removing a hook that is already gone still succeeds."""
    hook_id = make_hook(target)
    assert api.hooks().removeHook(HOOK_GROUP, hook_id) == {}
    assert api.hooks().removeHook(HOOK_GROUP, hook_id) == {}


# -- the record of fires, as tc-scheduler reads it to tell whether a trigger made a task ----------


def trigger(api: Clients, target: Target, hook_id: str, message: str) -> str:
    """Trigger the hook (as root); gives the taskId, whose task is canceled at teardown."""
    task_id = str(api.hooks().triggerHook(HOOK_GROUP, hook_id, {"message": message})["taskId"])
    target.track_task(task_id)
    return task_id


def test_last_fires_are_newest_first_and_listed_once_the_trigger_answers(
    api: Clients, target: Target
) -> None:
    """Each fire is listed as soon as triggerHook has answered (no waiting), newest first, with
    its taskCreateTime in Taskcluster's time format, at the time of the trigger."""
    hook_id = make_hook(target)
    fired: list[str] = []
    earliest = target.now() - CLOCK_SKEW
    for number in range(3):
        fired.append(trigger(api, target, hook_id, f"fire {number}"))
        listed = api.hooks().listLastFires(HOOK_GROUP, hook_id)["lastFires"]
        assert [fire["taskId"] for fire in listed] == fired[::-1]
    latest = target.now() + CLOCK_SKEW
    for fire in listed:
        assert (fire["result"], fire["error"]) == ("success", "")
        assert (fire["firedBy"], fire["taskState"]) == ("triggerHook", "pending")
        assert _DATE_TIME_MS.fullmatch(fire["taskCreateTime"]), fire["taskCreateTime"]
        assert earliest <= parse_iso(fire["taskCreateTime"]) <= latest
    times = [parse_iso(fire["taskCreateTime"]) for fire in listed]
    assert times == sorted(times, reverse=True)


def test_last_fires_come_in_pages(api: Clients, target: Target) -> None:
    """`limit` pages the fires (newest first) with a continuationToken, absent on the last page;
    a token that is not one is a 400 InputError."""
    hook_id = make_hook(target)
    fired = [trigger(api, target, hook_id, f"fire {number}") for number in range(3)]
    first = api.hooks().listLastFires(HOOK_GROUP, hook_id, query={"limit": 2})
    assert [fire["taskId"] for fire in first["lastFires"]] == fired[:0:-1]
    token = first["continuationToken"]
    second = api.hooks().listLastFires(
        HOOK_GROUP, hook_id, query={"limit": 2, "continuationToken": token}
    )
    assert [fire["taskId"] for fire in second["lastFires"]] == fired[:1]
    assert "continuationToken" not in second
    whole = api.hooks().listLastFires(HOOK_GROUP, hook_id)
    assert [fire["taskId"] for fire in whole["lastFires"]] == fired[::-1]
    assert "continuationToken" not in whole
    expect_error(
        400,
        "InputError",
        api.hooks().listLastFires,
        HOOK_GROUP,
        hook_id,
        query={"continuationToken": "!!!"},
    )


@public_and_private
def test_list_last_fires_needs_its_scope(api: Clients, target: Target) -> None:
    """listLastFires needs `hooks:list-last-fires:<group>/<id>` (unless the anonymous role grants
    it); the scope to trigger the hook is not enough."""
    hook_id = make_hook(target)
    task_id = trigger(api, target, hook_id, "hi")
    needed = f"hooks:list-last-fires:{HOOK_GROUP}/{hook_id}"
    trigger_only = target.make_client([f"hooks:trigger-hook:{HOOK_GROUP}/{hook_id}"])
    expect_scope_needed(target, needed, api.hooks(trigger_only).listLastFires, HOOK_GROUP, hook_id)
    reader = api.hooks(target.make_client([needed]))
    assert [fire["taskId"] for fire in reader.listLastFires(HOOK_GROUP, hook_id)["lastFires"]] == [
        task_id
    ]
    # The scope is checked before anything is looked up: for a hook that is not there, too.
    missing = f"{hook_id}-missing"
    if target.anonymous_may(f"hooks:list-last-fires:{HOOK_GROUP}/{missing}"):
        expect_error(
            404, "ResourceNotFound", api.hooks(trigger_only).listLastFires, HOOK_GROUP, missing
        )
    else:
        body = expect_error(
            403, "InsufficientScopes", api.hooks(trigger_only).listLastFires, HOOK_GROUP, missing
        )
        assert f"hooks:list-last-fires:{HOOK_GROUP}/{missing}" in body["message"]


def test_removing_a_hook_forgets_its_fires(api: Clients, target: Target) -> None:
    """A hook removed and made again under the same id has no fires."""
    hook_id = make_hook(target)
    trigger(api, target, hook_id, "hi")
    api.hooks().removeHook(HOOK_GROUP, hook_id)
    expect_error(404, "ResourceNotFound", api.hooks().listLastFires, HOOK_GROUP, hook_id)
    target.root("hooks").createHook(HOOK_GROUP, hook_id, hook_definition())
    expect_error(404, "ResourceNotFound", api.hooks().listLastFires, HOOK_GROUP, hook_id)


def test_a_trigger_payload_can_name_the_task_id(api: Clients, target: Target) -> None:
    """`payload.taskId` (where the trigger schema allows it) is the created task's id; one that
    is not a slugid is a 400 InputError and fires nothing."""
    hook_id = make_hook(target, trigger_schema=TASK_ID_TRIGGER_SCHEMA)
    body = expect_error(
        400,
        "InputError",
        api.hooks().triggerHook,
        HOOK_GROUP,
        hook_id,
        {"message": "x", "taskId": "not-a-slugid"},
    )
    assert "Invalid taskId format: not-a-slugid" in body["message"]
    expect_error(404, "ResourceNotFound", api.hooks().listLastFires, HOOK_GROUP, hook_id)

    wanted = target.new_task_id()
    reply = api.hooks().triggerHook(HOOK_GROUP, hook_id, {"message": "x", "taskId": wanted})
    assert reply == {"taskId": wanted, "status": {"taskId": wanted}}
    task = api.queue().task(wanted)
    assert task["taskGroupId"] == wanted
    assert task["payload"]["message"] == "x"


def test_the_same_task_id_fires_once(api: Clients, target: Target) -> None:
    """A second trigger of the hook naming the same taskId is a 400 InputError: no second task,
    no second fire. Another hook naming it fails too, at createTask, and records an error."""
    hook_id = make_hook(target, trigger_schema=TASK_ID_TRIGGER_SCHEMA)
    wanted = target.new_task_id()
    api.hooks().triggerHook(HOOK_GROUP, hook_id, {"message": "first", "taskId": wanted})
    expect_error(
        400,
        "InputError",
        api.hooks().triggerHook,
        HOOK_GROUP,
        hook_id,
        {"message": "second", "taskId": wanted},
    )
    fires = api.hooks().listLastFires(HOOK_GROUP, hook_id)["lastFires"]
    assert [(fire["taskId"], fire["result"]) for fire in fires] == [(wanted, "success")]
    assert api.queue().task(wanted)["payload"]["message"] == "first"

    other = make_hook(target, trigger_schema=TASK_ID_TRIGGER_SCHEMA)
    body = expect_error(
        400,
        "InputError",
        api.hooks().triggerHook,
        HOOK_GROUP,
        other,
        {"message": "other", "taskId": wanted},
    )
    assert "While calling createTask: RequestConflict" in body["message"], body["message"]
    fires = api.hooks().listLastFires(HOOK_GROUP, other)["lastFires"]
    assert [(fire["taskId"], fire["result"]) for fire in fires] == [(wanted, "error")]
    assert json.loads(fires[0]["error"])["code"] == "RequestConflict"


def test_a_task_the_queue_refuses_is_an_input_error_and_an_error_fire(
    api: Clients, target: Target
) -> None:
    """When createTask refuses the hook's task (other than for scopes), triggerHook answers 400
    InputError naming the queue's error code; the fire is recorded as an error (its `error` the
    queue's error as JSON) with no task, and getHookStatus gives that error as an object."""
    hook_id = target.hook_id()
    target.make_hook_role(HOOK_GROUP, hook_id)
    definition = hook_definition()
    definition["task"]["deadline"] = {"$fromNow": "30 days"}  # the queue allows 5 days at most
    target.root("hooks").createHook(HOOK_GROUP, hook_id, definition)
    body = expect_error(
        400, "InputError", api.hooks().triggerHook, HOOK_GROUP, hook_id, {"message": "x"}
    )
    assert "While calling createTask: InputError" in body["message"], body["message"]
    fires = api.hooks().listLastFires(HOOK_GROUP, hook_id)["lastFires"]
    assert [(fire["result"], fire["taskState"]) for fire in fires] == [("error", "unknown")]
    recorded = json.loads(fires[0]["error"])
    assert (recorded["code"], recorded["statusCode"]) == ("InputError", 400)
    expect_error(404, "ResourceNotFound", api.queue().task, fires[0]["taskId"])
    status = api.hooks().getHookStatus(HOOK_GROUP, hook_id)["lastFire"]
    assert (status["result"], status["error"]["code"]) == ("error", "InputError")


def test_template_errors_are_error_fires_and_declined_fires_are_not_recorded(
    api: Clients, target: Target
) -> None:
    """A task template failing to render is a 400 InputError recorded as an error fire; one
    rendering nothing (null) answers `{}` and records no fire."""
    declining = target.hook_id()
    target.make_hook_role(HOOK_GROUP, declining)
    definition = hook_definition()
    definition["task"] = {"$if": "payload.message == 'go'", "then": definition["task"]}
    target.root("hooks").createHook(HOOK_GROUP, declining, definition)
    assert api.hooks().triggerHook(HOOK_GROUP, declining, {"message": "stay"}) == {}
    expect_error(404, "ResourceNotFound", api.hooks().listLastFires, HOOK_GROUP, declining)

    broken = target.hook_id()
    target.make_hook_role(HOOK_GROUP, broken)
    definition = hook_definition()
    definition["task"]["payload"]["missing"] = {"$eval": "payload.missing.deeper"}
    target.root("hooks").createHook(HOOK_GROUP, broken, definition)
    body = expect_error(
        400, "InputError", api.hooks().triggerHook, HOOK_GROUP, broken, {"message": "x"}
    )
    assert body["message"].startswith("While firing hook:"), body["message"]
    fires = api.hooks().listLastFires(HOOK_GROUP, broken)["lastFires"]
    assert [fire["result"] for fire in fires] == ["error"]
    assert "InterpreterError" in fires[0]["error"], fires[0]["error"]


# -- schedules ----------------------------------------------------------------------------------
#
# The hooks service reads schedule entries with the npm package cron-parser: six fields, seconds
# first, with its aliases, `L`, `#` and quirks. These hooks get no `hook-id:` role, so should
# the deployment's scheduler fire one before it is removed, the fire can create no task.

# How far the target's clock may be from this machine's, for the next-date checks.
CLOCK_SKEW = timedelta(seconds=30)
# Taskcluster's time format (`Date.toJSON()`): UTC, milliseconds, `Z`.
_DATE_TIME_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _midnight_after(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _hour_after(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def _minute_after(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _first_day_after(moment: datetime, hour: int, wanted: Callable[[datetime], bool]) -> datetime:
    day = moment.replace(hour=hour, minute=0, second=0, microsecond=0)
    while day <= moment or not wanted(day):
        day += timedelta(days=1)
    return day


def _last_of_month(day: datetime) -> bool:
    return (day + timedelta(days=1)).day == 1


def _second_monday(day: datetime) -> bool:
    return day.weekday() == 0 and 8 <= day.day <= 14


# entry -> the first time after a moment that it names
SCHEDULES: dict[str, Callable[[datetime], datetime]] = {
    "0 0 0 * * *": _midnight_after,
    "0 0 * * *": _midnight_after,  # five fields: the seconds default to 0
    "@daily": _midnight_after,
    "0 0,0 * * * *": _hour_after,  # a repeated 0 slips past cron-parser's duplicate check
    "0 0-0-5 * * * *": _hour_after,  # a range reads its first two numbers only
    "": _minute_after,  # an empty entry is every minute
    "0 0 0 L * *": lambda moment: _first_day_after(moment, 0, _last_of_month),
    "0 0 12 * * mon#2": lambda moment: _first_day_after(moment, 12, _second_monday),
}

# entry -> what cron-parser says about it (the reply is "<that> in <entry>")
REFUSED = {
    "0 0 0 * * * *": "Invalid cron expression, too many fields",
    "60 * * * * *": "Constraint error, got value 60 expected range 0-59",
    "0 0 0 30 2 *": "Invalid explicit day of month definition",
    "0 0 0 * * 1#6": "Constraint error, invalid dayOfWeek occurrence number (#)",
    "0 0 0 * * foo": 'Validation error, cannot resolve alias "foo"',
    "1,1 * * * * *": "CronSecond Validation error, duplicate values found: 1",
    "0 0 0 LW * *": "Invalid characters, got value: LW",
    "0 10-5 * * * *": "Invalid range: 10-5, min(10) > max(5)",
    "1 1": "Constraint error, got value 0 expected range 1-31",
}


@pytest.mark.parametrize("entry", SCHEDULES)
def test_schedule_entries_give_the_next_scheduled_date(
    api: Clients, target: Target, entry: str
) -> None:
    """createHook takes a cron-parser entry; getHookStatus gives the next time it names."""
    hook_id = target.hook_id()
    earliest = target.now() - CLOCK_SKEW
    reply = api.hooks().createHook(HOOK_GROUP, hook_id, hook_definition(schedule=[entry]))
    status = api.hooks().getHookStatus(HOOK_GROUP, hook_id)
    latest = target.now() + CLOCK_SKEW
    api.hooks().removeHook(HOOK_GROUP, hook_id)
    assert reply["schedule"] == [entry]
    assert status["lastFire"] == {"result": "no-fire"}
    expected = SCHEDULES[entry]
    scheduled = parse_iso(status["nextScheduledDate"])
    assert expected(earliest) <= scheduled <= expected(latest), (entry, scheduled)


@pytest.mark.parametrize("entry", REFUSED)
def test_schedule_entries_cron_parser_refuses_are_400(
    api: Clients, target: Target, entry: str
) -> None:
    """An entry cron-parser cannot parse is a 400 InputError quoting its complaint."""
    hook_id = target.hook_id()
    definition = hook_definition(schedule=["0 0 0 * * *", entry])
    body = expect_error(400, "InputError", api.hooks().createHook, HOOK_GROUP, hook_id, definition)
    assert f"{REFUSED[entry]} in {entry}" in body["message"]
    expect_error(404, "ResourceNotFound", api.hooks().hook, HOOK_GROUP, hook_id)


def test_update_hook_checks_the_schedule(api: Clients, target: Target) -> None:
    """updateHook refuses an unparsable entry too, and leaves the hook as it was."""
    hook_id = make_hook(target)
    body = expect_error(
        400,
        "InputError",
        api.hooks().updateHook,
        HOOK_GROUP,
        hook_id,
        hook_definition(schedule=["0 0 0 * * * *"]),
    )
    assert "too many fields in 0 0 0 * * * *" in body["message"]
    assert api.hooks().hook(HOOK_GROUP, hook_id)["schedule"] == []
    assert "nextScheduledDate" not in api.hooks().getHookStatus(HOOK_GROUP, hook_id)
