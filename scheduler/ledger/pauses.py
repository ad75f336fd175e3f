"""Pauses: jobs (or whole projects) that do not fire until resumed or until a given time,
each pause and resume audited in its own transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, text, update

from scheduler.common.redaction import scrub
from scheduler.ledger.audit import write_act
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import ACTIVE_PAUSE_PREDICATE, PauseRow
from scheduler.ledger.records import Act, Pause
from scheduler.ledger.store import Store, aware, upsert


class PauseStore(Store):
    """Pauses and resumes (audited), and the pauses in force at a moment."""

    def pause(
        self,
        project: str,
        job: str | None,
        *,
        reason: str,
        until: datetime | None,
        act: Act,
        now: datetime,
    ) -> Pause:
        """Pause `job` of `project` (None: the whole project) from `now` for `act`, and audit
        the act in the same transaction.

        Pausing what is paused already replaces its reason and `until`.
        """
        now = aware("now", now)
        if until is not None and aware("until", until) <= now:
            raise ValueError(f"until must be in the future, not {until.isoformat()}")
        target = {"project": project, "job": job or ""}
        with self._transaction(writing=True) as session:
            # A pause whose `until` has passed is over: close it so a new one can begin.
            session.execute(
                update(PauseRow)
                .where(*_pause_of(**target), PauseRow.until <= now)
                .values(resumed_by=PauseRow.paused_by, resumed_at=PauseRow.until)
            )
            values = {
                "reason": scrub(reason),
                "until": until,
                "paused_by": act.actor,
                "paused_at": now,
            }
            statement = upsert(session, PauseRow).values(**target, **values)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["project", "job"],
                    index_where=text(ACTIVE_PAUSE_PREDICATE),
                    set_={name: statement.excluded[name] for name in values},
                )
            )
            row = session.scalars(select(PauseRow).where(*_pause_of(**target))).one()
            paused = _pause(row)
            write_act(session, act, ok=True, result=paused.summary, now=now)
            return paused

    def resume(self, project: str, job: str | None, *, act: Act, now: datetime) -> Pause | None:
        """End the pause of `job` (None: of the project) for `act`, and audit the act in the
        same transaction; None if none was in force (the audit log says so too)."""
        now = aware("now", now)
        with self._transaction(writing=True) as session:
            row = session.scalars(
                update(PauseRow)
                .where(
                    *_pause_of(project, job or ""),
                    or_(PauseRow.until.is_(None), PauseRow.until > now),
                )
                .values(resumed_by=act.actor, resumed_at=now)
                .returning(PauseRow)
            ).one_or_none()
            resumed = _pause(row) if row is not None else None
            result = "resumed" if resumed is not None else "was not paused"
            write_act(session, act, ok=resumed is not None, result=result, now=now)
            return resumed

    def pauses(self, *, project: str | None = None, at: datetime | None = None) -> list[Pause]:
        """Pauses, newest first: all of them, or those in force at `at`."""
        return self._pauses(None if project is None else [project], at)

    def pauses_of(self, projects: Collection[str], *, at: datetime) -> dict[str, list[Pause]]:
        """The pauses of each of `projects` in force at `at` (newest first), by project: one
        read; a project without any has none listed."""
        found: dict[str, list[Pause]] = {project: [] for project in projects}
        for pause in self._pauses(projects, at) if projects else []:
            found[pause.project].append(pause)
        return found

    def _pauses(self, projects: Collection[str] | None, at: datetime | None) -> list[Pause]:
        query = select(PauseRow).order_by(PauseRow.paused_at.desc(), PauseRow.id.desc())
        if projects is not None:
            query = query.where(PauseRow.project.in_(set(projects)))
        if at is not None:
            at = aware("at", at)
            query = query.where(
                PauseRow.paused_at <= at,
                or_(PauseRow.resumed_at.is_(None), PauseRow.resumed_at > at),
                or_(PauseRow.until.is_(None), PauseRow.until > at),
            )
        with self._transaction(writing=False) as session:
            return [_pause(row) for row in session.scalars(query)]


def _pause(row: PauseRow) -> Pause:
    """A pause as handed out: the whole project's has no job (stored as '' for the index)."""
    return to_record(Pause, row, job=row.job or None)


def _pause_of(project: str, job: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions that find the pause of a target that is not resumed."""
    return (PauseRow.project == project, PauseRow.job == job, PauseRow.resumed_at.is_(None))
