"""The watches: each fire the service started, followed until it resolved and was reported.

A finished fire starts its watch in the claim's transaction; a step queues its notices in its own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import FireRow, WatchRow
from scheduler.ledger.notices import queue_notices
from scheduler.ledger.records import (
    FireState,
    GroupCounts,
    Notice,
    Outcome,
    RunState,
    Watch,
    WatchPhase,
)
from scheduler.ledger.store import Store, aware


class WatchStore(Store):
    """The fires being followed, and the steps that move them on."""

    def watches(self, *, limit: int | None = None) -> list[Watch]:
        """Fires still being followed, oldest first."""
        query = (
            select(WatchRow, FireRow)
            .join(FireRow, FireRow.id == WatchRow.fire_id)
            .where(WatchRow.phase != WatchPhase.DONE.value)
            .order_by(WatchRow.fire_id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(writing=False) as session:
            return [watch_of(watch, fire) for watch, fire in session.execute(query)]

    def watch(self, fire_id: int) -> Watch | None:
        query = (
            select(WatchRow, FireRow)
            .join(FireRow, FireRow.id == WatchRow.fire_id)
            .where(WatchRow.fire_id == fire_id)
        )
        with self._transaction(writing=False) as session:
            found = session.execute(query).one_or_none()
            return watch_of(*found) if found is not None else None

    def watches_of(self, fire_ids: Collection[int]) -> dict[int, Watch]:
        """The watches (followed or done) of the fires `fire_ids`, by fire: one read, for
        pages that show how each fire's task went."""
        if not fire_ids:
            return {}
        query = (
            select(WatchRow, FireRow)
            .join(FireRow, FireRow.id == WatchRow.fire_id)
            .where(WatchRow.fire_id.in_(set(fire_ids)))
        )
        with self._transaction(writing=False) as session:
            return {watch.fire_id: watch_of(watch, fire) for watch, fire in session.execute(query)}

    def advance_watch(
        self,
        watch: Watch,
        phase: WatchPhase,
        *,
        now: datetime,
        notices: Sequence[Notice] = (),
        task_state: str | None = None,
        reason: str | None = None,
        task_group_id: str | None = None,
        run_state: RunState | None = None,
        group: GroupCounts | None = None,
    ) -> bool:
        """Move `watch` on from the phase, task state and group counts it was read in (to
        `phase`, maybe the same: a task pending then running, a group's counts changing),
        recording what is given, and queue `notices`, atomically.

        False, and nothing done, if another replica moved it first: the notices of each step
        are queued once.
        """
        now = aware("now", now)
        values: dict[str, Any] = {"phase": phase.value}
        if task_state is not None:
            values.update(task_state=task_state, reason=reason)
        if task_group_id is not None:
            values["task_group_id"] = task_group_id
        if run_state is not None:
            values["run_state"] = run_state.value
        if group is not None:
            values.update({column: getattr(group, name) for name, column in GROUP_COLUMNS})
        if phase is WatchPhase.DONE:
            values["resolved_at"] = now
        with self._transaction(writing=True) as session:
            moved = session.execute(
                update(WatchRow)
                .where(
                    WatchRow.fire_id == watch.fire_id,
                    # A rerun of the fire starts a watch of its own under the same id: a step
                    # read from the watch before moves nothing of the new one.
                    WatchRow.created_at == watch.created_at,
                    WatchRow.phase == watch.phase.value,
                    WatchRow.task_state.is_not_distinct_from(watch.task_state),
                    # Counts another replica listed since are newer than those about to be
                    # written, which were listed from the watch as read.
                    *(
                        getattr(WatchRow, column).is_not_distinct_from(
                            None if watch.group is None else getattr(watch.group, name)
                        )
                        for name, column in GROUP_COLUMNS
                    ),
                )
                .values(values)
                .returning(WatchRow.fire_id)
            ).scalar_one_or_none()
            if moved is None:
                return False
            queue_notices(session, notices, now, fire_id=watch.fire_id)
        return True


def start_watches(session: Session, finished: Sequence[Outcome], *, now: datetime) -> None:
    """Start following the finished fires that ask for it and have something to follow."""
    rows = [row for outcome in finished if (row := _watch_row(outcome, now)) is not None]
    if rows:
        session.execute(insert(WatchRow), rows)


def _watch_row(outcome: Outcome, now: datetime) -> dict[str, Any] | None:
    """The watch a finished fire starts, if it asks for one and has something to follow."""
    if outcome.watch is None:
        return None
    if outcome.state is FireState.FAILED:
        phase = WatchPhase.REPORT
    elif outcome.task_id is not None and outcome.state in (
        FireState.CREATED,
        FireState.ALREADY_FIRED,
    ):
        phase = WatchPhase.TASK
    else:
        return None
    return {
        "fire_id": outcome.claim.fire_id,
        "project": outcome.claim.project,
        "job": outcome.claim.job,
        "phase": phase.value,
        "task_kind": outcome.watch.task_kind,
        "follow_group": outcome.watch.follow_group,
        "crontab": outcome.watch.crontab,
        "project_broken": outcome.watch.project_broken,
        "created_at": now,
    }


# Each count of `GroupCounts` and the column that keeps it.
GROUP_COLUMNS = tuple(
    (name, f"group_{name}") for name in ("total", "failed", "exception", "blocked", "unresolved")
)


def watch_of(watch: WatchRow, fire: FireRow) -> Watch:
    """A watch with what it follows: the fire's own columns win over the watch's copies."""
    return to_record(Watch, fire, watch, fire_state=fire.state, group=_group(watch))


def _group(watch: WatchRow) -> GroupCounts | None:
    counts = [getattr(watch, column) for _, column in GROUP_COLUMNS]
    return None if None in counts else GroupCounts(*counts)
