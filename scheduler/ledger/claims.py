"""The claims that make each scheduled fire happen once: claiming, leases, take-overs, retries,
recording how a fire ended (and starting its watch), skips, and releasing what a replica held.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, or_, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from scheduler.cron.timing import slot_of
from scheduler.ledger.claiming import (
    Holder,
    claim_rows,
    held,
    holder_of,
    retaken,
    still_held,
    update_held,
)
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import FIRES, FireRow
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
        return self.claim_all(
            [(project, job, slot, kind) for job, slot, kind in wanted],
            replica=replica,
            now=now,
            lease=lease,
            retake_unmade=retake_unmade,
            rerun_failed=rerun_failed,
        )

    def claim_all(
        self,
        wanted: Sequence[tuple[str, str, datetime, FireKind]],
        *,
        replica: str,
        now: datetime,
        lease: timedelta,
        retake_unmade: bool = False,
        rerun_failed: bool = False,
    ) -> list[Claim | None]:
        """`claim_many` for (project, job, slot, kind) of any projects: one statement for the
        scheduled and catch-up fires (and one for the manual ones), in one transaction."""
        if rerun_failed and not retake_unmade:
            raise ValueError("rerun_failed is a backfill's: it needs retake_unmade")
        now = aware("now", now)
        lease_until = now + positive("lease", lease)
        keys = [
            (project, job, checked_slot(slot, kind), kind) for project, job, slot, kind in wanted
        ]
        holder = Holder(replica, now, lease_until, now if retake_unmade else None)
        with self._transaction(writing=True) as session:
            taken = claim_rows(
                session,
                keys,
                holder,
                retake=retaken(retake_unmade=retake_unmade, rerun_failed=rerun_failed),
            )
        return [
            None
            if found is None
            else Claim(found[0], project, job, slot, kind, replica, lease_until, *found[1:])
            for (project, job, slot, kind), found in zip(keys, taken, strict=True)
        ]

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
            [taken] = claim_rows(
                session, [(project, job, slot, FireKind.MANUAL)], Holder(replica, now, lease_until)
            )
            assert taken is not None  # a manual fire is always a new one
            return Claim(taken[0], project, job, slot, FireKind.MANUAL, replica, lease_until, 1)

    def renew(self, claim: Claim, *, now: datetime, lease: timedelta) -> bool:
        """Extend the lease to `now + lease`; False if the claim is no longer ours."""
        [renewed] = self.renew_many([claim], now=now, lease=lease)
        return renewed

    def renew_many(self, claims: Sequence[Claim], *, now: datetime, lease: timedelta) -> list[bool]:
        """`renew` for the claims a replica has in flight, in one transaction."""
        lease_until = aware("now", now) + positive("lease", lease)
        with self._transaction(writing=True) as session:
            renewed = held(session, claims)
            ours = [claim for claim, mine in zip(claims, renewed, strict=True) if mine]
            if ours:
                session.execute(
                    update(FireRow)
                    .where(FireRow.id.in_([claim.fire_id for claim in ours]))
                    .values(lease_until=lease_until)
                )
            return renewed

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
        with self._transaction(writing=True) as session:
            recorded = held(session, [outcome.claim for outcome in outcomes])
            # A claim given twice is ended by its first outcome, as one `finish` after another
            # would be: the fire is no longer claimed for the second (nor watched twice).
            seen: set[Claim] = set()
            for n, outcome in enumerate(outcomes):
                recorded[n] = recorded[n] and outcome.claim not in seen
                seen.add(outcome.claim)
            ours = [o for o, mine in zip(outcomes, recorded, strict=True) if mine]
            update_held(session, [_ended(outcome, finished_at) for outcome in ours])
            # In the same transaction: a fire the ledger holds is never left unwatched.
            finished = [outcome for outcome in ours if outcome.retry_at is None]
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


def _update_claimed(session: Session, claim: Claim, **values: Any) -> bool:
    """Write `values` on the claim's fire if it is still the claim's; whether it was."""
    updated = session.connection().execute(
        _owned_update(tuple(values)),
        {f"v_{column}": value for column, value in values.items()} | holder_of(claim),
    )
    return updated.first() is not None


@functools.cache
def _owned_update(columns: tuple[str, ...]) -> ReturningUpdate[tuple[int]]:
    """The update of `columns` of a fire still held by a claim (`still_held`), built once
    (Core: a fire's hot path writes it)."""
    return (
        update(FIRES)
        .where(still_held())
        .values(
            {column: bindparam(f"v_{column}", type_=FIRES.c[column].type) for column in columns}
        )
        .returning(FIRES.c.id)
    )


def _ended(outcome: Outcome, now: datetime) -> dict[str, Any]:
    """The values `update_held` records for a fire ended (or retried) at `now`."""
    retry_at = None if outcome.retry_at is None else aware("retry_at", outcome.retry_at)
    return {
        "fire_id": outcome.claim.fire_id,
        "replica": outcome.claim.replica,
        "attempt": outcome.claim.attempt,
        "state": outcome.state.value,
        "finished_at": now if retry_at is None else None,
        "lease_until": retry_at,
        "task_id": outcome.task_id,
        "revision": outcome.revision,
        "error": scrubbed(outcome.error),
        # Not scrubbed: a rendered task comes from the repository's public template. Without
        # new details (None), those recorded when the request was sent stay: the next attempt
        # needs them to find what it made.
        "details": outcome.details,
    }
