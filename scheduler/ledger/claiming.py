"""The claim statements: a batch of fires claimed (or taken over) in one INSERT … ON CONFLICT …
DO UPDATE … WHERE <takeable> RETURNING on both backends, manual fires in one INSERT of their own.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from scheduler.ledger.models import FIRES, UNIQUE_CLAIM_PREDICATE, WATCHES
from scheduler.ledger.records import OPEN_STATES, Claim, FireKind, FireState
from scheduler.ledger.store import upsert_on

# The states of a scheduled or catch-up fire that made nothing, which a backfill takes again.
UNMADE_STATES = (FireState.SKIPPED.value, FireState.DRY_RUN.value)
# And those a backfill asked to rerun failed fires takes again too.
RERUN_STATES = (*UNMADE_STATES, FireState.FAILED.value)


# (project, job, slot, kind): a fire wanted.
Key = tuple[str, str, datetime, FireKind]
# (fire id, attempt, asked at): the claim taken on it.
Taken = tuple[int, int, datetime | None]


@dataclass(frozen=True)
class Holder:
    """Who claims, when and until when; `asked_at`: when a backfill asked for the fires."""

    replica: str
    claimed_at: datetime
    lease_until: datetime
    asked_at: datetime | None = None

    def columns(self) -> dict[str, Any]:
        held = {
            "replica": self.replica,
            "claimed_at": self.claimed_at,
            "lease_until": self.lease_until,
            "state": FireState.CLAIMED.value,
        }
        return held if self.asked_at is None else {**held, "asked_at": self.asked_at}


def retaken(*, retake_unmade: bool, rerun_failed: bool) -> tuple[str, ...]:
    """The states of a finished fire that a claim takes again."""
    if rerun_failed:
        return RERUN_STATES
    return UNMADE_STATES if retake_unmade else ()


def claim_rows(
    session: Session, keys: Sequence[Key], holder: Holder, *, retake: tuple[str, ...] = ()
) -> list[Taken | None]:
    """The claim taken on each fire of `keys`, or None where another holds it (or it is
    finished, unless its state is in `retake`, a backfill's). A manual fire always gets a
    fire of its own; of the same scheduled fire wanted twice, only the first is claimed."""
    taken: dict[Key, Taken] = {}
    # One row a fire (the first kind asked for it), in one order on every replica: two
    # claiming overlapping fires never wait on each other.
    firsts: dict[tuple[str, str, datetime], Key] = {}
    for key in keys:
        if key[3] is not FireKind.MANUAL:
            firsts.setdefault(key[:3], key)
    unique = [firsts[fire] for fire in sorted(firsts)]
    if unique:
        taken = _claim_unique(session, unique, holder, retake)
    manual = [n for n, key in enumerate(keys) if key[3] is FireKind.MANUAL]
    made = iter(_claim_new(session, [keys[n] for n in manual], holder))
    by_position = {n: next(made) for n in manual}
    found: list[Taken | None] = []
    for n, key in enumerate(keys):
        found.append(by_position[n] if n in by_position else taken.pop(key, None))
    return found


def _claim_unique(
    session: Session, keys: Sequence[Key], holder: Holder, retake: tuple[str, ...]
) -> dict[Key, Taken]:
    """The claims taken on the slots' one fires, in one statement, by key."""
    held = {"asked_at": None, **holder.columns()}
    rows = [
        {"project": p, "job": j, "slot": s, "kind": k.value, "attempt": 1, **held}
        for p, j, s, k in keys
    ]
    statement = _claim_statement(session.get_bind().dialect.name, retake)
    taken: dict[Key, Taken] = {}
    kinds = {key[:3]: key[3] for key in keys}
    # Core, with the rows as parameters: the statement is compiled once, and SQLAlchemy sends
    # the rows as one multi-row INSERT (per thousand).
    for fire_id, project, job, slot, attempt, asked_at in session.connection().execute(
        statement, rows
    ):
        taken[(project, job, slot, kinds[(project, job, slot)])] = (fire_id, attempt, asked_at)
    if FireState.FAILED.value in retake:
        # A failed fire was watched (its failure reported): the rerun, once finished, starts a
        # watch of its own under the same fire id. The notices already queued stay as they are.
        again = [fire_id for fire_id, attempt, _ in taken.values() if attempt > 1]
        if again:
            session.execute(delete(WATCHES).where(WATCHES.c.fire_id.in_(again)))
    return taken


@functools.cache
def _claim_statement(dialect: str, retake: tuple[str, ...]) -> ReturningInsert[Any]:
    """The claim of fires whose rows are given as parameters, on `dialect`; `retake`: the
    states of a finished fire taken again (a backfill's, which also says when it asked).

    The unique index turns the insert of a fire that exists into an update of it, which
    happens only where the fire may be taken: of several concurrent claimers, the first to
    write the row moves the lease into the future, and the others then find it not takeable
    (PostgreSQL locks the row and checks the WHERE clause on its latest version; SQLite
    writers run one at a time). A retrying fire is taken the same way once its retry is due.
    """
    statement = upsert_on(dialect, FIRES)
    row, proposed = FIRES.c, statement.excluded
    takeable = and_(
        _state_in([state.value for state in OPEN_STATES]), row.lease_until <= proposed.claimed_at
    )
    cleared: dict[str, Any] = {}
    if retake:
        finished, unmade = _state_in(retake), _state_in(UNMADE_STATES)
        takeable = or_(takeable, finished)
        # A finished fire's error and end no longer hold once it is being made again, nor a
        # dry run's rendered task (SET reads the row as it was); an open fire keeps what it
        # has, and so does a failed one what it sent: its next attempt, as a retry, looks for
        # what that may have made.
        cleared = {
            column: case((when, None), else_=row[column])
            for when, columns in (
                (finished, ("error", "finished_at")),
                (unmade, ("task_id", "details")),
            )
            for column in columns
        }
    holder = ("replica", "claimed_at", "lease_until", "state", *(("asked_at",) if retake else ()))
    return statement.on_conflict_do_update(
        index_elements=["project", "job", "slot"],
        index_where=text(UNIQUE_CLAIM_PREDICATE),
        set_={
            **{name: proposed[name] for name in ("kind", *holder)},
            **cleared,
            "attempt": row.attempt + 1,
        },
        where=takeable,
    ).returning(row.id, row.project, row.job, row.slot, row.attempt, row.asked_at)


def _state_in(states: Sequence[str]) -> ColumnElement[bool]:
    """The fire's state is one of `states`, written out: a statement run for many rows
    (executemany) takes no list parameter."""
    return FIRES.c.state.in_([literal_column(f"'{state}'") for state in sorted(states)])


def _claim_new(session: Session, keys: Sequence[Key], holder: Holder) -> list[Taken]:
    """New fires of their own (manual ones), in the order of `keys`."""
    if not keys:
        return []
    held = holder.columns()
    rows = [
        {"project": p, "job": j, "slot": s, "kind": k.value, "attempt": 1, **held}
        for p, j, s, k in keys
    ]
    made = (
        session.connection()
        .execute(insert(FIRES).returning(FIRES.c.id, sort_by_parameter_order=True), rows)
        .scalars()
    )
    return [(fire_id, 1, holder.asked_at) for fire_id in made]


def held(session: Session, claims: Sequence[Claim]) -> list[bool]:
    """Whether each of `claims` is still its holder's (nobody took it over, it is not
    finished), in one read that keeps them so until the transaction ends (on SQLite, a
    writing transaction keeps everything so)."""
    if not claims:
        return []
    found = session.execute(
        select(FIRES.c.id, FIRES.c.replica, FIRES.c.attempt)
        .where(
            FIRES.c.id.in_({claim.fire_id for claim in claims}),
            FIRES.c.state == FireState.CLAIMED.value,
        )
        # Locked in one order by every writer, so that two never wait on each other.
        .order_by(FIRES.c.id)
        .with_for_update()
    ).all()
    holders = {(fire_id, replica, attempt) for fire_id, replica, attempt in found}
    return [(claim.fire_id, claim.replica, claim.attempt) in holders for claim in claims]


def update_held(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Record how the fires `held` found ours ended, one row of values (`fire_id`, `replica`,
    `attempt` and the columns `_ENDED` lists) a fire, in one statement run for every row."""
    if rows:
        session.connection().execute(
            _UPDATE_HELD, [{f"b_{name}": value for name, value in row.items()} for row in rows]
        )


# The columns a fire's end writes; `details` None keeps those its request recorded.
_ENDED = ("state", "finished_at", "lease_until", "task_id", "revision", "error")


def _bound(name: str) -> BindParameter[Any]:
    column = "id" if name == "fire_id" else name
    return bindparam(f"b_{name}", type_=FIRES.c[column].type)


def still_held() -> ColumnElement[bool]:
    """The fire bound as `b_fire_id` is still claimed by the holder bound as `b_replica` and
    `b_attempt` (the condition of every write of a claim's own)."""
    return and_(
        FIRES.c.id == _bound("fire_id"),
        FIRES.c.state == FireState.CLAIMED.value,
        FIRES.c.replica == _bound("replica"),
        FIRES.c.attempt == _bound("attempt"),
    )


def holder_of(claim: Claim) -> dict[str, Any]:
    """The values `still_held` is bound to for `claim`."""
    return {"b_fire_id": claim.fire_id, "b_replica": claim.replica, "b_attempt": claim.attempt}


_UPDATE_HELD = (
    update(FIRES)
    .where(still_held())
    .values(
        {name: _bound(name) for name in _ENDED}
        | {"details": func.coalesce(_bound("details"), FIRES.c.details)}
    )
)
