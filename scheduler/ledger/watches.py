"""The watches: each fire the service started, followed until it resolved and was reported.

A finished fire starts its watch in the claim's transaction; a step queues its notices in its own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, insert, select, update
from sqlalchemy.orm import Session

from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import FIRES, WATCHES
from scheduler.ledger.notice_records import Notice
from scheduler.ledger.notices import queue_notices_of
from scheduler.ledger.records import (
    FireState,
    GroupCounts,
    Outcome,
    RunState,
    Watch,
    WatchPhase,
    WatchStep,
)
from scheduler.ledger.store import Store, aware


class WatchStore(Store):
    """The fires being followed, and the steps that move them on."""

    def watches(self, *, limit: int | None = None) -> list[Watch]:
        """Fires still being followed, oldest first."""
        query = _watches(WATCHES.c.phase != WatchPhase.DONE.value).order_by(WATCHES.c.fire_id)
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(writing=False) as session:
            return [watch_of(row) for row in session.execute(query)]

    def watch(self, fire_id: int) -> Watch | None:
        with self._transaction(writing=False) as session:
            found = session.execute(_watches(WATCHES.c.fire_id == fire_id)).one_or_none()
            return watch_of(found) if found is not None else None

    def watches_of(self, fire_ids: Collection[int]) -> dict[int, Watch]:
        """The watches (followed or done) of the fires `fire_ids`, by fire: one read, for
        pages that show how each fire's task went."""
        if not fire_ids:
            return {}
        query = _watches(WATCHES.c.fire_id.in_(set(fire_ids)))
        with self._transaction(writing=False) as session:
            return {row.fire_id: watch_of(row) for row in session.execute(query)}

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
        step = WatchStep(watch, phase, notices, task_state, reason, task_group_id, run_state, group)
        [moved] = self.advance_watches([step], now=now)
        return moved

    def advance_watches(self, steps: Sequence[WatchStep], *, now: datetime) -> list[bool]:
        """`advance_watch` for a round of the watcher's steps, in one transaction: one read
        that locks the watches, one write of those still as their step read them, and the
        notices of each step moved. Of two steps of one watch, only the first may move it."""
        now = aware("now", now)
        if not steps:
            return []
        with self._transaction(writing=True) as session:
            current = {
                row.fire_id: row
                for row in session.execute(
                    select(*WATCHES.c)
                    .where(WATCHES.c.fire_id.in_({step.watch.fire_id for step in steps}))
                    .order_by(WATCHES.c.fire_id)  # locked in one order by every replica
                    .with_for_update()
                )
            }
            moved: list[bool] = []
            rows: list[dict[str, Any]] = []
            for step in steps:
                row = current.pop(step.watch.fire_id, None)
                as_read = row is not None and _as_read(row, step.watch)
                moved.append(as_read)
                if row is not None and as_read:
                    rows.append(_moved(row, step, now))
            if rows:
                session.connection().execute(_ADVANCE, rows)
            notices = [
                (notice, step.watch.fire_id)
                for step, done in zip(steps, moved, strict=True)
                if done
                for notice in step.notices
            ]
            queue_notices_of(session, notices, now)
        return moved


def _as_read(row: Row[Any], watch: Watch) -> bool:
    """Whether the watch is as `watch` read it: the same watch (a rerun of the fire starts a
    watch of its own under the same id), phase, task state and group counts (counts another
    replica listed since are newer than those a step listed from the watch as read)."""
    counts = (
        [None] * len(GROUP_COLUMNS)
        if watch.group is None
        else [getattr(watch.group, name) for name, _ in GROUP_COLUMNS]
    )
    return (
        row.created_at == watch.created_at
        and row.phase == watch.phase.value
        and row.task_state == watch.task_state
        and [getattr(row, column) for _, column in GROUP_COLUMNS] == counts
    )


def _moved(row: Row[Any], step: WatchStep, now: datetime) -> dict[str, Any]:
    """Every column `_ADVANCE` writes: what `step` gives, else what the row has."""
    values = {f"b_{column}": getattr(row, column) for column in _ADVANCED}
    values |= {"b_fire_id": row.fire_id, "b_phase": step.phase.value}
    if step.task_state is not None:
        values |= {"b_task_state": step.task_state, "b_reason": step.reason}
    if step.task_group_id is not None:
        values["b_task_group_id"] = step.task_group_id
    if step.run_state is not None:
        values["b_run_state"] = step.run_state.value
    if step.group is not None:
        values |= {f"b_{column}": getattr(step.group, name) for name, column in GROUP_COLUMNS}
    if step.phase is WatchPhase.DONE:
        values["b_resolved_at"] = now
    return values


def start_watches(session: Session, finished: Sequence[Outcome], *, now: datetime) -> None:
    """Start following the finished fires that ask for it and have something to follow."""
    rows = [row for outcome in finished if (row := _watch_row(outcome, now)) is not None]
    if rows:
        session.connection().execute(insert(WATCHES), rows)


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


# The columns a step writes: all of them, those it does not give as they were read, locked.
_ADVANCED = (
    "phase",
    "task_state",
    "reason",
    "task_group_id",
    "run_state",
    "resolved_at",
    *(column for _, column in GROUP_COLUMNS),
)
_ADVANCE = (
    update(WATCHES)
    .where(WATCHES.c.fire_id == bindparam("b_fire_id", type_=WATCHES.c.fire_id.type))
    .values(
        {column: bindparam(f"b_{column}", type_=WATCHES.c[column].type) for column in _ADVANCED}
    )
)


def _watches(*conditions: ColumnElement[bool]) -> Select[Any]:
    """The watches that meet `conditions`, each a row of its fire's columns and its own (the
    fire's win over the watch's copies), read as plain tuples: a round reads every watch."""
    own = [column for column in WATCHES.c if column.name not in FIRES.c]
    return (
        select(*FIRES.c, *own)
        .join_from(WATCHES, FIRES, FIRES.c.id == WATCHES.c.fire_id)
        .where(*conditions)
    )


def watch_of(row: Row[Any]) -> Watch:
    """A watch with what it follows, from a row `_watches` read."""
    return to_record(Watch, row, fire_state=row.state, group=_group(row))


def _group(watch: Row[Any]) -> GroupCounts | None:
    counts = [getattr(watch, column) for _, column in GROUP_COLUMNS]
    return None if None in counts else GroupCounts(*counts)
