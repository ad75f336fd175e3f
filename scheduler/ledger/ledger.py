"""The ledger: claims that make each scheduled fire happen once, and the history of fires and slots.

Synchronous and thread-safe (one engine and its pool, a session per call): the asyncio engine
calls it through `asyncio.to_thread`. SQLite and PostgreSQL give the same guarantees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import ColumnElement, Engine, and_, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scheduler.cron.timing import format_slot, slot_of
from scheduler.ledger.connecting import WRITING, create_ledger_engine
from scheduler.ledger.migrating import upgrade
from scheduler.ledger.models import (
    ACTIVE_PAUSE_PREDICATE,
    AuditRow,
    Base,
    FireRow,
    IncidentRow,
    LetterRow,
    PauseRow,
    RemediationRow,
    SlotRow,
    WatchRow,
)
from scheduler.ledger.records import (
    OPEN_STATES,
    Act,
    AuditEntry,
    Claim,
    Fire,
    FireKind,
    FireState,
    Health,
    Incident,
    Letter,
    LetterState,
    Notice,
    Outcome,
    Pause,
    Remediation,
    RemediationState,
    SlotOutcome,
    SlotRecord,
    Watch,
    WatchPhase,
)
from scheduler.redaction import scrub, scrub_data

UpsertInsert = postgresql.Insert | sqlite.Insert


class Ledger:
    """The service's record of claims, fires and evaluated slots.

    Every time passed in must be timezone-aware (any zone; stored as UTC) and every time handed
    back is aware UTC. Scheduled and catch-up slots must be 15-minute UTC slots.
    """

    def __init__(self, engine: Engine) -> None:
        """Use `Ledger.open`: this assumes the database is already migrated."""
        self._engine = engine

    @classmethod
    def open(cls, url: str) -> Ledger:
        """Connect to the ledger at `url` and bring its schema up to date.

        `url` is `sqlite:///path/ledger.db` (the file and its directory are created) or
        `postgresql+psycopg://user@host:5432/database`. Safe when several processes open the
        same ledger at once. Raises LedgerURLError for a URL the ledger cannot use.
        """
        engine = create_ledger_engine(url)
        try:
            upgrade(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Ledger on {self._engine.dialect.name}>"

    # Claims

    def claim(
        self,
        project: str,
        job: str,
        slot: datetime,
        *,
        kind: FireKind,
        replica: str,
        now: datetime,
        lease: timedelta,
    ) -> Claim | None:
        """Claim the fire of `job` at `slot` for `replica`, leased until `now + lease`.

        Scheduled and catch-up fires share one fire per (project, job, slot): the first claimer
        gets it and everyone else gets None, unless the fire is still unfinished and its lease
        has run out (its replica died or released it): then exactly one claimer takes it over,
        with the next attempt number. Finished and skipped fires are never claimed again.
        A manual fire always gets a fire of its own.
        """
        [claim] = self.claim_many(
            project, [(job, slot, kind)], replica=replica, now=now, lease=lease
        )
        return claim

    def claim_many(
        self,
        project: str,
        wanted: Sequence[tuple[str, datetime, FireKind]],
        *,
        replica: str,
        now: datetime,
        lease: timedelta,
    ) -> list[Claim | None]:
        """`claim` for several (job, slot, kind) of one project, in one transaction.

        A tick claims all of a project's due fires at once: one write instead of one per job.
        """
        now = _aware("now", now)
        lease_until = now + _positive("lease", lease)
        holder = {"replica": replica, "claimed_at": now, "lease_until": lease_until}
        keys = [(job, _slot(slot, kind), kind) for job, slot, kind in wanted]
        claims: list[Claim | None] = []
        with self._transaction(writing=True) as session:
            for job, slot, kind in keys:
                key = {"project": project, "job": job, "slot": slot}
                kind_holder = {**holder, "kind": kind.value}
                taken: tuple[int, int] | None
                if kind is FireKind.MANUAL:
                    taken = (self._claim_new(session, key, kind_holder), 1)
                else:
                    taken = self._claim_unique(session, key, kind_holder, now=now)
                claims.append(
                    None
                    if taken is None
                    else Claim(taken[0], project, job, slot, kind, replica, lease_until, taken[1])
                )
        return claims

    def claim_manual(
        self,
        project: str,
        job: str,
        *,
        replica: str,
        now: datetime,
        lease: timedelta,
        min_interval: timedelta,
        unsure_for: timedelta = timedelta(0),
    ) -> Claim | Fire:
        """A claim on a new manual fire of `job`, or, if one that made a task (or is making one)
        was claimed less than `min_interval` before `now`, that fire; so is a failed one whose
        request was sent less than `unsure_for` before `now` (it may have made its task all
        the same). Atomic: of concurrent callers, one gets the claim."""
        now = _aware("now", now)
        lease_until = now + _positive("lease", lease)
        slot = slot_of(now)
        with self._transaction(writing=True) as session:
            if session.get_bind().dialect.name == "postgresql":
                # SQLite writers already run one at a time; PostgreSQL's wait on this lock.
                lock = int.from_bytes(hashlib.sha256(f"{project}/{job}".encode()).digest()[:8])
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock - 2**63})
            last = session.scalars(
                select(FireRow)
                .where(
                    FireRow.project == project,
                    FireRow.job == job,
                    FireRow.kind == FireKind.MANUAL.value,
                    or_(
                        and_(
                            FireRow.claimed_at > now - min_interval,
                            # Only fires that made a task, or may still: a dry run or a failure
                            # starts no storm, and its retry should not wait.
                            FireRow.state.in_(
                                [
                                    FireState.CLAIMED.value,
                                    FireState.CREATED.value,
                                    FireState.ALREADY_FIRED.value,
                                ]
                            ),
                        ),
                        and_(
                            FireRow.state == FireState.FAILED.value,
                            FireRow.sent_at > now - unsure_for,
                        ),
                    ),
                )
                .order_by(FireRow.claimed_at.desc(), FireRow.id.desc())
                .limit(1)
            ).first()
            if last is not None:
                return _fire(last)
            holder = {
                "replica": replica,
                "claimed_at": now,
                "lease_until": lease_until,
                "kind": FireKind.MANUAL.value,
            }
            fire_id = self._claim_new(
                session, {"project": project, "job": job, "slot": slot}, holder
            )
            return Claim(fire_id, project, job, slot, FireKind.MANUAL, replica, lease_until, 1)

    @staticmethod
    def _claim_new(session: Session, key: dict[str, Any], holder: dict[str, Any]) -> int:
        return session.execute(
            insert(FireRow)
            .values(**key, **holder, state=FireState.CLAIMED.value, attempt=1)
            .returning(FireRow.id)
        ).scalar_one()

    def _claim_unique(
        self, session: Session, key: dict[str, Any], holder: dict[str, Any], *, now: datetime
    ) -> tuple[int, int] | None:
        """(fire id, attempt) of the claim taken on the slot's one fire, or None."""
        first = self._insert(session, FireRow).values(
            **key, **holder, state=FireState.CLAIMED.value, attempt=1
        )
        # The unique index turns a second claimer's insert into nothing (on PostgreSQL it first
        # waits for a concurrent claimer's transaction to end).
        fire_id = session.execute(
            first.on_conflict_do_nothing().returning(FireRow.id)
        ).scalar_one_or_none()
        if fire_id is not None:
            return fire_id, 1
        # One statement both checks and takes: of several concurrent take-overs, the first to
        # update the row moves the lease into the future, and the others then find no row that
        # matches (PostgreSQL re-checks the WHERE clause on the updated row; SQLite writers
        # run one at a time). A retrying fire is taken the same way once its retry is due.
        taken = session.execute(
            update(FireRow)
            .where(
                *_same_fire(**key),
                FireRow.state.in_([state.value for state in OPEN_STATES]),
                FireRow.lease_until <= now,
            )
            .values(**holder, state=FireState.CLAIMED.value, attempt=FireRow.attempt + 1)
            .returning(FireRow.id, FireRow.attempt)
        ).one_or_none()
        return (taken.id, taken.attempt) if taken is not None else None

    def renew(self, claim: Claim, *, now: datetime, lease: timedelta) -> bool:
        """Extend the lease to `now + lease`; False if the claim is no longer ours."""
        [renewed] = self.renew_many([claim], now=now, lease=lease)
        return renewed

    def renew_many(self, claims: Sequence[Claim], *, now: datetime, lease: timedelta) -> list[bool]:
        """`renew` for the claims a replica has in flight, in one transaction."""
        lease_until = _aware("now", now) + _positive("lease", lease)
        with self._transaction(writing=True) as session:
            return [
                self._update_claimed(session, claim, lease_until=lease_until) for claim in claims
            ]

    def mark_sent(self, claim: Claim, *, now: datetime, details: dict[str, Any]) -> bool:
        """Record, before a fire's request goes out, when and what: whoever finishes the fire
        after an unknown outcome (a lost reply, a crash) looks for what it may have made.
        False (and nothing recorded) if the claim is no longer ours: then send nothing."""
        return self._update_own(claim, sent_at=_aware("now", now), details=details)

    def open_fires(self, *, due_at: datetime, project: str | None = None) -> list[Fire]:
        """Unfinished scheduled and catch-up fires nobody holds at `due_at`: claims whose lease
        ran out (their replica died or released them) and retries that are due; oldest slot
        first. Manual fires are never taken over: the person who fired one was told its end."""
        query = (
            select(FireRow)
            .where(
                FireRow.state.in_([state.value for state in OPEN_STATES]),
                FireRow.lease_until <= _aware("due_at", due_at),
                FireRow.kind != FireKind.MANUAL.value,
            )
            .order_by(FireRow.slot, FireRow.id)
        )
        if project is not None:
            query = query.where(FireRow.project == project)
        with self._transaction(writing=False) as session:
            return [_fire(row) for row in session.scalars(query)]

    def release_replica(self, replica: str, *, now: datetime) -> tuple[int, int]:
        """Release every claim and outbox letter held under the name `replica`: a process
        starting under a name takes over at once what its dead predecessor held. Only for a
        name no other live process uses. The numbers of fires and letters released."""
        now = _aware("now", now)
        with self._transaction(writing=True) as session:
            fires = session.execute(
                update(FireRow)
                .where(
                    FireRow.state == FireState.CLAIMED.value,
                    FireRow.replica == replica,
                    FireRow.lease_until > now,
                )
                .values(lease_until=now)
                .returning(FireRow.id)
            ).all()
            letters = session.execute(
                update(LetterRow)
                .where(
                    LetterRow.state == LetterState.PENDING.value,
                    LetterRow.replica == replica,
                )
                .values(replica=None, lease_until=None)
                .returning(LetterRow.id)
            ).all()
        return len(fires), len(letters)

    def finish(
        self,
        claim: Claim,
        *,
        state: FireState,
        now: datetime,
        task_id: str | None = None,
        revision: str | None = None,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """Record how the claimed fire ended; False (and nothing recorded) if it is not ours.

        A claim is ours while nobody has taken it over and it is not finished, even if its
        lease has run out. `error` and `details` are stored as given: callers pass text and
        JSON a person may read, never secrets.
        """
        outcome = Outcome(claim, state, task_id, revision, error, details)
        [recorded] = self.finish_many([outcome], now=now)
        return recorded

    def finish_many(self, outcomes: Sequence[Outcome], *, now: datetime) -> list[bool]:
        """`finish` for several fires, in one transaction (a tick records a project's at once)."""
        if any(outcome.state is FireState.CLAIMED for outcome in outcomes):
            raise ValueError("finish needs the state the fire ended in, not 'claimed'")
        if any((o.state is FireState.RETRYING) != (o.retry_at is not None) for o in outcomes):
            raise ValueError("a retrying fire needs retry_at, and only a retrying one has it")
        finished_at = _aware("now", now)
        recorded = []
        watches = []
        with self._transaction(writing=True) as session:
            for outcome in outcomes:
                retry_at = outcome.retry_at
                retrying = retry_at is not None
                ours = self._update_claimed(
                    session,
                    outcome.claim,
                    state=outcome.state.value,
                    finished_at=None if retrying else finished_at,
                    lease_until=None if retry_at is None else _aware("retry_at", retry_at),
                    task_id=outcome.task_id,
                    revision=outcome.revision,
                    error=_scrubbed(outcome.error),
                    # Not scrubbed: a rendered task comes from the repository's public template.
                    # Without new details, those recorded when the request was sent stay: the
                    # next attempt needs them to find what it made.
                    **({} if outcome.details is None else {"details": outcome.details}),
                )
                watch = _watch_row(outcome, finished_at) if ours and not retrying else None
                if watch is not None:
                    watches.append(watch)
                recorded.append(ours)
            if watches:
                # In the same transaction: a fire the ledger holds is never left unwatched.
                session.execute(insert(WatchRow), watches)
        return recorded

    def release(self, claim: Claim, *, now: datetime) -> bool:
        """Give up an unfinished claim (on shutdown) so that another replica may take it now.

        False if it was no longer ours.
        """
        return self._update_own(claim, lease_until=_aware("now", now))

    # Remediations

    def start_remediation(
        self,
        project: str,
        *,
        action: str,
        expiring: list[dict[str, Any]],
        replica: str,
        now: datetime,
        cooldown: timedelta,
    ) -> Remediation | None:
        """Start a remediation of `project`, or None: one is running (on any replica) or the
        last real one (not a dry run) started or ended less than `cooldown` ago."""
        now = _aware("now", now)
        with self._transaction(writing=True) as session:
            # A dry run changed nothing, so it holds nothing back.
            latest = session.scalars(
                select(RemediationRow)
                .where(
                    RemediationRow.project == project,
                    RemediationRow.state != RemediationState.DRY_RUN.value,
                )
                .order_by(RemediationRow.started_at.desc(), RemediationRow.id.desc())
                .limit(1)
            ).first()
            if latest is not None:
                last_moment = latest.finished_at or latest.started_at
                if latest.state == RemediationState.RUNNING.value or last_moment > now - cooldown:
                    return None
            # The partial unique index turns a concurrent replica's second start into nothing.
            new_id = session.execute(
                self._insert(session, RemediationRow)
                .values(
                    project=project,
                    state=RemediationState.RUNNING.value,
                    replica=replica,
                    action=action,
                    expiring=expiring,
                    started_at=now,
                )
                .on_conflict_do_nothing()
                .returning(RemediationRow.id)
            ).scalar_one_or_none()
            if new_id is None:
                return None
            row = session.get(RemediationRow, new_id)
            assert row is not None
            return _remediation(row)

    def remediation_triggered(
        self, remediation_id: int, *, task_id: str | None, task_group_id: str | None
    ) -> None:
        """Record the action task a running remediation triggered, and its task group."""
        with self._transaction(writing=True) as session:
            session.execute(
                update(RemediationRow)
                .where(RemediationRow.id == remediation_id)
                .values(task_id=task_id, task_group_id=task_group_id)
            )

    def finish_remediation(
        self,
        remediation_id: int,
        *,
        state: RemediationState,
        now: datetime,
        error: str | None = None,
    ) -> bool:
        """Record a running remediation's verdict; False if it was not running any more."""
        if state is RemediationState.RUNNING:
            raise ValueError("finish_remediation needs the verdict, not 'running'")
        with self._transaction(writing=True) as session:
            finished = session.execute(
                update(RemediationRow)
                .where(
                    RemediationRow.id == remediation_id,
                    RemediationRow.state == RemediationState.RUNNING.value,
                )
                .values(state=state.value, finished_at=_aware("now", now), error=_scrubbed(error))
                .returning(RemediationRow.id)
            ).scalar_one_or_none()
        return finished is not None

    def running_remediation(self, project: str) -> Remediation | None:
        with self._transaction(writing=False) as session:
            row = session.scalars(
                select(RemediationRow).where(
                    RemediationRow.project == project,
                    RemediationRow.state == RemediationState.RUNNING.value,
                )
            ).first()
            return _remediation(row) if row is not None else None

    def remediations(
        self, *, project: str | None = None, limit: int | None = None
    ) -> list[Remediation]:
        """Remediations, newest first."""
        query = select(RemediationRow).order_by(
            RemediationRow.started_at.desc(), RemediationRow.id.desc()
        )
        if project is not None:
            query = query.where(RemediationRow.project == project)
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(writing=False) as session:
            return [_remediation(row) for row in session.scalars(query)]

    def _update_own(self, claim: Claim, **values: Any) -> bool:
        with self._transaction(writing=True) as session:
            return self._update_claimed(session, claim, **values)

    @staticmethod
    def _update_claimed(session: Session, claim: Claim, **values: Any) -> bool:
        updated = session.execute(
            update(FireRow)
            .where(
                FireRow.id == claim.fire_id,
                FireRow.state == FireState.CLAIMED.value,
                FireRow.replica == claim.replica,
                FireRow.attempt == claim.attempt,
            )
            .values(values)
            .returning(FireRow.id)
        ).scalar_one_or_none()
        return updated is not None

    def record_skip(
        self,
        project: str,
        job: str,
        slot: datetime,
        *,
        kind: FireKind,
        reason: str,
        replica: str,
        now: datetime,
    ) -> bool:
        """Record that `job`'s fire at `slot` was skipped and why.

        Takes the slot's one fire like a claim does: False, and nothing recorded, if the slot
        already has a fire (claimed, finished or skipped).
        """
        if kind is FireKind.MANUAL:
            raise ValueError("manual fires are never skipped; only scheduled and catch-up ones")
        now = _aware("now", now)
        with self._transaction(writing=True) as session:
            recorded = session.execute(
                self._insert(session, FireRow)
                .values(
                    project=project,
                    job=job,
                    slot=_slot(slot, kind),
                    kind=kind.value,
                    state=FireState.SKIPPED.value,
                    attempt=0,
                    replica=replica,
                    error=_scrubbed(reason),
                    claimed_at=now,
                    finished_at=now,
                )
                .on_conflict_do_nothing()
                .returning(FireRow.id)
            ).scalar_one_or_none()
        return recorded is not None

    # Slots

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
        values = {
            "revision": revision,
            "outcome": outcome.value,
            "error": _scrubbed(error),
            "replica": replica,
            "evaluated_at": _aware("now", now),
        }
        with self._transaction(writing=True) as session:
            statement = self._insert(session, SlotRow).values(
                **values, project=project, slot=_slot(slot, FireKind.SCHEDULED)
            )
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["project", "slot"],
                    set_={name: statement.excluded[name] for name in values},
                )
            )

    def last_evaluated_slot(self, project: str) -> datetime | None:
        """The latest slot recorded for `project`, whatever its outcome."""
        with self._transaction(writing=False) as session:
            return session.scalar(select(func.max(SlotRow.slot)).where(SlotRow.project == project))

    # History

    def fires(
        self,
        *,
        project: str | None = None,
        job: str | None = None,
        state: FireState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Fire]:
        """Fires matching every filter given, newest slot first (then newest fire first).

        `since` keeps fires whose slot is at or after it, `until` those before it; `offset`
        skips that many of the matches (a page is `offset`, `limit`).
        """
        query = select(FireRow).order_by(FireRow.slot.desc(), FireRow.id.desc())
        if until is not None:
            query = query.where(FireRow.slot < _aware("until", until))
        if offset:
            query = query.offset(offset)
        if project is not None:
            query = query.where(FireRow.project == project)
        if job is not None:
            query = query.where(FireRow.job == job)
        if state is not None:
            query = query.where(FireRow.state == state.value)
        if since is not None:
            query = query.where(FireRow.slot >= _aware("since", since))
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(writing=False) as session:
            return [_fire(row) for row in session.scalars(query)]

    def fire_by_id(self, fire_id: int) -> Fire | None:
        with self._transaction(writing=False) as session:
            row = session.get(FireRow, fire_id)
            return _fire(row) if row is not None else None

    def fire(self, project: str, job: str, slot: datetime) -> Fire | None:
        """The scheduled or catch-up fire (or skip) of `job` at `slot`, if there is one."""
        query = select(FireRow).where(*_same_fire(project, job, _slot(slot, FireKind.SCHEDULED)))
        with self._transaction(writing=False) as session:
            row = session.scalars(query).one_or_none()
            return _fire(row) if row is not None else None

    def slots(
        self, *, project: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[SlotRecord]:
        """Slot evaluations matching every filter given, newest slot first."""
        query = select(SlotRow).order_by(SlotRow.slot.desc(), SlotRow.project)
        if project is not None:
            query = query.where(SlotRow.project == project)
        if since is not None:
            query = query.where(SlotRow.slot >= _aware("since", since))
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(writing=False) as session:
            return [_slot_record(row) for row in session.scalars(query)]

    # Watches: what the service started, followed until it resolved and was reported

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
            return [_watch(watch, fire) for watch, fire in session.execute(query)]

    def watch(self, fire_id: int) -> Watch | None:
        query = (
            select(WatchRow, FireRow)
            .join(FireRow, FireRow.id == WatchRow.fire_id)
            .where(WatchRow.fire_id == fire_id)
        )
        with self._transaction(writing=False) as session:
            found = session.execute(query).one_or_none()
            return _watch(*found) if found is not None else None

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
    ) -> bool:
        """Move `watch` on from the phase it was read in, and queue `notices`, atomically.

        False, and nothing done, if another replica moved it first: the notices of each step
        are queued once.
        """
        now = _aware("now", now)
        values: dict[str, Any] = {"phase": phase.value}
        if task_state is not None:
            values.update(task_state=task_state, reason=reason)
        if task_group_id is not None:
            values["task_group_id"] = task_group_id
        if phase is WatchPhase.DONE:
            values["resolved_at"] = now
        with self._transaction(writing=True) as session:
            moved = session.execute(
                update(WatchRow)
                .where(WatchRow.fire_id == watch.fire_id, WatchRow.phase == watch.phase.value)
                .values(values)
                .returning(WatchRow.fire_id)
            ).scalar_one_or_none()
            if moved is None:
                return False
            self._report(session, notices, now)
        return True

    # Incidents and the outbox

    def report(self, notices: Sequence[Notice], *, now: datetime) -> list[str]:
        """Queue what `notices` call for, in one transaction; the keys of the notices queued.

        A notice already queued (same key and destination) is not queued again. A failing
        notice opens its subject's incident and is queued, or, while one is open, is only
        counted, unless its fingerprint differs (say, a new revision is broken too). A healthy
        notice closes the open incident and is queued as a reply to its latest message.
        """
        with self._transaction(writing=True) as session:
            return self._report(session, notices, _aware("now", now))

    def _report(self, session: Session, notices: Sequence[Notice], now: datetime) -> list[str]:
        queued = []
        for notice in notices:
            if notice.health is Health.NONE:
                sent = self._queue(session, notice, now)
            elif notice.health is Health.FAILING:
                sent = self._failing(session, notice, now)
            else:
                sent = self._healthy(session, notice, now)
            if sent:
                queued.append(notice.key)
        return queued

    def _failing(self, session: Session, notice: Notice, now: datetime) -> bool:
        assert notice.subject is not None, "a failing notice needs a subject"
        opened = session.execute(
            self._insert(session, IncidentRow)
            .values(
                subject=notice.subject,
                opened_at=now,
                opened_by=notice.key,
                thread_key=notice.key,
                last_key=notice.key,
                fingerprint=notice.fingerprint,
                failures=1,
            )
            .on_conflict_do_nothing()
            .returning(IncidentRow.id)
        ).scalar_one_or_none()
        if opened is not None:
            return self._queue(session, notice, now)
        incident = session.scalars(
            select(IncidentRow)
            .where(IncidentRow.subject == notice.subject, IncidentRow.closed_at.is_(None))
            .with_for_update()
        ).one_or_none()
        if incident is None:  # closed between the two statements: by a success, which wins
            return False
        if incident.last_key == notice.key:  # the same failure, reported twice
            return False
        incident.failures += 1
        incident.last_key = notice.key
        if notice.fingerprint is None or notice.fingerprint == incident.fingerprint:
            return False
        incident.fingerprint = notice.fingerprint
        queued = self._queue(session, notice, now)
        if queued:  # a recovery replies to the latest message that was sent about it
            incident.thread_key = notice.key
        return queued

    def _healthy(self, session: Session, notice: Notice, now: datetime) -> bool:
        assert notice.subject is not None, "a healthy notice needs a subject"
        closed = session.scalars(
            update(IncidentRow)
            .where(IncidentRow.subject == notice.subject, IncidentRow.closed_at.is_(None))
            .values(closed_at=now)
            .returning(IncidentRow)
        ).one_or_none()
        if closed is None:
            return False
        return self._queue(
            session,
            notice,
            now,
            incident={
                "opened_at": closed.opened_at.isoformat(),
                "failures": closed.failures,
                "opened_by": closed.opened_by,
            },
            reply_to=closed.thread_key,
        )

    def _queue(
        self,
        session: Session,
        notice: Notice,
        now: datetime,
        *,
        incident: dict[str, Any] | None = None,
        reply_to: str | None = None,
    ) -> bool:
        queued = False
        for destination in notice.destinations:
            inserted = session.execute(
                self._insert(session, LetterRow)
                .values(
                    key=notice.key,
                    destination=destination,
                    event=scrub_data(notice.event),
                    incident=incident,
                    reply_to=reply_to,
                    state=LetterState.PENDING.value,
                    attempts=0,
                    created_at=now,
                    next_attempt_at=now,
                )
                .on_conflict_do_nothing()
                .returning(LetterRow.id)
            ).scalar_one_or_none()
            queued = queued or inserted is not None
        return queued

    def incidents(self, *, subject: str | None = None, open_only: bool = False) -> list[Incident]:
        """Incidents, newest first."""
        query = select(IncidentRow).order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc())
        if subject is not None:
            query = query.where(IncidentRow.subject == subject)
        if open_only:
            query = query.where(IncidentRow.closed_at.is_(None))
        with self._transaction(writing=False) as session:
            return [_incident(row) for row in session.scalars(query)]

    def letters(
        self,
        *,
        key: str | None = None,
        state: LetterState | None = None,
        destination: str | None = None,
        limit: int | None = None,
    ) -> list[Letter]:
        """The outbox, oldest first."""
        query = select(LetterRow).order_by(LetterRow.id)
        if key is not None:
            query = query.where(LetterRow.key == key)
        if state is not None:
            query = query.where(LetterRow.state == state.value)
        if destination is not None:
            query = query.where(LetterRow.destination == destination)
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(writing=False) as session:
            return [_letter(row) for row in session.scalars(query)]

    def take_letters(
        self, *, replica: str, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[Letter]:
        """Claim the letters due for delivery, oldest first, for `replica` until `now + lease`.

        Each destination's letters go out in the order they were queued: a destination's
        letters are taken up to the first one that is not due (backing off) or is held by
        another replica. What a reply replies to comes with it, as `thread`, once it was sent.
        """
        now = _aware("now", now)
        lease_until = now + _positive("lease", lease)
        with self._transaction(writing=True) as session:
            # Each destination's oldest pending letter says whether the destination is open:
            # a backlog waiting on one destination must not hide the others' letters.
            heads = (
                select(func.min(LetterRow.id))
                .where(LetterRow.state == LetterState.PENDING.value)
                .group_by(LetterRow.destination)
            )
            open_destinations = [
                row.destination
                for row in session.scalars(select(LetterRow).where(LetterRow.id.in_(heads)))
                if _takeable(row, now)
            ]
            pending = session.scalars(
                select(LetterRow)
                .where(
                    LetterRow.state == LetterState.PENDING.value,
                    LetterRow.destination.in_(open_destinations),
                )
                .order_by(LetterRow.id)
                .limit(limit)
            ).all()
            blocked: set[str] = set()
            taken: list[Letter] = []
            for row in pending:
                if row.destination in blocked:
                    continue
                if not _takeable(row, now):
                    blocked.add(row.destination)
                    continue
                claimed = session.execute(
                    update(LetterRow)
                    .where(
                        LetterRow.id == row.id,
                        LetterRow.state == LetterState.PENDING.value,
                        LetterRow.attempts == row.attempts,
                        # Re-checked on the row as it is now: of two replicas, one takes it.
                        or_(LetterRow.lease_until.is_(None), LetterRow.lease_until <= now),
                    )
                    .values(replica=replica, lease_until=lease_until)
                    .returning(LetterRow.id)
                    .execution_options(synchronize_session=False)
                ).scalar_one_or_none()
                if claimed is None:
                    blocked.add(row.destination)
                    continue
                taken.append(_letter(row, replica=replica, lease_until=lease_until))
            threads = self._threads(session, taken)
            return [
                replace(letter, thread=threads.get((letter.reply_to, letter.destination)))
                for letter in taken
            ]

    @staticmethod
    def _threads(
        session: Session, rows: Sequence[Letter]
    ) -> dict[tuple[str | None, str], dict[str, Any]]:
        replies = {(row.reply_to, row.destination) for row in rows if row.reply_to is not None}
        if not replies:
            return {}
        sent = session.execute(
            select(LetterRow.key, LetterRow.destination, LetterRow.posted).where(
                LetterRow.key.in_({key for key, _ in replies}),
                LetterRow.state == LetterState.SENT.value,
            )
        )
        return {
            (key, destination): posted
            for key, destination, posted in sent
            if posted is not None and (key, destination) in replies
        }

    def letter_sent(
        self, letter: Letter, *, now: datetime, posted: dict[str, Any] | None = None
    ) -> bool:
        """Record a delivery; False if the letter was no longer ours (its lease was taken)."""
        return self._settle(
            letter,
            state=LetterState.SENT.value,
            sent_at=_aware("now", now),
            posted=posted,
            attempts=letter.attempts + 1,
            last_error=None,
        )

    def letter_failed(self, letter: Letter, *, error: str, retry_at: datetime | None) -> bool:
        """Record a failed delivery: to be retried at `retry_at`, or given up on (None)."""
        values: dict[str, Any] = {"attempts": letter.attempts + 1, "last_error": scrub(error)}
        if retry_at is None:
            values["state"] = LetterState.FAILED.value
        else:
            values["next_attempt_at"] = _aware("retry_at", retry_at)
        return self._settle(letter, **values)

    def renew_letters(
        self, letters: Sequence[Letter], *, now: datetime, lease: timedelta
    ) -> list[Letter]:
        """Extend the lease of letters being delivered to `now + lease`: those still held,
        as now held (a letter's lease is part of what says it is held)."""
        lease_until = _aware("now", now) + _positive("lease", lease)
        with self._transaction(writing=True) as session:
            renewed = []
            for letter in letters:
                held = session.execute(
                    update(LetterRow)
                    .where(*_held(letter))
                    .values(lease_until=lease_until)
                    .returning(LetterRow.id)
                ).scalar_one_or_none()
                if held is not None:
                    renewed.append(replace(letter, lease_until=lease_until))
            return renewed

    def release_letters(self, letters: Sequence[Letter]) -> None:
        """Give up claims on letters not attempted, so that they go out next, in order."""
        with self._transaction(writing=True) as session:
            for letter in letters:
                session.execute(
                    update(LetterRow).where(*_held(letter)).values(replica=None, lease_until=None)
                )

    def _settle(self, letter: Letter, **values: Any) -> bool:
        with self._transaction(writing=True) as session:
            settled = session.execute(
                update(LetterRow)
                .where(*_held(letter))
                .values(replica=None, lease_until=None, **values)
                .returning(LetterRow.id)
            ).scalar_one_or_none()
        return settled is not None

    # Pauses and the audit log

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
        now = _aware("now", now)
        if until is not None and _aware("until", until) <= now:
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
            statement = self._insert(session, PauseRow).values(**target, **values)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["project", "job"],
                    index_where=text(ACTIVE_PAUSE_PREDICATE),
                    set_={name: statement.excluded[name] for name in values},
                )
            )
            row = session.scalars(select(PauseRow).where(*_pause_of(**target))).one()
            paused = _pause(row)
            self._audit(session, act, ok=True, result=paused.describe(), now=now)
            return paused

    def resume(self, project: str, job: str | None, *, act: Act, now: datetime) -> Pause | None:
        """End the pause of `job` (None: of the project) for `act`, and audit the act in the
        same transaction; None if none was in force (the audit log says so too)."""
        now = _aware("now", now)
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
            self._audit(session, act, ok=resumed is not None, result=result, now=now)
            return resumed

    def pauses(self, *, project: str | None = None, at: datetime | None = None) -> list[Pause]:
        """Pauses, newest first: all of them, or those in force at `at`."""
        query = select(PauseRow).order_by(PauseRow.paused_at.desc(), PauseRow.id.desc())
        if project is not None:
            query = query.where(PauseRow.project == project)
        if at is not None:
            at = _aware("at", at)
            query = query.where(
                PauseRow.paused_at <= at,
                or_(PauseRow.resumed_at.is_(None), PauseRow.resumed_at > at),
                or_(PauseRow.until.is_(None), PauseRow.until > at),
            )
        with self._transaction(writing=False) as session:
            return [_pause(row) for row in session.scalars(query)]

    def record_act(self, act: Act, *, ok: bool, result: str, now: datetime) -> AuditEntry:
        """Write one act and its outcome to the audit log (secrets in it masked)."""
        with self._transaction(writing=True) as session:
            return self._audit(session, act, ok=ok, result=result, now=_aware("now", now))

    @staticmethod
    def _audit(session: Session, act: Act, *, ok: bool, result: str, now: datetime) -> AuditEntry:
        row = AuditRow(
            at=now,
            actor=act.actor,
            action=act.action,
            target=act.target,
            input=scrub_data(act.input),
            ok=ok,
            result=scrub(result),
        )
        session.add(row)
        session.flush()
        return _audit_entry(row)

    def audit_log(
        self, *, since: datetime | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        """Acts, newest first."""
        query = select(AuditRow).order_by(AuditRow.at.desc(), AuditRow.id.desc())
        if since is not None:
            query = query.where(AuditRow.at >= _aware("since", since))
        if limit is not None:
            query = query.limit(limit)
        with self._transaction(writing=False) as session:
            return [_audit_entry(row) for row in session.scalars(query)]

    # Plumbing

    @contextmanager
    def _transaction(self, *, writing: bool) -> Iterator[Session]:
        with Session(self._engine) as session, session.begin():
            # Set before the transaction begins: on SQLite a writing one takes the write lock.
            session.connection(execution_options={WRITING: writing})
            yield session

    @staticmethod
    def _insert(
        session: Session,
        model: type[FireRow | SlotRow | RemediationRow | IncidentRow | LetterRow | PauseRow],
    ) -> UpsertInsert:
        """An INSERT with the backend's ON CONFLICT clauses (the same on both)."""
        if session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(model)
        return sqlite.insert(model)


def _same_fire(project: str, job: str, slot: datetime) -> tuple[ColumnElement[bool], ...]:
    """The conditions that find the one scheduled or catch-up fire of a (project, job, slot)."""
    return (
        FireRow.project == project,
        FireRow.job == job,
        FireRow.slot == slot,
        FireRow.kind != FireKind.MANUAL.value,
    )


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


def _scrubbed(text: str | None) -> str | None:
    """Free text as the ledger stores it: whatever looks like a secret masked."""
    return None if text is None else scrub(text)


def _aware(name: str, moment: datetime) -> datetime:
    """`moment` in UTC, so that what the ledger hands back (claims too) is always UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, not {moment!r}")
    return moment.astimezone(UTC)


def _slot(slot: datetime, kind: FireKind) -> datetime:
    """`slot`, checked: a slot that is off the quarter hour would escape the uniqueness check."""
    slot = _aware("slot", slot)
    if kind is not FireKind.MANUAL and slot_of(slot) != slot:
        raise ValueError(
            f"{slot.isoformat()} is not a slot; slots are on the quarter hour in UTC, "
            f"like {format_slot(slot_of(slot))}"
        )
    return slot


def _positive(name: str, duration: timedelta) -> timedelta:
    if duration <= timedelta(0):
        raise ValueError(f"{name} must be a positive duration, not {duration}")
    return duration


def _fire(row: FireRow) -> Fire:
    return Fire(
        id=row.id,
        project=row.project,
        job=row.job,
        slot=row.slot,
        kind=FireKind(row.kind),
        state=FireState(row.state),
        attempt=row.attempt,
        replica=row.replica,
        revision=row.revision,
        task_id=row.task_id,
        error=row.error,
        details=row.details,
        claimed_at=row.claimed_at,
        lease_until=row.lease_until,
        finished_at=row.finished_at,
        sent_at=row.sent_at,
    )


def _slot_record(row: SlotRow) -> SlotRecord:
    return SlotRecord(
        project=row.project,
        slot=row.slot,
        revision=row.revision,
        outcome=SlotOutcome(row.outcome),
        error=row.error,
        replica=row.replica,
        evaluated_at=row.evaluated_at,
    )


def _remediation(row: RemediationRow) -> Remediation:
    return Remediation(
        id=row.id,
        project=row.project,
        state=RemediationState(row.state),
        replica=row.replica,
        action=row.action,
        expiring=list(row.expiring),
        started_at=row.started_at,
        finished_at=row.finished_at,
        task_id=row.task_id,
        task_group_id=row.task_group_id,
        error=row.error,
    )


def _watch(watch: WatchRow, fire: FireRow) -> Watch:
    return Watch(
        fire_id=watch.fire_id,
        project=fire.project,
        job=fire.job,
        slot=fire.slot,
        kind=FireKind(fire.kind),
        fire_state=FireState(fire.state),
        revision=fire.revision,
        task_id=fire.task_id,
        error=fire.error,
        task_kind=watch.task_kind,
        follow_group=watch.follow_group,
        crontab=watch.crontab,
        project_broken=watch.project_broken,
        phase=WatchPhase(watch.phase),
        created_at=watch.created_at,
        task_group_id=watch.task_group_id,
        task_state=watch.task_state,
        reason=watch.reason,
        resolved_at=watch.resolved_at,
    )


def _incident(row: IncidentRow) -> Incident:
    return _record(Incident, row)


def _takeable(row: LetterRow, now: datetime) -> bool:
    """Due, and held by no replica (or by one whose lease ran out)."""
    held = row.lease_until is not None and row.lease_until > now
    return not held and row.next_attempt_at <= now


def _held(letter: Letter) -> tuple[ColumnElement[bool], ...]:
    """The conditions under which `letter` is still held as it was taken: a replica whose
    lease ran out and was taken over can no longer settle or release it."""
    return (
        LetterRow.id == letter.id,
        LetterRow.state == LetterState.PENDING.value,
        LetterRow.attempts == letter.attempts,
        LetterRow.replica == letter.replica,
        LetterRow.lease_until == letter.lease_until,
    )


def _letter(
    row: LetterRow, *, replica: str | None = None, lease_until: datetime | None = None
) -> Letter:
    return _record(
        Letter,
        row,
        state=LetterState(row.state),
        thread=None,
        replica=replica or row.replica,
        lease_until=lease_until or row.lease_until,
    )


def _pause_of(project: str, job: str) -> tuple[ColumnElement[bool], ...]:
    """The conditions that find the pause of a target that is not resumed."""
    return (PauseRow.project == project, PauseRow.job == job, PauseRow.resumed_at.is_(None))


def _pause(row: PauseRow) -> Pause:
    return _record(Pause, row, job=row.job or None)


def _audit_entry(row: AuditRow) -> AuditEntry:
    return _record(AuditEntry, row)


_R = TypeVar("_R", Incident, AuditEntry, Pause, Letter)


def _record(record: type[_R], row: Base, **converted: Any) -> _R:
    """`record` with each field from the row's column of that name, or from `converted`."""
    names = (f.name for f in fields(record))
    return record(**{n: converted[n] if n in converted else getattr(row, n) for n in names})
