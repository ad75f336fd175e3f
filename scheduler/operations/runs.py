"""Each fire's run as the answers show it: the state of the task it made (and of its watched
task group, with the counts) from the watch the watcher keeps, beside the fire's own record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scheduler.common.wording import counted
from scheduler.ledger import (
    Fire,
    FireState,
    GroupCounts,
    OperationsLedger,
    RunState,
    Watch,
    WatchPhase,
)
from scheduler.operations.models import FireOut, TaskGroupOut, TaskOutcomeOut

WORDS = {
    "waiting": "not looked at yet",
    "unscheduled": "unscheduled",
    "pending": "pending",
    "running": "running",
    "completed": "completed",
    "failed": "failed",
    "exception": "exception",
    "gone": "gone: the queue no longer knows it",
}


def outcome_of(watch: Watch | None) -> TaskOutcomeOut | None:
    """How the fire's run went, as its watch last saw it; None when nothing is followed (no
    task was made, or the fire's failure was only reported)."""
    # A failed fire may name the task it could not tell was made: its watch only reports.
    if watch is None or watch.task_id is None or watch.fire_state is FireState.FAILED:
        return None
    if watch.task_state is None:
        task_state = "gone" if watch.phase is WatchPhase.DONE else "waiting"
    else:
        task_state = watch.task_state
    run = watch.run_state or (RunState.EXCEPTION if task_state == "gone" else None)
    label = WORDS.get(task_state, task_state)
    if watch.reason and watch.reason != task_state:
        label += f" ({watch.reason})"
    group_running = watch.phase is WatchPhase.GROUP
    counts = watch.group
    if group_running:
        label += "; its task group still runs" + (f": {summary(counts)}" if counts else "")
    elif watch.follow_group and counts is not None:
        label += f"; its task group {run or 'resolved'}: {summary(counts)}"
    return TaskOutcomeOut(
        state=str(run or FireState.CREATED),
        label=label,
        task_state=task_state,
        reason=watch.reason,
        task_group_id=watch.task_group_id,
        group=None if counts is None else group_out(counts),
        resolved_at=watch.resolved_at,
        group_running=group_running,
    )


def group_out(counts: GroupCounts) -> TaskGroupOut:
    return TaskGroupOut(
        total=counts.total,
        completed=counts.completed,
        failed=counts.failed,
        exception=counts.exception,
        blocked=counts.blocked,
        unresolved=counts.unresolved,
        summary=summary(counts),
    )


def summary(counts: GroupCounts) -> str:
    """`50 tasks: 46 completed, 3 failed, 1 blocked`: each count that is not zero."""
    parts = (
        (counts.completed, "completed"),
        (counts.failed, "failed"),
        (counts.exception, "exception"),
        (counts.blocked, "blocked"),
        (counts.unresolved, "unresolved"),
    )
    shown = ", ".join(f"{count} {word}" for count, word in parts if count)
    return counted(counts.total, "task") + (f": {shown}" if shown else "")


def fire_out(fire: Fire, watch: Watch | None) -> dict[str, Any]:
    """The fields of `fire` as the answers show it, with its run's outcome: a dict, which
    pydantic reads several times faster than an object, and which any of the fire models
    (`FireOut` and those built on it) validates."""
    return {**vars(fire), "outcome": outcome_of(watch)}


def fires_out(port: OperationsLedger, fires: Iterable[Fire]) -> list[FireOut]:
    """`fires` with each one's run's outcome: one more read for all of them."""
    listed = list(fires)
    watches: Mapping[int, Watch] = port.watches_of([fire.id for fire in listed])
    return [FireOut.model_validate(fire_out(fire, watches.get(fire.id))) for fire in listed]
