"""The overlap policies' I/O: which of a project's fires may still run (one ledger read a tick),
and, for `replace`, cancelling their task groups before the new fire is made.

What each policy decides is `cron/overlap.py`'s; this reads the ledger for it and acts on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog

from scheduler.config.model import Project
from scheduler.cron.overlap import ALLOW, RunningFire
from scheduler.engine.fires import Dispatched, FireMeans, FireRequest
from scheduler.ledger import EngineLedger, FireKind, FireState, UnresolvedFire, WatchPhase
from scheduler.taskcluster import UNRESOLVED_TASK_STATES, Clients
from scheduler.taskcluster_failures import TaskclusterError

log = structlog.get_logger("tc_scheduler.engine")


def overlap_matters(project: Project) -> bool:
    """Whether any job of `project` has a policy other than `allow` (else nothing is read)."""
    return project.overlap != ALLOW or any(p != ALLOW for p in project.job_overlap.values())


def running_fires(
    ledger: EngineLedger, project: Project, *, now: datetime, horizon: timedelta
) -> list[RunningFire]:
    """The project's fires that may still run, as the overlap plan takes them; none is read
    when every job allows overlaps. A fire made without a watch runs at most until its task's
    deadline: at most `horizon` (the queue's longest deadline) after it was made."""
    return running_fires_of(ledger, [project], now=now, horizon=horizon)[project.name]


def running_fires_of(
    ledger: EngineLedger, projects: Sequence[Project], *, now: datetime, horizon: timedelta
) -> dict[str, list[RunningFire]]:
    """`running_fires` of each of `projects`, by name, in one read of the ledger (none when
    every job of every project allows overlaps)."""
    running: dict[str, list[RunningFire]] = {project.name: [] for project in projects}
    read = [project.name for project in projects if overlap_matters(project)]
    if read:
        for fire in ledger.unresolved_fires_of(read, unwatched_since=now - horizon):
            running[fire.project].append(_running(fire))
    return running


async def still_running(clients: Clients, fires: Sequence[RunningFire]) -> list[RunningFire]:
    """`fires` less those whose run the queue says is over: the watcher's last look may be a
    round old, and a decision task that resolved since neither holds a `skip` back nor has
    its group (the tasks it made) cancelled by `replace`. Only a run that ends with its task
    is asked after (not one whose group is watched, nor one being made); if asking fails, the
    watcher's look stands."""
    asked = [fire for fire in fires if _ends_with_its_task(fire)]
    if not asked:
        return list(fires)
    try:
        states = await asyncio.gather(*(_task_state(clients, fire) for fire in asked))
    except TaskclusterError as error:
        log.warning("cannot tell whether earlier fires still run", error=error.message)
        return list(fires)
    over = {id(fire) for fire, state in zip(asked, states, strict=True) if state is None}
    return [fire for fire in fires if id(fire) not in over]


def _ends_with_its_task(fire: RunningFire) -> bool:
    return not (fire.group_watched or fire.waiting_for_group or fire.being_made) and bool(
        fire.task_id
    )


async def _task_state(clients: Clients, fire: RunningFire) -> str | None:
    """The state of `fire`'s task while it has not resolved; None once it has (or is gone)."""
    try:
        answer = await clients.queue.status(fire.task_id)
    except Exception as error:
        explained = clients.explain(error, "queue.status")
        if explained.status == 404:
            return None
        raise explained from None
    state = str(answer["status"]["state"])
    return state if state in UNRESOLVED_TASK_STATES else None


def _running(fire: UnresolvedFire) -> RunningFire:
    # While being made, the fire's own state (claimed, retrying); then its task's.
    state = fire.state.value if fire.being_made else (fire.task_state or "not read yet")
    return RunningFire(
        job=fire.job,
        slot=fire.slot,
        manual=fire.kind is FireKind.MANUAL,
        task_id=fire.task_id,
        task_group_id=fire.task_group_id,
        state=state,
        being_made=fire.being_made,
        waiting_for_group=fire.phase is WatchPhase.GROUP,
        action=fire.task_kind == "action",
        group_watched=fire.follow_group,
    )


async def cancel_replaced(request: FireRequest, means: FireMeans) -> Dispatched | None:
    """Seal and cancel the task groups of the fires `request` replaces (the queue cancels only
    a sealed group), with the project's scopes. None: done (a group gone has nothing left to
    cancel), or nothing to do. Else the fire, failed without being made: firing all the same
    would leave two running, and trying again later could not cancel any better."""
    groups = dict.fromkeys(f.task_group_id for f in request.replaces if f.task_group_id)
    for group in groups:
        replaced = next(f for f in request.replaces if f.task_group_id == group)
        if means.dry_run:
            log.info("would cancel the task group of the fire replaced", task_group_id=group)
            continue
        try:
            cancelled = await _seal_and_cancel(means.clients, group)
        except TaskclusterError as error:
            return Dispatched(
                FireState.FAILED,
                None,
                None,
                f"not fired: the overlap policy replace could not cancel task group {group} "
                f"of {replaced.named}: {error.message}. Firing anyway would leave both "
                "running; once it resolves (or is cancelled by hand), fire the job by hand if "
                "it is still wanted",
            )
        log.info(
            "replaced a fire still running",
            task_group_id=group,
            replaced_slot=replaced.slot.isoformat(),
            cancelled=cancelled,
        )
    return None


async def _seal_and_cancel(clients: Clients, group: str) -> int:
    """How many tasks of `group` were cancelled (0: the group is gone, nothing runs)."""
    reply: dict[str, int] = {}
    for method in ("sealTaskGroup", "cancelTaskGroup"):
        try:
            reply = await getattr(clients.queue, method)(group)
        except Exception as error:
            explained = clients.explain(error, f"queue.{method}")
            if explained.status == 404:
                return 0
            raise explained from None
    return int(reply["cancelledCount"])
