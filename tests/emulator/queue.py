"""The emulated queue: tasks with the real creation rules and state machine, task groups, artifacts.

Workers do not exist here; tests drive tasks through their states with the control methods
(`run`, `resolve`, `add_artifact`), and time through the emulator's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.emulator.api import ApiError, Call, Handler, paginate
from tests.emulator.clock import format_time, parse_time

PRIORITIES = ["highest", "very-high", "high", "medium", "low", "very-low", "lowest"]
CREATED_DRIFT = timedelta(minutes=15)
UNRESOLVED = ("unscheduled", "pending", "running")
EXCEPTION_REASONS = (
    "canceled",
    "claim-expired",
    "deadline-exceeded",
    "internal-error",
    "intermittent-task",
    "malformed-payload",
    "resource-unavailable",
    "superseded",
    "worker-shutdown",
)


@dataclass
class Task:
    task_id: str
    definition: dict[str, Any]
    deadline: datetime
    expires: datetime
    state: str = "unscheduled"
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def group_id(self) -> str:
        return str(self.definition["taskGroupId"])

    def status(self) -> dict[str, Any]:
        definition = self.definition
        return {
            "taskId": self.task_id,
            "provisionerId": definition["provisionerId"],
            "workerType": definition["workerType"],
            "taskQueueId": definition["taskQueueId"],
            "schedulerId": definition["schedulerId"],
            "projectId": definition["projectId"],
            "taskGroupId": definition["taskGroupId"],
            "priority": definition["priority"],
            "deadline": definition["deadline"],
            "expires": definition["expires"],
            "retriesLeft": definition["retries"],
            "state": self.state,
            "runs": [dict(run) for run in self.runs],  # runs hold only strings and numbers
        }


@dataclass
class Artifact:
    name: str
    run_id: int
    storage_type: str
    content_type: str
    expires: datetime
    content: bytes = b""
    url: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "storageType": self.storage_type,
            "name": self.name,
            "expires": format_time(self.expires),
            "contentType": self.content_type,
            "contentLength": len(self.content),
        }


@dataclass
class TaskGroup:
    scheduler_id: str
    expires: datetime
    task_ids: list[str] = field(default_factory=list)
    sealed: datetime | None = None


class Queue:
    def __init__(self, *, max_deadline: timedelta, artifact_url: Callable[[str, int, str], str]):
        self.max_deadline = max_deadline
        self.tasks: dict[str, Task] = {}
        self.groups: dict[str, TaskGroup] = {}
        self.dependents: dict[str, list[str]] = {}
        self.artifacts: dict[str, dict[tuple[int, str], Artifact]] = {}
        self._artifact_url = artifact_url
        self.on_completed: list[Callable[[Task, datetime], None]] = []

    # -- creation -------------------------------------------------------------------------

    def create(self, task_id: str, request: Mapping[str, Any], call: Call) -> Task:
        """createTask's rules; `call.authorize` is checked with the task's scope parameters.

        The task keeps the request's values (its top level is copied, so the request stays as
        sent): give it a request that nothing changes afterwards, as a parsed body is.
        """
        definition = _with_defaults(task_id, request)
        priority = definition["priority"]
        call.authorize(
            scopes=definition["scopes"],
            routes=definition["routes"],
            projectId=definition["projectId"],
            schedulerId=definition["schedulerId"],
            taskGroupId=definition["taskGroupId"],
            priorities=PRIORITIES[: PRIORITIES.index(priority) + 1],
            provisionerId=definition["provisionerId"],
            workerType=definition["workerType"],
        )
        now = call.now
        created = _time(definition, "created")
        deadline = _time(definition, "deadline")
        expires = _time(definition, "expires") if "expires" in definition else None
        expires = expires or _a_year_after(deadline)
        # The queue keeps times as milliseconds and returns them in its own format.
        for name, value in (("created", created), ("deadline", deadline), ("expires", expires)):
            definition[name] = format_time(value)
        if abs(created - now) > CREATED_DRIFT:
            raise ApiError(
                "InputError",
                f"created {definition['created']} is more than 15 minutes from the queue's "
                f"time {format_time(now)}; set created to the current time",
            )
        existing = self.get(task_id, now)
        if existing is not None:
            if existing.definition != definition:
                raise ApiError(
                    "RequestConflict",
                    f"taskId {task_id} already used by another task with a different definition. "
                    "createTask is idempotent only for an identical definition.",
                )
            return existing
        if deadline <= created:
            raise ApiError("InputError", "deadline must be after created")
        if deadline <= now:
            raise ApiError("InputError", "deadline cannot be in the past")
        if deadline > now + self.max_deadline:
            days = self.max_deadline / timedelta(days=1)
            raise ApiError(
                "InputError", f"deadline cannot be more than {days:g} days into the future"
            )
        if expires < deadline:
            raise ApiError("InputError", "expires must be at or after deadline")
        for dependency in definition["dependencies"]:
            if dependency == task_id:
                continue
            required = self.get(dependency, now)
            if required is None:
                raise ApiError(
                    "InputError",
                    f"dependency {dependency} does not exist (or has expired); create "
                    "dependencies before the tasks that need them",
                )
            if required.expires < deadline:
                raise ApiError(
                    "InputError",
                    f"dependency {dependency} expires at {format_time(required.expires)}, "
                    f"before this task's deadline {definition['deadline']}",
                )
        group = self.groups.get(definition["taskGroupId"])
        if group is not None and group.sealed is not None:
            raise ApiError("RequestConflict", f"task group {definition['taskGroupId']} is sealed")
        if group is not None and group.scheduler_id != definition["schedulerId"]:
            raise ApiError(
                "RequestConflict",
                f"task group {definition['taskGroupId']} belongs to schedulerId "
                f"{group.scheduler_id}, not {definition['schedulerId']}",
            )
        task = Task(task_id, definition, deadline, expires)
        self.tasks[task_id] = task
        if group is None:
            group = self.groups[task.group_id] = TaskGroup(definition["schedulerId"], expires)
        group.task_ids.append(task_id)
        group.expires = max(group.expires, expires)
        for dependency in definition["dependencies"]:
            self.dependents.setdefault(dependency, []).append(task_id)
        if self._ready(task, now):
            self._schedule(task, now, "scheduled")
        return task

    def _ready(self, task: Task, now: datetime) -> bool:
        wanted = (
            ("completed",)
            if task.definition["requires"] == "all-completed"
            else (
                "completed",
                "failed",
                "exception",
            )
        )
        for dependency in task.definition["dependencies"]:
            if dependency == task.task_id:
                return False
            required = self.get(dependency, now)
            if required is None or required.state not in wanted:
                return False
        return True

    def _schedule(self, task: Task, now: datetime, reason: str) -> None:
        task.state = "pending"
        task.runs.append(
            {
                "runId": len(task.runs),
                "state": "pending",
                "reasonCreated": reason,
                "scheduled": format_time(now),
            }
        )

    # -- lookup and time ------------------------------------------------------------------

    def get(self, task_id: str, now: datetime) -> Task | None:
        """The task, with its deadline applied, or None if it never existed or has expired."""
        task = self.tasks.get(task_id)
        if task is None:
            return None
        if task.expires <= now:
            return None
        if task.state in UNRESOLVED and task.deadline <= now:
            self._resolve(task, "exception", task.deadline, reason="deadline-exceeded")
        return task

    def need(self, task_id: str, now: datetime) -> Task:
        task = self.get(task_id, now)
        if task is None:
            raise ApiError("ResourceNotFound", f"Task {task_id} not found")
        return task

    # -- state machine (the control surface drives it) -------------------------------------

    def run(self, task_id: str, now: datetime) -> Task:
        task = self.need(task_id, now)
        if task.state != "pending":
            raise ValueError(f"task {task_id} is {task.state}; only a pending task can start")
        task.state = "running"
        task.runs[-1].update(
            state="running",
            started=format_time(now),
            workerGroup="emulator",
            workerId="emulator-worker",
            takenUntil=format_time(now + timedelta(minutes=20)),
        )
        return task

    def resolve(self, task_id: str, state: str, now: datetime, reason: str | None = None) -> Task:
        task = self.need(task_id, now)
        if task.state not in UNRESOLVED:
            raise ValueError(f"task {task_id} is already {task.state}")
        if state in ("completed", "failed") and task.state == "unscheduled":
            raise ValueError(f"task {task_id} is unscheduled; its dependencies are not done")
        if state in ("completed", "failed") and task.state == "pending":
            self.run(task_id, now)
        self._resolve(task, state, now, reason=reason)
        return task

    def _resolve(self, task: Task, state: str, now: datetime, reason: str | None) -> None:
        if state not in ("completed", "failed", "exception"):
            raise ValueError(f"a task resolves as completed, failed or exception, not {state}")
        if state == "exception":
            reason = reason or "worker-shutdown"
            if reason not in EXCEPTION_REASONS:
                raise ValueError(f"unknown reasonResolved {reason}")
        else:
            reason = state
        if not task.runs:
            self._schedule(task, now, "exception")
        task.state = state
        task.runs[-1].update(state=state, reasonResolved=reason, resolved=format_time(now))
        task.runs[-1].pop("takenUntil", None)
        if state == "completed":
            for callback in self.on_completed:
                callback(task, now)
        for dependent_id in self.dependents.get(task.task_id, []):
            dependent = self.get(dependent_id, now)
            if (
                dependent is not None
                and dependent.state == "unscheduled"
                and self._ready(dependent, now)
            ):
                self._schedule(dependent, now, "scheduled")

    def add_artifact(
        self,
        task_id: str,
        name: str,
        now: datetime,
        *,
        content: bytes = b"",
        content_type: str = "application/octet-stream",
        expires: datetime | None = None,
        storage_type: str = "s3",
        url: str | None = None,
    ) -> Artifact:
        task = self.need(task_id, now)
        if not task.runs:
            raise ValueError(f"task {task_id} has no run yet; artifacts belong to a run")
        run_id = len(task.runs) - 1
        artifact = Artifact(
            name=name,
            run_id=run_id,
            storage_type=storage_type,
            content_type=content_type,
            expires=expires or task.expires,
            content=content,
            url=url,
        )
        self.artifacts.setdefault(task_id, {})[(run_id, name)] = artifact
        return artifact

    def artifact_content(self, task_id: str, run_id: int, name: str) -> Artifact | None:
        return self.artifacts.get(task_id, {}).get((run_id, name))

    # -- handlers -------------------------------------------------------------------------

    def handlers(self) -> Mapping[str, Handler]:
        return {
            "createTask": self.create_task,
            "statuses": self.get_statuses,
            "tasks": self.get_tasks,
            "task": self.get_task,
            "status": self.get_status,
            "cancelTask": self.cancel_task,
            "listTaskGroup": self.list_task_group,
            "getTaskGroup": self.get_task_group,
            "sealTaskGroup": self.seal_task_group,
            "cancelTaskGroup": self.cancel_task_group,
            "listDependentTasks": self.list_dependent_tasks,
            "listLatestArtifacts": self.list_latest_artifacts,
            "listArtifacts": self.list_artifacts,
            "getLatestArtifact": self.get_latest_artifact,
            "getArtifact": self.get_artifact,
            "latestArtifact": self.latest_artifact,
            "artifact": self.run_artifact,
            "latestArtifactInfo": self.latest_artifact_info,
            "artifactInfo": self.artifact_info,
        }

    def create_task(self, call: Call) -> Any:
        task = self.create(call.params["taskId"], call.body, call)
        return {"status": task.status()}

    def get_task(self, call: Call) -> Any:
        return self.need(call.params["taskId"], call.now).definition

    def get_status(self, call: Call) -> Any:
        return {"status": self.need(call.params["taskId"], call.now).status()}

    def _batch(self, call: Call) -> tuple[list[Task], str | None]:
        task_ids = list(dict.fromkeys(call.body["taskIds"]))
        call.authorize(taskIds=task_ids)
        # Tasks that do not exist (or have expired) are left out, as the queue does.
        return paginate(call, live_tasks(self, task_ids, call.now))

    def get_statuses(self, call: Call) -> Any:
        page, token = self._batch(call)
        reply: dict[str, Any] = {
            "statuses": [{"taskId": t.task_id, "status": t.status()} for t in page]
        }
        if token:
            reply["continuationToken"] = token
        return reply

    def get_tasks(self, call: Call) -> Any:
        page, token = self._batch(call)
        reply: dict[str, Any] = {
            "tasks": [{"taskId": t.task_id, "task": t.definition} for t in page]
        }
        if token:
            reply["continuationToken"] = token
        return reply

    def cancel_task(self, call: Call) -> Any:
        task = self.need(call.params["taskId"], call.now)
        call.authorize(
            schedulerId=task.definition["schedulerId"],
            taskGroupId=task.group_id,
            projectId=task.definition["projectId"],
        )
        if task.deadline <= call.now:
            raise ApiError(
                "RequestConflict", f"task {task.task_id} can't be canceled past its deadline"
            )
        if task.state in UNRESOLVED:
            self._resolve(task, "exception", call.now, reason="canceled")
        return {"status": task.status()}

    def _group(self, call: Call) -> tuple[str, TaskGroup]:
        group_id = call.params["taskGroupId"]
        group = self.groups.get(group_id)
        if group is None or group.expires <= call.now:
            raise ApiError("ResourceNotFound", f"task group {group_id} not found")
        return group_id, group

    def _group_json(self, group_id: str, group: TaskGroup) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "taskGroupId": group_id,
            "schedulerId": group.scheduler_id,
            "expires": format_time(group.expires),
        }
        if group.sealed is not None:
            reply["sealed"] = format_time(group.sealed)
        return reply

    def list_task_group(self, call: Call) -> Any:
        group_id, group = self._group(call)
        page, token = paginate(call, live_tasks(self, group.task_ids, call.now))
        reply = self._group_json(group_id, group)
        reply["tasks"] = [{"status": task.status(), "task": task.definition} for task in page]
        if token:
            reply["continuationToken"] = token
        return reply

    def get_task_group(self, call: Call) -> Any:
        return self._group_json(*self._group(call))

    def seal_task_group(self, call: Call) -> Any:
        group_id, group = self._group(call)
        call.authorize(schedulerId=group.scheduler_id)
        group.sealed = group.sealed or call.now
        return self._group_json(group_id, group)

    def cancel_task_group(self, call: Call) -> Any:
        """As Taskcluster 106 does it: the group must exist (404) and be sealed (409), checked
        before the scopes (403); then every unresolved task before its deadline is resolved
        exception/canceled, and only those are listed."""
        group_id, group = self._group(call)
        if group.sealed is None:
            raise ApiError("RequestConflict", f"Cannot cancel unsealed task group: `{group_id}`")
        call.authorize(schedulerId=group.scheduler_id)
        cancelled = []
        for task_id in group.task_ids:
            task = self.get(task_id, call.now)
            if task is not None and task.state in UNRESOLVED:
                self._resolve(task, "exception", call.now, reason="canceled")
                cancelled.append(task_id)
        return {
            "taskGroupId": group_id,
            "taskGroupSize": len(group.task_ids),
            "cancelledCount": len(cancelled),
            "taskIds": cancelled,
        }

    def list_dependent_tasks(self, call: Call) -> Any:
        task = self.need(call.params["taskId"], call.now)
        dependents = live_tasks(self, self.dependents.get(task.task_id, []), call.now)
        page, token = paginate(call, dependents)
        reply: dict[str, Any] = {
            "taskId": task.task_id,
            "tasks": [{"status": t.status(), "task": t.definition} for t in page],
        }
        if token:
            reply["continuationToken"] = token
        return reply

    def _run_id(self, call: Call, task: Task) -> int:
        if "runId" not in call.params:
            if not task.runs:
                raise ApiError("ResourceNotFound", f"task {task.task_id} has no runs")
            return len(task.runs) - 1
        try:
            run_id = int(call.params["runId"])
        except ValueError:
            raise ApiError("InvalidRequestArguments", "runId must be an integer") from None
        if not 0 <= run_id < len(task.runs):
            raise ApiError("ResourceNotFound", f"task {task.task_id} has no run {run_id}")
        return run_id

    def _listing(self, call: Call) -> Any:
        task = self.need(call.params["taskId"], call.now)
        run_id = self._run_id(call, task)
        found = sorted(
            (a for (run, _), a in self.artifacts.get(task.task_id, {}).items() if run == run_id),
            key=lambda artifact: artifact.name,
        )
        live = [artifact for artifact in found if artifact.expires > call.now]
        page, token = paginate(call, live)
        reply: dict[str, Any] = {"artifacts": [artifact.describe() for artifact in page]}
        if token:
            reply["continuationToken"] = token
        return reply

    list_latest_artifacts = _listing
    list_artifacts = _listing

    def _artifact(self, call: Call) -> Artifact:
        name = call.params["name"]
        call.authorize(names=[name])
        task = self.need(call.params["taskId"], call.now)
        run_id = self._run_id(call, task)
        artifact = self.artifact_content(task.task_id, run_id, name)
        if artifact is None:
            raise ApiError("ResourceNotFound", f"artifact {name} not found on run {run_id}")
        if artifact.expires <= call.now:
            raise ApiError(
                "ResourceExpired", f"artifact {name} expired at {format_time(artifact.expires)}"
            )
        return artifact

    def _location(self, call: Call, artifact: Artifact) -> str:
        if artifact.storage_type == "reference" and artifact.url:
            return artifact.url
        return self._artifact_url(call.params["taskId"], artifact.run_id, artifact.name)

    def _redirect(self, call: Call) -> Any:
        artifact = self._artifact(call)
        location = self._location(call, artifact)
        call.status = 303
        call.headers["Location"] = location
        call.headers["x-taskcluster-artifact-storage-type"] = artifact.storage_type
        return {"storageType": artifact.storage_type, "url": location}

    get_latest_artifact = _redirect
    get_artifact = _redirect

    def _content(self, call: Call) -> Any:
        artifact = self._artifact(call)
        storage = "reference" if artifact.storage_type == "reference" else "s3"
        return {"storageType": storage, "url": self._location(call, artifact)}

    latest_artifact = _content
    run_artifact = _content

    def _info(self, call: Call) -> Any:
        task = self.need(call.params["taskId"], call.now)
        artifact = self.artifact_content(
            task.task_id, self._run_id(call, task), call.params["name"]
        )
        if artifact is None or artifact.expires <= call.now:
            raise ApiError("ResourceNotFound", f"artifact {call.params['name']} not found")
        return artifact.describe()

    latest_artifact_info = _info
    artifact_info = _info


def _with_defaults(task_id: str, request: Mapping[str, Any]) -> dict[str, Any]:
    definition = dict(request)
    definition.setdefault("taskGroupId", task_id)
    for name, default in (
        ("schedulerId", "-"),
        ("projectId", "none"),
        ("priority", "lowest"),
        ("retries", 5),
        ("requires", "all-completed"),
    ):
        definition.setdefault(name, default)
    for name in ("routes", "dependencies", "scopes"):
        definition.setdefault(name, [])
    for name in ("tags", "extra"):
        definition.setdefault(name, {})
    if "taskQueueId" in definition:
        provisioner, _, worker_type = definition["taskQueueId"].partition("/")
        if definition.setdefault("provisionerId", provisioner) != provisioner or (
            definition.setdefault("workerType", worker_type) != worker_type
        ):
            raise ApiError(
                "InputError", "taskQueueId must equal provisionerId/workerType when all are given"
            )
    elif "provisionerId" in definition and "workerType" in definition:
        definition["taskQueueId"] = f"{definition['provisionerId']}/{definition['workerType']}"
    else:
        raise ApiError("InputError", "give taskQueueId, or both provisionerId and workerType")
    return definition


def _a_year_after(moment: datetime) -> datetime:
    """The same time a calendar year later (28 February for a 29th), as the queue's default."""
    try:
        return moment.replace(year=moment.year + 1)
    except ValueError:
        return moment.replace(year=moment.year + 1, day=28)


def _time(definition: Mapping[str, Any], name: str) -> datetime:
    try:
        return parse_time(str(definition[name]))
    except ValueError:
        raise ApiError("InputError", f"{name} is not a valid date-time") from None


def live_tasks(queue: Queue, task_ids: Sequence[str], now: datetime) -> list[Task]:
    return [task for task in (queue.get(i, now) for i in task_ids) if task is not None]
