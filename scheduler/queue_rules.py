"""What Taskcluster's queue enforces on `createTask`, checked before anything is sent: the
request schema, `metadata.source`, deadline and expiry, and the scopes the call needs. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jsonschema import Draft7Validator

from scheduler.cron import parse_instant
from scheduler.scopes import satisfies

PRIORITIES = ("highest", "very-high", "high", "medium", "low", "very-low", "lowest")
# The queue's maxTaskDeadlineDays as deployed by default (and on Firefox CI).
DEFAULT_MAX_DEADLINE = timedelta(days=5)
SLUG_ID = r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$"
SOURCE_PATTERN = r"^(https?://|ssh://|git@)"
_DATE_TIME = {"type": "string", "format": "date-time"}

# Taskcluster's queue/v1/create-task-request.json, with task.json's fields and
# task-metadata.json inlined, kept next to the code that uses it so nothing is fetched at run
# time. tests/test_queue_rules.py checks that it accepts and rejects what the served one does.
CREATE_TASK_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["created", "deadline", "payload", "metadata"],
    "properties": {
        "created": _DATE_TIME,
        "deadline": _DATE_TIME,
        "expires": _DATE_TIME,
        "dependencies": {
            "type": "array",
            "uniqueItems": True,
            "maxItems": 10000,
            "items": {"type": "string", "pattern": SLUG_ID},
        },
        "extra": {"type": "object"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "description", "owner", "source"],
            "properties": {
                "name": {"type": "string", "maxLength": 255},
                "description": {"type": "string", "maxLength": 32768},
                "owner": {"type": "string", "maxLength": 255},
                "source": {"type": "string", "maxLength": 4096, "pattern": SOURCE_PATTERN},
            },
        },
        "payload": {"type": "object"},
        "priority": {"type": "string", "enum": list(PRIORITIES)},
        "projectId": {
            "type": "string",
            "minLength": 1,
            "maxLength": 500,
            "pattern": r"^([a-zA-Z0-9._/-]*)$",
        },
        "provisionerId": {"type": "string", "pattern": r"^[a-zA-Z0-9-_]{1,38}$"},
        "requires": {"type": "string", "enum": ["all-completed", "all-resolved"]},
        "retries": {"type": "integer", "minimum": 0, "maximum": 49},
        "routes": {
            "type": "array",
            "uniqueItems": True,
            "maxItems": 64,
            "items": {"type": "string", "minLength": 1, "maxLength": 249},
        },
        "schedulerId": {
            "type": "string",
            "minLength": 1,
            "maxLength": 38,
            "pattern": r"^([a-zA-Z0-9-_]*)$",
        },
        "scopes": {"type": "array", "items": {"type": "string", "pattern": r"^[ -~]*$"}},
        "tags": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 4096}},
        "taskGroupId": {"type": "string", "pattern": SLUG_ID},
        "taskQueueId": {
            "type": "string",
            "pattern": r"^[a-zA-Z0-9-_]{1,38}/[a-z]([-a-z0-9]{0,36}[a-z0-9])?$",
        },
        "workerType": {"type": "string", "pattern": r"^[a-z]([-a-z0-9]{0,36}[a-z0-9])?$"},
    },
}
_VALIDATOR = Draft7Validator(CREATE_TASK_REQUEST)


@dataclass(frozen=True)
class Problem:
    """Something the queue would refuse: the field (`metadata.source`) and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def task_problems(task: Mapping[str, Any], *, max_deadline: timedelta) -> list[Problem]:
    """Why the queue would refuse to create `task` (empty: it would not, as far as the task
    itself goes; scopes are `create_task_requirements`')."""
    problems = [
        Problem(".".join(map(str, error.absolute_path)), _schema_message(error))
        for error in sorted(_VALIDATOR.iter_errors(task), key=lambda e: list(map(str, e.path)))
    ]
    problems += _queue_problems(task)
    problems += _time_problems(task, max_deadline)
    return problems


def _schema_message(error: Any) -> str:
    if error.validator == "pattern" and list(error.absolute_path) == ["metadata", "source"]:
        return (
            f"{error.instance!r} is not a URL the queue accepts: it must start with http://, "
            "https://, ssh:// or git@ (give the project an https repository URL)"
        )
    return str(error.message)


def _queue_problems(task: Mapping[str, Any]) -> list[Problem]:
    """What createTask checks beyond its schema, other than times."""
    problems = []
    queue_id, provisioner, worker_type = (
        task.get("taskQueueId"),
        task.get("provisionerId"),
        task.get("workerType"),
    )
    if queue_id is None and not (provisioner and worker_type):
        problems.append(Problem("taskQueueId", "give taskQueueId, or provisionerId and workerType"))
    elif queue_id and provisioner and worker_type and queue_id != f"{provisioner}/{worker_type}":
        problems.append(Problem("taskQueueId", f"{queue_id!r} must be provisionerId/workerType"))
    scopes = task.get("scopes")
    if isinstance(scopes, list):
        for scope in scopes:
            if isinstance(scope, str) and scope.endswith("**"):
                problems.append(Problem("scopes", f"{scope!r}: a scope must not end with **"))
    return problems


def _time_problems(task: Mapping[str, Any], max_deadline: timedelta) -> list[Problem]:
    created, deadline, expires = (
        _instant(task, name) for name in ("created", "deadline", "expires")
    )
    problems = []
    if created is not None and deadline is not None:
        if deadline < created:
            problems.append(Problem("deadline", "is before created"))
        elif deadline - created > max_deadline:
            problems.append(
                Problem(
                    "deadline",
                    f"is {_days(deadline - created)} after created; the queue refuses a deadline "
                    f"more than {_days(max_deadline)} ahead",
                )
            )
    if deadline is not None and expires is not None and expires < deadline:
        problems.append(Problem("expires", "is before the deadline; the queue refuses it"))
    return problems


def _instant(task: Mapping[str, Any], name: str) -> datetime | None:
    value = task.get(name)
    if not isinstance(value, str):
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    return f"{days:g} days" if days == int(days) else f"{days:.1f} days"


@dataclass(frozen=True)
class Requirement:
    """One scope a call needs, or one of several (`any_of`); `why` names what asks for it."""

    any_of: tuple[str, ...]
    why: str

    def met_by(self, granted: Sequence[str]) -> bool:
        return any(satisfies(granted, scope) for scope in self.any_of)

    def __str__(self) -> str:
        if len(self.any_of) == 1:
            return self.any_of[0]
        return f"{self.any_of[-1]} (or one of higher priority)"


def create_task_requirements(task: Mapping[str, Any]) -> list[Requirement]:
    """The scopes `queue.createTask(task)` needs, as the queue's scope expression says."""
    provisioner, worker_type = _queue_parts(task)
    priority = task.get("priority", "lowest")
    priorities = PRIORITIES[: PRIORITIES.index(priority) + 1] if priority in PRIORITIES else ()
    requirements = [
        Requirement((scope,), "the task's scopes") for scope in task.get("scopes") or ()
    ]
    requirements += [
        Requirement((f"queue:route:{route}",), f"route {route}")
        for route in task.get("routes") or ()
    ]
    requirements += [
        Requirement(
            (f"queue:create-task:project:{task.get('projectId', 'none')}",), "its projectId"
        ),
        Requirement((f"queue:scheduler-id:{task.get('schedulerId', '-')}",), "its schedulerId"),
    ]
    if priorities:
        requirements.append(
            Requirement(
                tuple(f"queue:create-task:{p}:{provisioner}/{worker_type}" for p in priorities),
                f"its task queue at priority {priority}",
            )
        )
    return requirements


def _queue_parts(task: Mapping[str, Any]) -> tuple[str, str]:
    provisioner, worker_type = task.get("provisionerId"), task.get("workerType")
    if isinstance(provisioner, str) and isinstance(worker_type, str):
        return provisioner, worker_type
    queue_id = str(task.get("taskQueueId", "/"))
    head, _, tail = queue_id.partition("/")
    return head, tail


def unmet(requirements: Sequence[Requirement], granted: Sequence[str]) -> list[Requirement]:
    """The requirements `granted` (expanded scopes) does not meet."""
    return [requirement for requirement in requirements if not requirement.met_by(granted)]
