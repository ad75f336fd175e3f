"""Rendering `.taskcluster.yml` for a cron fire: build-decision's JSON-e context, one task out.

Pure: the template comes in as text, a task definition and its id go out.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from scheduler.common import jsone_cache
from scheduler.common.yamldoc import YamlError, non_json_values, parse
from scheduler.cron.model import DecisionTask, Job
from scheduler.cron.timing import as_utc, slot_of
from scheduler.ids import decision_task_id

RepositoryType = Literal["git", "hg"]

# The queue refuses a task whose `created` is more than 15 minutes from its clock. Firing this
# close to the slot, the slot itself is used, so every replica renders the same task.
SLOT_TIME_WINDOW = timedelta(minutes=10)


class RenderError(Exception):
    """`.taskcluster.yml` could not be rendered into exactly one task."""


@dataclass(frozen=True)
class Repository:
    url: str
    project: str
    # build-decision passes the level as it came on its command line: a string.
    level: str
    type: RepositoryType = "git"

    def as_context(self) -> dict[str, Any]:
        return {"url": self.url, "project": self.project, "level": self.level, "type": self.type}


@dataclass(frozen=True)
class Push:
    """The revision a fire runs on. The hg fields come from the pushlog of that revision."""

    revision: str
    branch: str | None = None
    pushlog_id: str | None = None
    pushdate: int | None = None
    base_revision: str | None = None

    def as_context(self, repository_type: RepositoryType) -> dict[str, Any]:
        push: dict[str, Any] = {"owner": "cron", "revision": self.revision}
        if self.branch is not None:
            push["branch"] = self.branch
        if repository_type == "hg":
            push["pushlog_id"] = self.pushlog_id if self.pushlog_id is not None else "0"
            push["pushdate"] = self.pushdate if self.pushdate is not None else 0
            push["base_revision"] = self.base_revision or self.revision
        return push


@dataclass(frozen=True)
class RenderedTask:
    task_id: str
    definition: dict[str, Any] = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        """The definition with its `taskId`, as `.taskcluster.yml` wrote it."""
        return {"taskId": self.task_id, **self.definition}


def quoted_args(kind: DecisionTask) -> str:
    """`cron.quoted_args`: the `taskgraph decision` arguments of a job, quoted for `bash -c`."""
    arguments = [f"--target-tasks-method={kind.target_tasks_method}"]
    if kind.optimize_target_tasks is not None:
        arguments.append(f"--optimize-target-tasks={str(kind.optimize_target_tasks).lower()}")
    if kind.include_push_tasks:
        arguments.append("--include-push-tasks")
    arguments.extend(f"--rebuild-kind={kind_name}" for kind_name in kind.rebuild_kinds)
    return " ".join(shlex.quote(argument) for argument in arguments)


def render_time(slot: datetime, fired_at: datetime) -> datetime:
    """The `now` (and so the `created`) of a fire: the slot if fired within 10 minutes of it."""
    slot, fired_at = slot_of(slot), as_utc(fired_at)
    return slot if abs(fired_at - slot) <= SLOT_TIME_WINDOW else fired_at


def format_json_e_time(moment: datetime) -> str:
    """Times as JSON-e writes them: `2026-11-24T10:00:00.000Z`."""
    moment = as_utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def cron_context(
    *,
    root_url: str,
    repository: Repository,
    push: Push,
    job: Job,
    kind: DecisionTask,
    task_id: str,
    now: datetime,
    cron_input: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """build-decision's JSON-e context for `tasks_for: "cron"`.

    There is no separate cron task, so `cron.task_id` is the decision task's own id. The input
    reaches the template only when the job asks for it with `include-cron-input`.
    """
    return {
        "taskcluster_root_url": root_url,
        "tasks_for": "cron",
        "repository": repository.as_context(),
        "push": push.as_context(repository.type),
        "cron": {
            "task_id": task_id,
            "job_name": job.name,
            "job_symbol": kind.treeherder_symbol,
            "quoted_args": quoted_args(kind),
            "input": dict(cron_input or {}) if kind.include_cron_input else {},
        },
        "ownTaskId": task_id,
        "now": format_json_e_time(now),
    }


def render_decision_task(
    template: str | bytes,
    *,
    root_url: str,
    repository: Repository,
    push: Push,
    job: Job,
    slot: datetime,
    now: datetime | None = None,
    cron_input: dict[str, Any] | None = None,
    task_id: str | None = None,
) -> RenderedTask:
    """Render the decision task of `job`'s fire at `slot` (JSON-e `now` defaults to the slot).

    The task id is the slot's deterministic one unless given (manual fires have their own).
    """
    if not isinstance(job.kind, DecisionTask):
        raise RenderError(
            f"job {job.name!r} is a {job.kind.type} job; only decision-task jobs render "
            ".taskcluster.yml"
        )
    task_id = task_id or decision_task_id(root_url, repository.project, job.name, slot)
    context = cron_context(
        root_url=root_url,
        repository=repository,
        push=push,
        job=job,
        kind=job.kind,
        task_id=task_id,
        now=slot_of(slot) if now is None else now,
        cron_input=cron_input,
    )
    return render_task(template, context, default_task_id=task_id)


@functools.lru_cache(maxsize=256)
def _parsed_template(template: str | bytes) -> Any:
    """The template's data; parsed once per text, as every job of a revision renders it."""
    try:
        return parse(template).data
    except YamlError as error:
        position = error.position
        raise RenderError(
            f".taskcluster.yml:{position.line}:{position.column}: {error.message}"
        ) from None


def render_task(
    template: str | bytes, context: dict[str, Any], *, default_task_id: str
) -> RenderedTask:
    """Render a `.taskcluster.yml` (version 1) and return its one task."""
    document = _parsed_template(template)
    try:
        rendered = jsone_cache.render(document, context)
    except RecursionError:
        raise RenderError(".taskcluster.yml nests too deeply to render") from None
    except Exception as error:
        # JSON-e raises its own errors for template mistakes, and Python's for some others
        # (a YAML date where a string belongs, for one): all are mistakes in the template.
        raise RenderError(f"JSON-e could not render .taskcluster.yml: {error}") from None
    tasks = rendered.get("tasks") if isinstance(rendered, dict) else None
    if not isinstance(tasks, list):
        raise RenderError(
            ".taskcluster.yml rendered no `tasks` list; a version 1 template has `tasks: [...]`"
        )
    if len(tasks) != 1:
        raise RenderError(
            f'.taskcluster.yml rendered {len(tasks)} tasks for tasks_for "cron"; '
            "exactly one (the decision task) is needed"
        )
    [task] = tasks
    if not isinstance(task, dict):
        raise RenderError(".taskcluster.yml rendered a task that is not a mapping")
    task = dict(task)
    task_id = task.pop("taskId", default_task_id)
    if not isinstance(task_id, str):
        raise RenderError(f"the rendered task's taskId is not a string: {task_id!r}")
    for path, value in non_json_values(task):
        where = ".".join(map(str, path)) or "the task"
        raise RenderError(f"the rendered task has {value!r} at {where}, which JSON cannot carry")
    return RenderedTask(task_id=task_id, definition=task)
