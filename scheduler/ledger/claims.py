"""The claims that make each scheduled fire happen once: claiming, leases, take-overs, retries,
recording how a fire ended (and starting its watch), skips, and releasing what a replica held.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, insert, or_, select, text, update
from sqlalchemy.orm import Session

from scheduler.cron.timing import slot_of
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import FireRow, WatchRow
from scheduler.ledger.records import OPEN_STATES, Claim, Fire, FireKind, FireState, Outcome
from scheduler.ledger.store import Store, aware, checked_slot, given, positive, scrubbed, upsert
from scheduler.ledger.watches import start_watches


class ClaimStore(Store):
    """Fires as claims: who holds which fire until when, and how each ended.

    Scheduled and catch-up slots must be 15-minute UTC slots; manual fires may be at any time.
    """

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
        retake_unmade: bool = False,
        rerun_failed: bool = False,
    ) -> list[Claim | None]:
        """`claim` for several (job, slot, kind) of one project, in one transaction.

        A tick claims all of a project's due fires at once: one write instead of one per job.
        With `retake_unmade` (a backfill: an operator asks for these slots now), a fire that
        made nothing is claimed too, with the next attempt number: one skipped (a catch-up or
        overlap policy, a pause held it) or a dry run (a service without credentials); each
        fire claimed is asked for at `now` (`Fire.asked_at`: its retries' max-lateness counts
        from then). With `rerun_failed` as well, so is a failed fire: its watch is forgotten
        (the notices it queued stay), so that the rerun starts its own.
        """
        if rerun_failed and not retake_unmade:
            raise ValueError("rerun_failed is a backfill's: it needs retake_unmade")
        now = aware("now", now)
        lease_until = now + positive("lease", lease)
        holder = {"replica": replica, "claimed_at": now, "lease_until": lease_until}
        if retake_unmade:
            holder["asked_at"] = now
        keys = [(job, checked_slot(slot, kind), kind) for job, slot, kind in wanted]
        claims: list[Claim | None] = []
        with self._transaction(writing=True) as session:
            for job, slot, kind in keys:
                key = {"project": project, "job": job, "slot": slot}
                kind_holder = {**holder, "kind": kind.value}
                taken: tuple[int, int, datetime | None] | None
                if kind is FireKind.MANUAL:
                    taken = (_claim_new(session, key, kind_holder), 1, None)
                else:
                    taken = _claim_unique(
                        session,
                        key,
                        kind_holder,
                        now=now,
                        retake=_retaken(retake_unmade=retake_unmade, rerun_failed=rerun_failed),
                    )
                claims.append(
                    None
                    if taken is None
                    else Claim(taken[0], project, job, slot, kind, replica, lease_until, *taken[1:])
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
        was claimed less than `min_interval` before `now`, that fire; so is a failed or
        unfinished one whose request was sent less than `unsure_for` before `now` (it may have
        made its task all the same). Atomic: of concurrent callers, one gets the claim."""
        now = aware("now", now)
        lease_until = now + positive("lease", lease)
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
                            # Failed, or still going on, while what it sent may yet make a task.
                            FireRow.state.in_([FireState.FAILED.value, FireState.CLAIMED.value]),
                            FireRow.sent_at > now - unsure_for,
                        ),
                    ),
                )
                .order_by(FireRow.claimed_at.desc(), FireRow.id.desc())
                .limit(1)
            ).first()
            if last is not None:
                return to_record(Fire, last)
            holder = {
                "replica": replica,
                "claimed_at": now,
                "lease_until": lease_until,
                "kind": FireKind.MANUAL.value,
            }
            fire_id = _claim_new(session, {"project": project, "job": job, "slot": slot}, holder)
            return Claim(fire_id, project, job, slot, FireKind.MANUAL, replica, lease_until, 1)

    def renew(self, claim: Claim, *, now: datetime, lease: timedelta) -> bool:
        """Extend the lease to `now + lease`; False if the claim is no longer ours."""
        [renewed] = self.renew_many([claim], now=now, lease=lease)
        return renewed

    def renew_many(self, claims: Sequence[Claim], *, now: datetime, lease: timedelta) -> list[bool]:
        """`renew` for the claims a replica has in flight, in one transaction."""
        lease_until = aware("now", now) + positive("lease", lease)
        with self._transaction(writing=True) as session:
            return [_update_claimed(session, claim, lease_until=lease_until) for claim in claims]

    def mark_sent(
        self,
        claim: Claim,
        *,
        now: datetime,
        details: dict[str, Any],
        task_id: str | None = None,
    ) -> bool:
        """Record, before a fire's request goes out, when and what (and the task it makes, when
        that is known beforehand): whoever finishes the fire after an unknown outcome (a lost
        reply, a crash) looks for what it may have made, and a failed manual fire holds off the
        next one meanwhile (`claim_manual`). False (and nothing recorded) if the claim is no
        longer ours: then send nothing."""
        made = {} if task_id is None else {"task_id": task_id}
        return self._update_own(claim, sent_at=aware("now", now), details=details, **made)

    def unmark_sent(self, claim: Claim) -> bool:
        """Forget that the claimed fire's request was sent: it was refused, or shown to have
        made nothing, so there is nothing to look for and no manual fire need wait for it."""
        return self._update_own(claim, sent_at=None)

    def open_fires(self, *, due_at: datetime, project: str | None = None) -> list[Fire]:
        """Unfinished scheduled and catch-up fires nobody holds at `due_at`: claims whose lease
        ran out (their replica died or released them) and retries that are due; oldest slot
        first. Manual fires are never taken over: the person who fired one was told its end."""
        query = (
            select(FireRow)
            .where(
                FireRow.state.in_([state.value for state in OPEN_STATES]),
                FireRow.lease_until <= aware("due_at", due_at),
                FireRow.kind != FireKind.MANUAL.value,
            )
            .filter_by(**given(project=project))
            .order_by(FireRow.slot, FireRow.id)
        )
        return self._records(Fire, query)

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
        finished_at = aware("now", now)
        recorded = []
        with self._transaction(writing=True) as session:
            for outcome in outcomes:
                retry_at = outcome.retry_at
                recorded.append(
                    _update_claimed(
                        session,
                        outcome.claim,
                        state=outcome.state.value,
                        finished_at=None if retry_at is not None else finished_at,
                        lease_until=None if retry_at is None else aware("retry_at", retry_at),
                        task_id=outcome.task_id,
                        revision=outcome.revision,
                        error=scrubbed(outcome.error),
                        # Not scrubbed: a rendered task comes from the repository's public
                        # template. Without new details, those recorded when the request was
                        # sent stay: the next attempt needs them to find what it made.
                        **({} if outcome.details is None else {"details": outcome.details}),
                    )
                )
            # In the same transaction: a fire the ledger holds is never left unwatched.
            finished = [
                outcome
                for outcome, ours in zip(outcomes, recorded, strict=True)
                if ours and outcome.retry_at is None
            ]
            start_watches(session, finished, now=finished_at)
        return recorded

    def release(self, claim: Claim, *, now: datetime) -> bool:
        """Give up an unfinished claim (on shutdown) so that another replica may take it now.

        False if it was no longer ours.
        """
        return self._update_own(claim, lease_until=aware("now", now))

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
        now = aware("now", now)
        with self._transaction(writing=True) as session:
            recorded = session.execute(
                upsert(session, FireRow)
                .values(
                    project=project,
                    job=job,
                    slot=checked_slot(slot, kind),
                    kind=kind.value,
                    state=FireState.SKIPPED.value,
                    attempt=0,
                    replica=replica,
                    error=scrubbed(reason),
                    claimed_at=now,
                    finished_at=now,
                )
                .on_conflict_do_nothing()
                .returning(FireRow.id)
            ).scalar_one_or_none()
        return recorded is not None

    def _update_own(self, claim: Claim, **values: Any) -> bool:
        with self._transaction(writing=True) as session:
            return _update_claimed(session, claim, **values)


def release_fires_of(session: Session, replica: str, *, now: datetime) -> int:
    """Let the claims held under the name `replica` be taken at `now`; how many there were."""
    released = session.execute(
        update(FireRow)
        .where(
            FireRow.state == FireState.CLAIMED.value,
            FireRow.replica == replica,
            FireRow.lease_until > now,
        )
        .values(lease_until=now)
        .returning(FireRow.id)
    ).all()
    return len(released)


def same_fire(project: str, job: str, slot: datetime) -> tuple[ColumnElement[bool], ...]:
    """The conditions that find the one scheduled or catch-up fire of a (project, job, slot)."""
    return (
        FireRow.project == project,
        FireRow.job == job,
        FireRow.slot == slot,
        FireRow.kind != FireKind.MANUAL.value,
    )


def _claim_new(session: Session, key: dict[str, Any], holder: dict[str, Any]) -> int:
    return session.execute(
        insert(FireRow)
        .values(**key, **holder, state=FireState.CLAIMED.value, attempt=1)
        .returning(FireRow.id)
    ).scalar_one()


# The states of a scheduled or catch-up fire that made nothing, which a backfill takes again.
UNMADE_STATES = (FireState.SKIPPED.value, FireState.DRY_RUN.value)
# And those a backfill asked to rerun failed fires takes again too.
RERUN_STATES = (*UNMADE_STATES, FireState.FAILED.value)


def _retaken(*, retake_unmade: bool, rerun_failed: bool) -> tuple[str, ...]:
    """The states of a finished fire that a claim takes again."""
    if rerun_failed:
        return RERUN_STATES
    return UNMADE_STATES if retake_unmade else ()


def _claim_unique(
    session: Session,
    key: dict[str, Any],
    holder: dict[str, Any],
    *,
    now: datetime,
    retake: tuple[str, ...] = (),
) -> tuple[int, int, datetime | None] | None:
    """(fire id, attempt, asked at) of the claim taken on the slot's one fire, or None.
    `retake`: the states of a finished fire taken again (a backfill's)."""
    first = upsert(session, FireRow).values(
        **key, **holder, state=FireState.CLAIMED.value, attempt=1
    )
    # The unique index turns a second claimer's insert into nothing (on PostgreSQL it first
    # waits for a concurrent claimer's transaction to end).
    fire_id = session.execute(
        first.on_conflict_do_nothing().returning(FireRow.id)
    ).scalar_one_or_none()
    if fire_id is not None:
        return fire_id, 1, holder.get("asked_at")
    # One statement both checks and takes: of several concurrent take-overs, the first to
    # update the row moves the lease into the future, and the others then find no row that
    # matches (PostgreSQL re-checks the WHERE clause on the updated row; SQLite writers
    # run one at a time). A retrying fire is taken the same way once its retry is due.
    takeable = and_(
        FireRow.state.in_([state.value for state in OPEN_STATES]), FireRow.lease_until <= now
    )
    cleared: dict[str, Any] = {}
    if retake:
        finished, unmade = FireRow.state.in_(retake), FireRow.state.in_(UNMADE_STATES)
        takeable = or_(takeable, finished)
        # A finished fire's error and end no longer hold once it is being made again, nor a
        # dry run's rendered task (SET reads the row as it was); an open fire keeps what it
        # has, and so does a failed one what it sent: its next attempt, as a retry, looks for
        # what that may have made.
        cleared = {
            column: case((when, None), else_=getattr(FireRow, column))
            for when, columns in (
                (finished, ("error", "finished_at")),
                (unmade, ("task_id", "details")),
            )
            for column in columns
        }
    taken = session.execute(
        update(FireRow)
        .where(*same_fire(**key), takeable)
        .values(**holder, **cleared, state=FireState.CLAIMED.value, attempt=FireRow.attempt + 1)
        .returning(FireRow.id, FireRow.attempt, FireRow.asked_at)
    ).one_or_none()
    if taken is None:
        return None
    if FireState.FAILED.value in retake:
        # A failed fire was watched (its failure reported): the rerun, once finished, starts a
        # watch of its own under the same fire id. The notices already queued stay as they are.
        session.execute(delete(WatchRow).where(WatchRow.fire_id == taken.id))
    return taken.id, taken.attempt, taken.asked_at


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
