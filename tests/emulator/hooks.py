"""The emulated hooks service: hook definitions, triggering with JSON-e, and the record of fires.

A trigger renders the hook's task template and creates the task with the scopes of the role
`hook-id:<hookGroupId>/<hookId>`, as the real service does. Schedule entries are checked and the
next scheduled date kept as the real service does (cron_parser.py), but the emulator never fires
a schedule: tc-scheduler, the scheduler under test, fires hooks itself.

As in the real service, a fire is recorded (newest first in `listLastFires`) before triggerHook
answers, keyed by its taskId: a payload may name the taskId (`payload.taskId`), and a second
fire of the same hook with that taskId is refused without a second record.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jsone
import jsonschema
import slugid

from tests.emulator import cron_parser
from tests.emulator.api import ApiError, Call, Handler, paginate
from tests.emulator.clock import format_time
from tests.support import corpus

DEFAULT_TRIGGER_SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False}
# The real service's words when listLastFires finds nothing (it does not tell the two apart).
NO_FIRES = "No such hook or never fired"

# (task id, definition, role id, now) -> the created task's state; raises ApiError.
CreateTask = Callable[[str, dict[str, Any], str, datetime], str]


@dataclass
class Hook:
    group_id: str
    hook_id: str
    definition: dict[str, Any]
    next_scheduled: datetime = cron_parser.FUTURE
    fires: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"hookGroupId": self.group_id, "hookId": self.hook_id, **self.definition}


class Hooks:
    def __init__(self, create_task: CreateTask) -> None:
        self.hooks: dict[tuple[str, str], Hook] = {}
        self._create_task = create_task

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "listHookGroups": self.list_hook_groups,
            "listHooks": self.list_hooks,
            "hook": self.get_hook,
            "getHookStatus": self.get_hook_status,
            "createHook": self.create_hook,
            "updateHook": self.update_hook,
            "removeHook": self.remove_hook,
            "triggerHook": self.trigger_hook,
            "listLastFires": self.list_last_fires,
        }

    def _hook(self, call: Call) -> Hook:
        key = (call.params["hookGroupId"], call.params["hookId"])
        hook = self.hooks.get(key)
        if hook is None:
            raise ApiError("ResourceNotFound", f"hook {key[0]}/{key[1]} not found")
        return hook

    def list_hook_groups(self, call: Call) -> Any:
        return {"groups": sorted({group for group, _ in self.hooks})}

    def list_hooks(self, call: Call) -> Any:
        group = call.params["hookGroupId"]
        hooks = [hook.describe() for (g, _), hook in sorted(self.hooks.items()) if g == group]
        if not hooks:
            raise ApiError("ResourceNotFound", f"no hooks in group {group}")
        return {"hooks": hooks}

    def get_hook(self, call: Call) -> Any:
        return self._hook(call).describe()

    def get_hook_status(self, call: Call) -> Any:
        hook = self._hook(call)
        reply: dict[str, Any] = {"lastFire": _last_fire(hook)}
        if hook.definition["schedule"]:
            if hook.next_scheduled <= call.now:
                # A deployment's scheduler would have fired the hook and moved its date on.
                hook.next_scheduled = _next_scheduled(hook.definition, call.now)
            reply["nextScheduledDate"] = format_time(hook.next_scheduled)
        return reply

    def _definition(self, call: Call) -> dict[str, Any]:
        body = copy.deepcopy(call.body)
        for name in ("hookGroupId", "hookId"):
            if name in body and body.pop(name) != call.params[name]:
                raise ApiError("InputError", f"{name} in the body does not match the URL")
        body.setdefault("schedule", [])
        body.setdefault("triggerSchema", DEFAULT_TRIGGER_SCHEMA)
        body.setdefault("bindings", [])
        for entry in body["schedule"]:
            try:
                cron_parser.parse(entry)
            except cron_parser.CronError as error:
                raise ApiError("InputError", f"{error} in {entry}") from None
        try:
            jsonschema.Draft7Validator.check_schema(body["triggerSchema"])
        except jsonschema.SchemaError as error:
            raise ApiError(
                "InputError", f"triggerSchema is not a valid JSON schema: {error.message}"
            ) from None
        return dict(body)

    def create_hook(self, call: Call) -> Any:
        key = (call.params["hookGroupId"], call.params["hookId"])
        definition = self._definition(call)
        next_scheduled = _next_scheduled(definition, call.now)
        existing = self.hooks.get(key)
        if existing is not None:
            if existing.definition == definition:
                return existing.describe()
            raise ApiError("RequestConflict", f"hook {key[0]}/{key[1]} already exists")
        hook = self.hooks[key] = Hook(*key, definition, next_scheduled)
        return hook.describe()

    def update_hook(self, call: Call) -> Any:
        hook = self._hook(call)
        definition = self._definition(call)
        hook.next_scheduled = _next_scheduled(definition, call.now)
        hook.definition = definition
        return hook.describe()

    def remove_hook(self, call: Call) -> Any:
        # Idempotent, like the real service: removing a hook that is not there is fine.
        self.hooks.pop((call.params["hookGroupId"], call.params["hookId"]), None)
        return {}

    def trigger_hook(self, call: Call) -> Any:
        hook = self._hook(call)
        errors = sorted(
            jsonschema.Draft7Validator(hook.definition["triggerSchema"]).iter_errors(call.body),
            key=lambda error: list(error.absolute_path),
        )
        if errors:
            details = "; ".join(
                f"{'/'.join(map(str, e.absolute_path)) or 'payload'}: {e.message}" for e in errors
            )
            raise ApiError(
                "InputError", f"the payload does not match the hook's triggerSchema: {details}"
            )
        task_id = _requested_task_id(call.body) or slugid.nice()
        context = {
            "firedBy": "triggerHook",
            "payload": call.body,
            "clientId": call.identity.client_id,
            "taskId": task_id,
            "now": format_time(call.now),
        }
        try:
            task = jsone.render(hook.definition["task"], context)
        except jsone.JSONTemplateError as error:
            self._record(hook, call.now, task_id, error=str(error))
            raise ApiError("InputError", f"While firing hook:\n\n{error}") from None
        if _falsy(task):
            # The service records nothing when the template renders nothing (a declined fire).
            return {}
        if not isinstance(task, dict):
            problem = "the hook's task template must render an object"
            self._record(hook, call.now, task_id, error=problem)
            raise ApiError("InputError", f"While firing hook:\n\n{problem}")
        task.setdefault("created", format_time(call.now))
        task.setdefault("deadline", format_time(call.now + timedelta(days=1)))
        task.setdefault("expires", format_time(call.now + timedelta(days=30)))
        role = f"hook-id:{hook.group_id}/{hook.hook_id}"
        try:
            state = self._create_task(task_id, task, role, call.now)
        except ApiError as error:
            self._record(hook, call.now, task_id, error=_create_task_error(error))
            if error.code == "InsufficientScopes":
                raise ApiError(
                    error.code,
                    f"The role `{role}` does not have sufficient scopes to create the task:\n\n"
                    f"{error.message}",
                ) from None
            # Every other refusal of createTask comes back as the hooks service's InputError.
            raise ApiError(
                "InputError", f"While calling createTask: {error.code}\n\n{error.message}"
            ) from None
        self._record(hook, call.now, task_id, state=state)
        return {"taskId": task_id, "status": {"taskId": task_id}}

    def _record(
        self,
        hook: Hook,
        now: datetime,
        task_id: str,
        *,
        state: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record a fire, keyed (as in the real table) by hook and taskId: a second record of
        the same taskId fails the trigger, whatever else happened, and is not kept."""
        if any(fire["taskId"] == task_id for fire in hook.fires):
            raise ApiError(
                "InputError",
                "While firing hook:\n\nerror: duplicate key value violates unique constraint "
                f'"hooks_last_fires_pkey"\nDETAIL: Key (hook_group_id, hook_id, task_id)=('
                f"{hook.group_id}, {hook.hook_id}, {task_id}) already exists.",
            )
        hook.fires.append(
            {
                "hookGroupId": hook.group_id,
                "hookId": hook.hook_id,
                "firedBy": "triggerHook",
                "taskId": task_id,
                "taskCreateTime": format_time(now),
                "result": "error" if error else "success",
                "error": error or "",
                "taskState": state or "unknown",
            }
        )

    def list_last_fires(self, call: Call) -> Any:
        # The real service reads the fires alone: a hook that is not there has none.
        hook = self.hooks.get((call.params["hookGroupId"], call.params["hookId"]))
        fires = list(reversed(hook.fires)) if hook is not None else []
        try:
            page, token = paginate(call, fires)
        except ApiError as error:
            if "continuationToken" in error.message:
                raise ApiError("InputError", "Invalid continuation token") from None
            raise
        if not page:
            raise ApiError("ResourceNotFound", NO_FIRES)
        reply: dict[str, Any] = {"lastFires": page}
        if token:
            reply["continuationToken"] = token
        return reply


def _last_fire(hook: Hook) -> dict[str, Any]:
    if not hook.fires:
        return {"result": "no-fire"}
    last = hook.fires[-1]
    if last["result"] == "success":
        return {"result": "success", "taskId": last["taskId"], "time": last["taskCreateTime"]}
    try:
        error = json.loads(last["error"])
    except ValueError:
        error = None
    if not isinstance(error, dict):  # the service parses the recorded error when it can
        error = {"message": last["error"]}
    return {"result": "error", "error": error, "time": last["taskCreateTime"]}


def _requested_task_id(payload: Any) -> str | None:
    """The taskId a trigger's payload asks for (`payload.taskId`, when set), or None.

    The service takes any value JavaScript finds true and checks it against its slugid pattern.
    """
    value = payload.get("taskId") if isinstance(payload, dict) else None
    if _falsy(value):
        return None
    if not isinstance(value, str) or _task_id_pattern().fullmatch(value) is None:
        shown = value if isinstance(value, str) else json.dumps(value)
        raise ApiError("InputError", f"Invalid taskId format: {shown}")
    return value


@functools.cache
def _task_id_pattern() -> re.Pattern[str]:
    """The slugid pattern the hooks service checks a requested taskId with (its schemas')."""
    schema = corpus.served_schemas()["/schemas/queue/v1/task-status.json"]
    return re.compile(schema["properties"]["taskId"]["pattern"])


def _falsy(value: Any) -> bool:
    """Whether JavaScript finds `value` false (null, false, 0, ""; never an object or array):
    the service's test both for a declined fire (the rendered task) and for `payload.taskId`."""
    return not isinstance(value, (dict, list)) and not value


def _create_task_error(error: ApiError) -> str:
    """How the service records a createTask refusal in the fire: the client error, as JSON."""
    body = {"code": error.code, "message": error.message}
    recorded = {**body, "name": "Error", "statusCode": error.status, "body": body}
    return json.dumps(recorded, indent=2)


def _next_scheduled(definition: Mapping[str, Any], now: datetime) -> datetime:
    try:
        return cron_parser.next_date(definition["schedule"], now)
    except cron_parser.NextDateError as error:
        # The hooks service does not catch this either: the call fails as an internal error.
        raise ApiError(
            "InternalServerError", f"computing the hook's next scheduled date failed: {error}"
        ) from None
