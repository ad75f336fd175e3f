"""Slots and history: each project's evaluated slots, and the reads of fires past and present.

What the engine, the CLI and the web read back; claims and skips write the fires themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import Text, and_, bindparam, func, or_, select, true, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from scheduler.ledger.claims import same_fire
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import SLOTS, FireRow, SlotRow, WatchRow
from scheduler.ledger.records import (
    OPEN_STATES,
    Fire,
    FireKind,
    FireState,
    RunState,
    SlotOutcome,
    SlotRecord,
    UnresolvedFire,
    WatchPhase,
)
from scheduler.ledger.store import (
    Store,
    UpsertInsert,
    aware,
    checked_slot,
    given,
    scrubbed,
    upsert_on,
)


class HistoryStore(Store):
    """The evaluated slots, and fires found by filters, by id or by (project, job, slot)."""

    def record_slot(
        self,
        project: str,
        slot: datetime,
        *,
        revision: str | None,
        outcome: SlotOutcome,
        error: str | None,
        replica: str,
        now: datetime,
    ) -> None:
        """Record the evaluation of `project` at `slot`, replacing an earlier one of that slot."""
        self.record_slots(
            [SlotRecord(project, slot, revision, outcome, error, replica, aware("now", now))]
        )

    def record_slots(self, records: Sequence[SlotRecord]) -> None:
        """`record_slot` for the evaluations of a tick, in one statement (the last of a
        project's slot given twice wins)."""
        rows = {
            (record.project, checked_slot(record.slot, FireKind.SCHEDULED)): {
                "revision": record.revision,
                "outcome": record.outcome.value,
                "error": scrubbed(record.error),
                "replica": record.replica,
                "evaluated_at": aware("evaluated_at", record.evaluated_at),
            }
            for record in records
        }
        if not rows:
            return
        with self._transaction(writing=True) as session:
            # Core, the rows as parameters: compiled once, not once per tick for its projects.
            session.connection().execute(
                _record_slot_statement(session.get_bind().dialect.name),
                [{"project": p, "slot": s, **values} for (p, s), values in sorted(rows.items())],
            )

    def last_evaluated_slot(self, project: str) -> datetime | None:
        """The latest slot recorded for `project`, whatever its outcome."""
        return self.last_evaluated_slots([project]).get(project)

    def last_evaluated_slots(self, projects: Sequence[str]) -> dict[str, datetime]:
        """`last_evaluated_slot` of each of `projects` that has one, by project: one read."""
        if not projects:
            return {}
        query = (
            select(SlotRow.project, func.max(SlotRow.slot))
            .where(SlotRow.project.in_(set(projects)))
            .group_by(SlotRow.project)
        )
        with self._transaction(writing=False) as session:
            return dict(session.execute(query).all())

    def latest_slots(self, projects: Sequence[str]) -> dict[str, SlotRecord]:
        """The latest slot evaluation of each of `projects` that has one, by project.

        One index look-up a project (not a scan of every slot kept), in one statement per
        `LATEST_BATCH` projects.
        """
        names = list(dict.fromkeys(projects))
        found: dict[str, SlotRecord] = {}
        with self._transaction(writing=False) as session:
            if session.get_bind().dialect.name == "postgresql" and names:
                # PostgreSQL plans a long UNION slowly: the same look-ups as one lateral join.
                for row in session.scalars(_LATEST_SLOTS_LATERAL, {"projects": names}):
                    found[row.project] = to_record(SlotRecord, row)
                return found
            for start in range(0, len(names), LATEST_BATCH):
                batch = names[start : start + LATEST_BATCH]
                given = {f"project_{n}": name for n, name in enumerate(batch)}
                for row in session.scalars(_latest_slots(len(batch)), given):
                    found[row.project] = to_record(SlotRecord, row)
        return found

    def latest_fires(self, project: str, jobs: Sequence[str]) -> dict[str, Fire]:
        """The newest fire (as `fires` orders them) of each of the project's `jobs` that has one,
        by job: one index look-up a job, in one statement per `LATEST_BATCH` jobs."""
        names = list(dict.fromkeys(jobs))
        found: dict[str, Fire] = {}
        with self._transaction(writing=False) as session:
            for start in range(0, len(names), LATEST_BATCH):
                batch = names[start : start + LATEST_BATCH]
                given = {"project": project} | {f"job_{n}": job for n, job in enumerate(batch)}
                for row in session.scalars(_latest_fires(len(batch)), given):
                    found[row.job] = to_record(Fire, row)
        return found

    def slots(
        self, *, project: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[SlotRecord]:
        """Slot evaluations matching every filter given, newest slot first."""
        query = (
            select(SlotRow)
            .filter_by(**given(project=project))
            .order_by(SlotRow.slot.desc(), SlotRow.project)
        )
        if since is not None:
            query = query.where(SlotRow.slot >= aware("since", since))
        return self._records(SlotRecord, query.limit(limit))

    def fires(
        self,
        *,
        project: str | None = None,
        job: str | None = None,
        state: FireState | RunState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
        details: bool = True,
    ) -> list[Fire]:
        """Fires matching every filter given, newest slot first (then newest fire first).

        `state` keeps the fires in that state or whose run is in it (its watch's run state):
        `failed` both those that failed to fire and those whose task or task group failed.
        `since` keeps fires whose slot is at or after it, `until` those before it; `offset`
        skips that many of the matches (a page is `offset`, `limit`). Without `details`, the
        rendered tasks (kilobytes each) are not read: each fire's `details` is None.
        """
        query = (
            select(FireRow)
            .filter_by(**given(project=project, job=job))
            .order_by(FireRow.slot.desc(), FireRow.id.desc())
        )
        if state is not None:
            query = query.outerjoin(WatchRow, WatchRow.fire_id == FireRow.id).where(
                or_(FireRow.state == state.value, WatchRow.run_state == state.value)
            )
        if since is not None:
            query = query.where(FireRow.slot >= aware("since", since))
        if until is not None:
            query = query.where(FireRow.slot < aware("until", until))
        query = query.offset(offset).limit(limit)
        if details:
            return self._records(Fire, query)
        return self._records(Fire, query, details=None)

    def task_groups(self, fire_ids: Sequence[int]) -> dict[int, str]:
        """The task group of the task each of these fires sent, by fire, where its rendered
        task (`details`) names one: read from the document in the database, the rest of it
        (kilobytes a fire) left there."""
        group = FireRow.details[TASK_GROUP_PATH]
        found: dict[int, str] = {}
        with self._transaction(writing=False) as session:
            for start in range(0, len(fire_ids), TASK_GROUPS_BATCH):
                batch = fire_ids[start : start + TASK_GROUPS_BATCH]
                query = select(FireRow.id, group).where(FireRow.id.in_(batch))
                for fire_id, value in session.execute(query):
                    if isinstance(value, str):
                        found[fire_id] = value
        return found

    def unresolved_fires(self, project: str, *, unwatched_since: datetime) -> list[UnresolvedFire]:
        """`unresolved_fires_of` one project."""
        return self.unresolved_fires_of([project], unwatched_since=unwatched_since)

    def unresolved_fires_of(
        self, projects: Collection[str], *, unwatched_since: datetime
    ) -> list[UnresolvedFire]:
        """The `projects`' fires that may still be running, for the overlap policies, in one
        read a tick: those being made (claimed or retrying), those whose watch waits for their
        task or its group, and those that made a task and have no watch (none is started
        without one today; a ledger may hold older ones) finished since `unwatched_since`
        (the queue resolves every task by its deadline, so older ones have). Oldest slot first.
        """
        since = aware("unwatched_since", unwatched_since)
        query = (
            select(
                FireRow,
                WatchRow.phase,
                WatchRow.task_state,
                WatchRow.task_group_id,
                WatchRow.task_kind,
                WatchRow.follow_group,
                FireRow.details[TASK_GROUP_PATH],
            )
            .outerjoin(WatchRow, WatchRow.fire_id == FireRow.id)
            .where(FireRow.project.in_(set(projects)))
        )
        made = [FireState.CREATED.value, FireState.ALREADY_FIRED.value]
        wanted = (
            FireRow.state.in_([state.value for state in OPEN_STATES]),
            WatchRow.phase.in_([WatchPhase.TASK.value, WatchPhase.GROUP.value]),
            and_(FireRow.state.in_(made), WatchRow.fire_id.is_(None), FireRow.finished_at >= since),
        )
        found: dict[int, UnresolvedFire] = {}
        with self._transaction(writing=False) as session:
            for condition in wanted:
                for (
                    fire,
                    phase,
                    task_state,
                    watched_group,
                    task_kind,
                    follow_group,
                    rendered_group,
                ) in session.execute(query.where(condition)):
                    found[fire.id] = UnresolvedFire(
                        fire.id,
                        fire.project,
                        fire.job,
                        fire.slot,
                        FireKind(fire.kind),
                        FireState(fire.state),
                        fire.task_id,
                        watched_group
                        or (rendered_group if isinstance(rendered_group, str) else None),
                        WatchPhase(phase) if phase is not None else None,
                        task_state,
                        task_kind,
                        bool(follow_group),
                    )
        return sorted(found.values(), key=lambda fire: (fire.slot, fire.fire_id))

    def fire_by_id(self, fire_id: int) -> Fire | None:
        with self._transaction(writing=False) as session:
            row = session.get(FireRow, fire_id)
            return to_record(Fire, row) if row is not None else None

    def fire(self, project: str, job: str, slot: datetime) -> Fire | None:
        """The scheduled or catch-up fire (or skip) of `job` at `slot`, if there is one."""
        query = select(FireRow).where(
            *same_fire(project, job, checked_slot(slot, FireKind.SCHEDULED))
        )
        with self._transaction(writing=False) as session:
            row = session.scalars(query).one_or_none()
            return to_record(Fire, row) if row is not None else None


# The columns an evaluation of a slot writes (replacing an earlier one's).
_EVALUATION = ("revision", "outcome", "error", "replica", "evaluated_at")


@functools.cache
def _record_slot_statement(dialect: str) -> UpsertInsert:
    """A slot's evaluation, replacing an earlier one of the slot, on `dialect`; its rows given
    as parameters."""
    statement = upsert_on(dialect, SLOTS)
    return statement.on_conflict_do_update(
        index_elements=["project", "slot"],
        set_={name: statement.excluded[name] for name in _EVALUATION},
    )


# Where a fire's rendered task (its `details`) names its task group.
TASK_GROUP_PATH = ("task", "taskGroupId")
TASK_GROUPS_BATCH = 1000
# SQLite allows 500 SELECTs in one compound statement.
LATEST_BATCH = 400


@functools.lru_cache(maxsize=64)  # built once for each size of batch: building it costs more
def _latest_slots(count: int) -> ExecutableReturnsRows:
    """The rows of the latest slots of the projects bound as `project_0` ... `project_<count-1>`:
    for each, the primary key's largest slot of the project."""
    members = []
    for n in range(count):
        project = bindparam(f"project_{n}", type_=Text)
        latest = select(func.max(SlotRow.slot)).where(SlotRow.project == project)
        members.append(
            select(SlotRow).where(
                SlotRow.project == project, SlotRow.slot == latest.scalar_subquery()
            )
        )
    return select(SlotRow).from_statement(union_all(*members))


def _latest_slots_lateral() -> ExecutableReturnsRows:
    """PostgreSQL's form of `_latest_slots`: for each project of the array bound as
    `projects`, its newest slot row."""
    names = (
        func.unnest(bindparam("projects", type_=postgresql.ARRAY(Text)))
        .table_valued("project")
        .render_derived(name="names")
    )
    newest = (
        select(SlotRow)
        .where(SlotRow.project == names.c.project)
        .order_by(SlotRow.slot.desc())
        .limit(1)
        .lateral("newest")
    )
    return select(aliased(SlotRow, newest)).select_from(names).join(newest, true())


_LATEST_SLOTS_LATERAL = _latest_slots_lateral()


@functools.lru_cache(maxsize=64)
def _latest_fires(count: int) -> ExecutableReturnsRows:
    """The newest fire of each job bound as `job_0` ... `job_<count-1>` of the project bound as
    `project`, in the order of `HistoryStore.fires`."""
    project = bindparam("project", type_=Text)
    members = []
    for n in range(count):
        newest = (
            select(FireRow.id)
            .where(FireRow.project == project, FireRow.job == bindparam(f"job_{n}", type_=Text))
            .order_by(FireRow.slot.desc(), FireRow.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        members.append(select(FireRow).where(FireRow.id == newest))
    return select(FireRow).from_statement(union_all(*members))
