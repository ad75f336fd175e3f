"""The `decision-task` job type: render `.taskcluster.yml` for cron and create the task, once.

A 409 means the slot's task id is taken (this fire made it before, or a replica did); a
createTask whose reply was lost is resolved by reading the task back (timed out: by a retry, or a
lookup before the fire is given up; by hand: the next manual fire waits until it has settled).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any

import structlog
from taskcluster.exceptions import TaskclusterRestFailure

from scheduler.actions.triggering import SETTLE_MARGIN
from scheduler.config.model import CallBounds, Project
from scheduler.cron import Job
from scheduler.engine.fires import Dispatched, FireMeans, FireRequest
from scheduler.git.source import Snapshot
from scheduler.ids import manual_task_id
from scheduler.ledger import Claim, FireKind, FireState
from scheduler.outcomes import UNCONFIRMED, FireError
from scheduler.render import (
    Push,
    RenderedTask,
    RenderError,
    Repository,
    render_decision_task,
    render_time,
)
from scheduler.taskcluster import Clients

TASKCLUSTER_YML = ".taskcluster.yml"

log = structlog.get_logger("tc_scheduler.engine")


async def fire_decision_task(fire: FireRequest, claim: Claim, means: FireMeans) -> Dispatched:
    """Render the project's template for the fire and create its task."""
    project, snapshot, slot = fire.project, fire.snapshot, fire.slot
    template = snapshot.files.get(TASKCLUSTER_YML)
    if template is None:
        raise FireError(
            f"{project.name} has no {TASKCLUSTER_YML} at {snapshot.revision}; a decision-task "
            "job needs one",
            project_broken=True,
        )
    fired_at = fire.at or means.clock()
    manual = fire.kind is FireKind.MANUAL
    now = fired_at if manual else render_time(slot, fired_at)
    # Rendered before the boundary from these very inputs (`prepared.py`): the same task.
    ahead = means.prepared.rendered_for(fire, means.root_url, now) if means.prepared else None
    try:
        rendered = ahead or await render_in(
            means.render_pool,
            template,
            **render_arguments(
                means.root_url,
                project,
                snapshot,
                fire.job,
                slot,
                now=now,
                cron_input=fire.cron_input,
                task_id=manual_task_id() if manual else None,
            ),
        )
    except RenderError as error:
        raise FireError(
            f"{TASKCLUSTER_YML} at {snapshot.revision[:12]}: {error}", project_broken=True
        ) from None
    details = {"task": rendered.definition}
    if means.dry_run:
        log.info("dry run: task not created", task_id=rendered.task_id, task=rendered.definition)
        return Dispatched(FireState.DRY_RUN, rendered.task_id, details, None)
    if not manual:
        return await _create(means.clients, rendered, details)
    # A manual fire's task id is its own, so another fire would make another task: the intent
    # goes to the ledger first, and no manual fire of the job follows while whether this one
    # made its task is not known (`claim_manual`, for `create_unsure_for`).
    sent_at = means.clock()
    task_id = rendered.task_id
    if not await means.ledger.run(
        lambda ledger: ledger.mark_sent(claim, now=sent_at, details=details, task_id=task_id)
    ):
        raise FireError("not created: this replica no longer holds the fire")
    try:
        return await _create(means.clients, rendered, details)
    except FireError as error:
        if error.task_id is None:  # refused, or shown not made: nothing to wait for
            await means.ledger.run(lambda ledger: ledger.unmark_sent(claim))
        raise


def create_unsure_for(bounds: CallBounds) -> timedelta:
    """How long after a createTask was sent (under `bounds`) whether it made its task may not be
    known: the client gives the call up at its deadline, and the queue is given SETTLE_MARGIN
    more to finish what it received; after that, its task exists or never will."""
    return bounds.deadline + SETTLE_MARGIN


def task_link(root_url: str, task_id: str) -> str:
    """Where people look a task up: its page in the Taskcluster UI."""
    return f"{root_url.rstrip('/')}/tasks/{task_id}"


async def settle_given_up(
    clients: Clients, task_id: str, error: str
) -> tuple[FireState, str | None, str | None]:
    """How a fire that is given up ended, when whether it made task `task_id` is not known
    (`error` says why): (state, task, error) once the queue was asked, so that what is reported
    is so. CREATED if the task exists (a reply was lost); FAILED, not created, if the queue does
    not know it; FAILED naming the task if asking fails too, as it may exist."""
    try:
        await clients.queue.task(task_id)
    except Exception as lookup:
        if isinstance(lookup, TaskclusterRestFailure) and lookup.status_code == 404:
            return (
                FireState.FAILED,
                None,
                f"{error}; looked up then, task {task_id} does not exist: it was not created",
            )
        unknown = clients.explain(lookup, "queue.task").message
        return (
            FireState.FAILED,
            task_id,
            f"{error}; looking it up failed too ({unknown}), so whether task {task_id} exists "
            f"is still not known: see {task_link(clients.root_url, task_id)}",
        )
    log.info("the task of a fire given up exists: a reply was lost", task_id=task_id)
    return FireState.CREATED, task_id, None


async def _create(clients: Clients, rendered: RenderedTask, details: dict[str, Any]) -> Dispatched:
    try:
        await clients.queue.createTask(rendered.task_id, rendered.definition)
    except TaskclusterRestFailure as error:
        if error.status_code == 409:
            return await _confirm_existing(clients, rendered.task_id, details)
        return await _resolve_create(clients, rendered.task_id, details, error)
    except Exception as error:
        return await _resolve_create(clients, rendered.task_id, details, error)
    return Dispatched(FireState.CREATED, rendered.task_id, details, None)


async def _resolve_create(
    clients: Clients, task_id: str, details: dict[str, Any], error: Exception
) -> Dispatched:
    """createTask failed. If it may have taken effect all the same (no answer, a 5xx), the
    queue says whether the task exists: then it was created (its reply was lost). Raises
    FireError otherwise, `transient` when trying again may work, naming the task (`task_id`)
    when whether it exists is not known.

    A queue that let the call time out is not asked at once (that would wait as long again):
    the outcome stays unknown, as when asking fails, until a retry of a scheduled fire sends
    the same task id, which the queue takes as the task it may already have (or, at the last
    attempt, `settle_given_up` asks).
    """
    explained = clients.explain(error, "queue.createTask")
    if not explained.uncertain:
        raise FireError(explained.message, transient=explained.transient)
    if explained.timed_out:
        raise FireError(
            f"{explained.message}; whether task {task_id} was created is not known",
            transient=True,
            task_id=task_id,
        )
    try:
        await clients.queue.task(task_id)
    except Exception as lookup:
        if isinstance(lookup, TaskclusterRestFailure) and lookup.status_code == 404:
            raise FireError(
                f"{explained.message}; task {task_id} does not exist, so it was not created",
                transient=True,
            ) from None
        unknown = clients.explain(lookup, "queue.task").message
        raise FireError(
            f"{explained.message}; whether task {task_id} was created is not known ({unknown})",
            transient=True,
            task_id=task_id,
        ) from None
    log.info("createTask's reply was lost; the task exists", task_id=task_id)
    return Dispatched(FireState.CREATED, task_id, details, None)


async def _confirm_existing(clients: Clients, task_id: str, details: dict[str, Any]) -> Dispatched:
    """A 409 means the id is taken: by this fire before (a retry, a replica) or another.

    The id is derived from the slot, so the task exists whether or not reading it back
    works; a refused read leaves it unconfirmed, never failed.
    """
    try:
        await clients.queue.task(task_id)
    except Exception as error:
        reason = clients.explain(error, "queue.task").message
        return Dispatched(FireState.ALREADY_FIRED, task_id, details, f"{UNCONFIRMED}: {reason}")
    return Dispatched(FireState.ALREADY_FIRED, task_id, details, None)


def render_scheduled(
    root_url: str, project: Project, snapshot: Snapshot, job: Job, slot: datetime, *, now: datetime
) -> RenderedTask:
    """The decision task a scheduled fire of `job` at `slot` makes, if fired at `now`
    (no I/O: for checks before anything fires). Raises RenderError."""
    template = snapshot.files.get(TASKCLUSTER_YML)
    if template is None:
        raise RenderError("the file is missing; a decision-task job needs one")
    arguments = render_arguments(root_url, project, snapshot, job, slot, now=now)
    return render_decision_task(template, **arguments)


def render_arguments(
    root_url: str,
    project: Project,
    snapshot: Snapshot,
    job: Job,
    slot: datetime,
    *,
    now: datetime,
    cron_input: Mapping[str, Any] | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    """What `render_decision_task` needs besides the template, as build-decision gives it."""
    return {
        "root_url": root_url,
        "repository": Repository(
            url=project.repository,
            project=project.name,
            level=str(project.level),
            type=project.repository_type,
        ),
        "push": Push(
            revision=snapshot.revision,
            branch=project.branch,
            # Mercurial's pushlog: the push that brought the revision (None for git).
            pushlog_id=snapshot.push.pushlog_id if snapshot.push else None,
            pushdate=snapshot.push.pushdate if snapshot.push else None,
        ),
        "job": job,
        "slot": slot,
        "now": now,
        "cron_input": dict(cron_input or {}),
        "task_id": task_id,
    }


async def render_in(pool: Executor | None, template: str, **arguments: Any) -> RenderedTask:
    """Render in the worker processes when there are some: JSON-e is most of a fire's CPU."""
    if pool is None:
        return render_decision_task(template, **arguments)
    loop = asyncio.get_running_loop()
    call = functools.partial(render_decision_task, template, **arguments)
    return await loop.run_in_executor(pool, call)
