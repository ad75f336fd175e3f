"""The ledger: claims, take-overs, history and migrations, the same suite on SQLite and PostgreSQL.

Time is injected (`now`); nothing sleeps except to hold a real lock in the busy-timeout test.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, select, table

from scheduler.ledger import (
    Claim,
    Fire,
    FireKind,
    FireState,
    Ledger,
    LedgerURLError,
    Outcome,
    RemediationState,
    SlotOutcome,
)
from scheduler.ledger.history import LATEST_BATCH
from scheduler.ledger.migrating import current_revision, head_revision
from scheduler.ledger.models import Base
from tests.support.ledger_backends import open_at_once, race_for_claims, run_in_processes

PROJECT = "mozilla-central"
T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
MINUTE = timedelta(minutes=1)
SLOT = timedelta(minutes=15)


def claim(
    ledger: Ledger,
    *,
    job: str = "nightly",
    slot: datetime = T,
    kind: FireKind = FireKind.SCHEDULED,
    replica: str = "replica-a",
    now: datetime = T,
    lease: timedelta = LEASE,
    project: str = PROJECT,
) -> Claim | None:
    return ledger.claim(project, job, slot, kind=kind, replica=replica, now=now, lease=lease)


def must_claim(ledger: Ledger, **arguments: Any) -> Claim:
    taken = claim(ledger, **arguments)
    assert taken is not None, f"expected to claim {arguments}"
    return taken


# Retries, renewals and restarts


def test_a_retrying_fire_is_open_until_its_retry_is_due_then_claimable_once(
    ledger: Ledger,
) -> None:
    held = must_claim(ledger)
    retry_at = T + MINUTE
    [recorded] = ledger.finish_many(
        [Outcome(held, FireState.RETRYING, error="attempt 1 failed: 503", retry_at=retry_at)],
        now=T,
    )
    assert recorded
    [fire] = ledger.fires()
    assert (fire.state, fire.lease_until, fire.finished_at) == (FireState.RETRYING, retry_at, None)
    assert ledger.watches() == [], "a retry is not reported"
    assert ledger.open_fires(due_at=retry_at - timedelta(seconds=1)) == []
    assert [f.id for f in ledger.open_fires(due_at=retry_at)] == [fire.id]

    assert claim(ledger, replica="replica-b", now=retry_at - timedelta(seconds=1)) is None
    again = must_claim(ledger, replica="replica-b", now=retry_at)
    assert claim(ledger, replica="replica-c", now=retry_at) is None
    assert again.attempt == 2
    assert ledger.finish(again, state=FireState.CREATED, now=retry_at, task_id="t")
    assert ledger.open_fires(due_at=T + SLOT) == []


def test_retry_at_goes_with_retrying_and_only_with_it(ledger: Ledger) -> None:
    held = must_claim(ledger)
    with pytest.raises(ValueError, match="retry_at"):
        ledger.finish_many([Outcome(held, FireState.RETRYING)], now=T)
    with pytest.raises(ValueError, match="retry_at"):
        ledger.finish_many([Outcome(held, FireState.FAILED, retry_at=T + MINUTE)], now=T)


def test_what_was_sent_stays_through_a_failed_attempt(ledger: Ledger) -> None:
    held = must_claim(ledger)
    assert ledger.mark_sent(held, now=T, details={"hookId": "h"})
    ledger.finish_many(
        [Outcome(held, FireState.RETRYING, error="lost", retry_at=T + MINUTE)], now=T
    )
    [fire] = ledger.fires()
    assert (fire.sent_at, fire.details) == (T, {"hookId": "h"})
    taken = must_claim(ledger, replica="replica-b", now=T + MINUTE)
    assert not ledger.mark_sent(held, now=T + MINUTE, details={}), "no longer ours"
    assert ledger.mark_sent(taken, now=T + MINUTE, details={"hookId": "h2"})


def test_a_failed_manual_fire_whose_task_may_exist_holds_off_the_next_until_unsure_for(
    ledger: Ledger,
) -> None:
    def claim_manual(now: datetime) -> Claim | Fire:
        return ledger.claim_manual(
            "alpha",
            "nightly",
            replica="r",
            now=now,
            lease=MINUTE,
            min_interval=MINUTE,
            unsure_for=3 * MINUTE,
        )

    unsure = claim_manual(T)
    assert isinstance(unsure, Claim)
    assert ledger.mark_sent(unsure, now=T, details={"task": {}}, task_id="t1")
    assert ledger.fires()[0].task_id == "t1", "named from when it is sent"
    in_flight = claim_manual(T + 2 * MINUTE)
    assert isinstance(in_flight, Fire), "still unanswered past min_interval: held off"
    assert (in_flight.state, in_flight.task_id) == (FireState.CLAIMED, "t1")
    ledger.finish(unsure, state=FireState.FAILED, now=T, task_id="t1", error="not known")
    held_off = claim_manual(T + 2 * MINUTE)
    assert isinstance(held_off, Fire)
    assert (held_off.id, held_off.task_id, held_off.sent_at) == (unsure.fire_id, "t1", T)
    refused = claim_manual(T + 3 * MINUTE)
    assert isinstance(refused, Claim), "unsure_for has passed"
    # A request refused made nothing: once forgotten, it holds nothing off.
    assert ledger.mark_sent(refused, now=T + 3 * MINUTE, details={}, task_id="t2")
    assert ledger.unmark_sent(refused)
    ledger.finish(refused, state=FireState.FAILED, now=T + 3 * MINUTE, error="403")
    assert isinstance(claim_manual(T + 3 * MINUTE), Claim)


def test_renewing_keeps_a_claim_and_fails_once_it_was_taken_over(ledger: Ledger) -> None:
    held = must_claim(ledger, lease=MINUTE)
    assert ledger.renew_many([held], now=T + MINUTE / 2, lease=MINUTE) == [True]
    assert claim(ledger, replica="replica-b", now=T + MINUTE) is None, "renewed: still held"
    taken = must_claim(ledger, replica="replica-b", now=T + 2 * MINUTE)
    assert ledger.renew_many([held, taken], now=T + 2 * MINUTE, lease=MINUTE) == [False, True]


def test_a_dead_replicas_manual_fire_is_not_open_to_take_over(ledger: Ledger) -> None:
    must_claim(ledger, kind=FireKind.MANUAL, lease=MINUTE)
    assert ledger.open_fires(due_at=T + 2 * MINUTE) == []


def test_a_replica_restarting_under_its_name_releases_what_it_held(ledger: Ledger) -> None:
    mine = must_claim(ledger, job="a", replica="replica-a")
    must_claim(ledger, job="b", replica="replica-b")
    assert ledger.release_replica("replica-a", now=T + MINUTE) == (1, 0)
    assert [f.job for f in ledger.open_fires(due_at=T + MINUTE)] == ["a"]
    taken = must_claim(ledger, job="a", replica="replica-a", now=T + MINUTE)
    assert taken.attempt == mine.attempt + 1


# Claims


def test_first_claimer_wins_and_later_claimers_get_nothing(ledger: Ledger) -> None:
    first = must_claim(ledger, replica="replica-a")

    assert first.attempt == 1
    assert (first.project, first.job, first.slot, first.kind) == (
        PROJECT,
        "nightly",
        T,
        FireKind.SCHEDULED,
    )
    assert first.lease_until == T + LEASE
    assert claim(ledger, replica="replica-b") is None
    assert claim(ledger, replica="replica-a") is None, "claiming twice is not claiming again"
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert (fire.id, fire.state, fire.replica) == (first.fire_id, FireState.CLAIMED, "replica-a")


def test_scheduled_and_catch_up_share_one_claim_per_slot(ledger: Ledger) -> None:
    must_claim(ledger, job="a", kind=FireKind.SCHEDULED)
    must_claim(ledger, job="b", kind=FireKind.CATCH_UP)

    assert claim(ledger, job="a", kind=FireKind.CATCH_UP, replica="replica-b") is None
    assert claim(ledger, job="b", kind=FireKind.SCHEDULED, replica="replica-b") is None


def test_claims_are_per_project_job_and_slot(ledger: Ledger) -> None:
    taken = [
        must_claim(ledger),
        must_claim(ledger, project="try"),
        must_claim(ledger, job="weekly"),
        must_claim(ledger, slot=T + SLOT),
    ]

    assert len({claimed.fire_id for claimed in taken}) == 4


def test_manual_fires_each_get_their_own_fire(ledger: Ledger) -> None:
    scheduled = must_claim(ledger, kind=FireKind.SCHEDULED)
    manual = [must_claim(ledger, kind=FireKind.MANUAL, replica=f"r{i}") for i in range(3)]

    assert len({scheduled.fire_id, *(m.fire_id for m in manual)}) == 4
    assert all(m.attempt == 1 for m in manual)
    assert Counter(f.kind for f in ledger.fires()) == {FireKind.MANUAL: 3, FireKind.SCHEDULED: 1}
    # A manual fire is not the slot's scheduled fire, and does not hold the slot.
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert fire.id == scheduled.fire_id


def test_manual_fire_does_not_block_the_scheduled_one(ledger: Ledger) -> None:
    must_claim(ledger, kind=FireKind.MANUAL)

    assert claim(ledger, kind=FireKind.SCHEDULED) is not None


def test_manual_fires_may_be_at_any_time_but_slots_must_be_quarter_hours(ledger: Ledger) -> None:
    odd = T + timedelta(minutes=7, seconds=3)

    assert claim(ledger, kind=FireKind.MANUAL, slot=odd) is not None
    for kind in (FireKind.SCHEDULED, FireKind.CATCH_UP):
        with pytest.raises(ValueError, match="not a slot"):
            claim(ledger, kind=kind, slot=odd)
    with pytest.raises(ValueError, match="not a slot"):
        ledger.record_slot(
            PROJECT,
            odd,
            revision=None,
            outcome=SlotOutcome.EVALUATED,
            error=None,
            replica="r",
            now=T,
        )
    assert [f.kind for f in ledger.fires()] == [FireKind.MANUAL]


def test_lease_must_be_positive(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="positive"):
        claim(ledger, lease=timedelta(0))
    assert ledger.fires() == []


# Leases and take-over


def test_expired_claim_is_taken_over_but_not_before(ledger: Ledger) -> None:
    first = must_claim(ledger, replica="replica-a", now=T)

    just_before = T + LEASE - timedelta(microseconds=1)
    assert claim(ledger, replica="replica-b", now=just_before) is None
    taken = must_claim(ledger, replica="replica-b", now=T + LEASE, kind=FireKind.CATCH_UP)

    assert taken.fire_id == first.fire_id
    assert taken.attempt == 2
    assert taken.lease_until == T + 2 * LEASE
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert (fire.replica, fire.attempt, fire.kind, fire.claimed_at, fire.lease_until) == (
        "replica-b",
        2,
        FireKind.CATCH_UP,
        T + LEASE,
        T + 2 * LEASE,
    )
    assert len(ledger.fires()) == 1


def test_finished_and_skipped_fires_are_never_claimed_again(ledger: Ledger) -> None:
    done = must_claim(ledger, job="done")
    assert ledger.finish(done, state=FireState.FAILED, now=T, error="boom")
    assert ledger.record_skip(
        PROJECT, "skipped", T, kind=FireKind.CATCH_UP, reason="late", replica="r", now=T
    )

    much_later = T + timedelta(days=30)
    for job in ("done", "skipped"):
        assert claim(ledger, job=job, now=much_later, replica="replica-b") is None


def test_renewed_lease_is_not_taken_over_until_it_runs_out(ledger: Ledger) -> None:
    held = must_claim(ledger, now=T)

    assert ledger.renew(held, now=T + 4 * MINUTE, lease=LEASE)
    assert claim(ledger, replica="replica-b", now=T + 6 * MINUTE) is None
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert fire.lease_until == T + 9 * MINUTE
    assert claim(ledger, replica="replica-b", now=T + 9 * MINUTE) is not None


def test_owner_whose_lease_ran_out_still_owns_it_until_taken_over(ledger: Ledger) -> None:
    held = must_claim(ledger, now=T)

    assert ledger.renew(held, now=T + 2 * LEASE, lease=LEASE)
    assert ledger.finish(held, state=FireState.CREATED, now=T + 2 * LEASE, task_id="t")


def test_stale_owner_cannot_renew_release_or_finish_after_take_over(ledger: Ledger) -> None:
    stale = must_claim(ledger, replica="replica-a", now=T)
    current = must_claim(ledger, replica="replica-b", now=T + LEASE)

    assert not ledger.renew(stale, now=T + LEASE, lease=LEASE)
    assert not ledger.release(stale, now=T + LEASE)
    assert not ledger.finish(stale, state=FireState.CREATED, now=T + LEASE, task_id="stale")
    assert ledger.finish(current, state=FireState.CREATED, now=T + LEASE, task_id="current")
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert (fire.state, fire.task_id, fire.replica) == (FireState.CREATED, "current", "replica-b")


def test_same_replica_taking_over_its_own_claim_makes_the_old_claim_stale(ledger: Ledger) -> None:
    # A restarted process keeps its replica name; the attempt tells its two claims apart.
    before_restart = must_claim(ledger, replica="replica-a", now=T)
    after_restart = must_claim(ledger, replica="replica-a", now=T + LEASE)

    assert not ledger.finish(before_restart, state=FireState.CREATED, now=T + LEASE)
    assert ledger.finish(after_restart, state=FireState.CREATED, now=T + LEASE)


def test_release_lets_another_replica_take_over_at_once(ledger: Ledger) -> None:
    held = must_claim(ledger, replica="replica-a", now=T)

    assert ledger.release(held, now=T + MINUTE)
    taken = must_claim(ledger, replica="replica-b", now=T + MINUTE)

    assert taken.attempt == 2
    assert not ledger.release(held, now=T + MINUTE), "released twice"


def test_released_claim_cannot_be_finished_by_the_replica_that_let_it_go(ledger: Ledger) -> None:
    held = must_claim(ledger, replica="replica-a", now=T)
    ledger.release(held, now=T + MINUTE)
    must_claim(ledger, replica="replica-b", now=T + MINUTE)

    assert not ledger.finish(held, state=FireState.CREATED, now=T + MINUTE)


def run_together(threads: int, action: Callable[[int], Claim | None]) -> list[Claim]:
    """Run `action(i)` in `threads` threads released at the same moment; the claims won."""
    start = threading.Barrier(threads)

    def contend(index: int) -> Claim | None:
        start.wait()
        return action(index)

    with ThreadPoolExecutor(threads) as pool:
        return [won for won in pool.map(contend, range(threads)) if won is not None]


def test_concurrent_claims_and_take_overs_in_threads_have_one_winner(ledger: Ledger) -> None:
    claims = run_together(8, lambda i: claim(ledger, replica=f"replica-{i}", now=T))
    takeovers = run_together(8, lambda i: claim(ledger, replica=f"late-{i}", now=T + LEASE))

    assert len(claims) == 1
    assert len(takeovers) == 1
    assert takeovers[0].attempt == 2
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert (fire.replica, fire.attempt) == (takeovers[0].replica, 2)


def test_processes_racing_for_the_same_slots_claim_each_exactly_once(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = [(f"job-{j}", T + s * SLOT) for j in range(10) for s in range(5)]
    replicas = [f"process-{p}" for p in range(3)]

    results = run_in_processes(
        race_for_claims,
        [(ledger_url, replica, keys, T, T + LEASE, LEASE) for replica in replicas],
    )

    claimed = Counter(key for _, first, _ in results for key in first)
    taken = Counter(key for _, _, later in results for key in later)
    assert claimed == dict.fromkeys(keys, 1)
    assert taken == dict.fromkeys(keys, 1)
    winners = {key: replica for replica, _, later in results for key in later}
    fires = ledger.fires(project="race")
    assert len(fires) == len(keys)
    assert {(f.job, f.slot): f.replica for f in fires} == winners
    assert {f.attempt for f in fires} == {2}


# Finishing


def test_finish_records_the_outcome_once(ledger: Ledger) -> None:
    held = must_claim(ledger, now=T)
    details = {"url": "https://example.com/tasks/abc", "targets": ["a", "b"], "dry": False}

    assert ledger.finish(
        held,
        state=FireState.CREATED,
        now=T + MINUTE,
        task_id="fZ3x9nVnQ4mS0b1x2d3e4f",
        revision="3b2c1a0f" * 5,
        details=details,
    )
    assert not ledger.finish(held, state=FireState.FAILED, now=T + 2 * MINUTE, error="late")

    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert fire.state is FireState.CREATED
    assert fire.task_id == "fZ3x9nVnQ4mS0b1x2d3e4f"
    assert fire.revision == "3b2c1a0f" * 5
    assert fire.details == details
    assert fire.error is None
    assert (fire.claimed_at, fire.finished_at, fire.lease_until) == (T, T + MINUTE, None)
    assert not ledger.renew(held, now=T + 2 * MINUTE, lease=LEASE), "a finished fire has no lease"


def test_finish_keeps_the_error_a_person_reads(ledger: Ledger) -> None:
    held = must_claim(ledger)
    message = "createTask failed: 403 — client lacks queue:create-task:highest:proj/x (añadir)"

    assert ledger.finish(held, state=FireState.FAILED, now=T, error=message)
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert (fire.state, fire.error, fire.details) == (FireState.FAILED, message, None)


def test_finish_needs_a_final_state(ledger: Ledger) -> None:
    held = must_claim(ledger)

    with pytest.raises(ValueError, match="claimed"):
        ledger.finish(held, state=FireState.CLAIMED, now=T)


# Skips


def test_record_skip_records_the_reason_and_holds_the_slot(ledger: Ledger) -> None:
    reason = "missed by 7h, more than max-lateness 6h"

    assert ledger.record_skip(
        PROJECT,
        "nightly",
        T,
        kind=FireKind.CATCH_UP,
        reason=reason,
        replica="r",
        now=T + 7 * 60 * MINUTE,
    )
    assert not ledger.record_skip(
        PROJECT, "nightly", T, kind=FireKind.CATCH_UP, reason="again", replica="r", now=T
    )
    assert claim(ledger, now=T + timedelta(days=1)) is None

    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert (fire.state, fire.kind, fire.error, fire.attempt) == (
        FireState.SKIPPED,
        FireKind.CATCH_UP,
        reason,
        0,
    )
    assert fire.finished_at == T + 7 * 60 * MINUTE
    assert fire.lease_until is None


def test_record_skip_does_not_override_a_claim(ledger: Ledger) -> None:
    must_claim(ledger)

    assert not ledger.record_skip(
        PROJECT, "nightly", T, kind=FireKind.SCHEDULED, reason="paused", replica="r", now=T
    )
    fire = ledger.fire(PROJECT, "nightly", T)
    assert fire is not None
    assert fire.state is FireState.CLAIMED


def test_manual_fires_are_not_skipped(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="manual"):
        ledger.record_skip(PROJECT, "j", T, kind=FireKind.MANUAL, reason="x", replica="r", now=T)


# Slots


def test_record_slot_updates_the_same_slot_and_tracks_the_last_one(ledger: Ledger) -> None:
    assert ledger.last_evaluated_slot(PROJECT) is None

    ledger.record_slot(
        PROJECT,
        T,
        revision=None,
        outcome=SlotOutcome.FAILED,
        error="cannot read .cron.yml: 503",
        replica="replica-a",
        now=T,
    )
    ledger.record_slot(
        PROJECT,
        T,
        revision="abc",
        outcome=SlotOutcome.EVALUATED,
        error=None,
        replica="replica-b",
        now=T + MINUTE,
    )
    ledger.record_slot(
        "try",
        T + 2 * SLOT,
        revision="x",
        outcome=SlotOutcome.EVALUATED,
        error=None,
        replica="r",
        now=T,
    )

    [record] = ledger.slots(project=PROJECT)
    assert (record.slot, record.revision, record.outcome, record.error) == (
        T,
        "abc",
        SlotOutcome.EVALUATED,
        None,
    )
    assert (record.replica, record.evaluated_at) == ("replica-b", T + MINUTE)
    assert ledger.last_evaluated_slot(PROJECT) == T
    ledger.record_slot(
        PROJECT,
        T + SLOT,
        revision="abc",
        outcome=SlotOutcome.SKIPPED,
        error=None,
        replica="r",
        now=T,
    )
    assert ledger.last_evaluated_slot(PROJECT) == T + SLOT
    assert ledger.last_evaluated_slot("try") == T + 2 * SLOT


def test_slots_history_filters_and_order(ledger: Ledger) -> None:
    for project, offset in [("a", 0), ("b", 1), ("a", 2), ("a", 1)]:
        ledger.record_slot(
            project,
            T + offset * SLOT,
            revision=None,
            outcome=SlotOutcome.EVALUATED,
            error=None,
            replica="r",
            now=T,
        )

    assert [(r.project, r.slot) for r in ledger.slots()] == [
        ("a", T + 2 * SLOT),
        ("a", T + SLOT),
        ("b", T + SLOT),
        ("a", T),
    ]
    assert [r.slot for r in ledger.slots(project="a", since=T + SLOT)] == [T + 2 * SLOT, T + SLOT]
    assert [r.slot for r in ledger.slots(project="a", limit=1)] == [T + 2 * SLOT]


def test_latest_slots_is_each_projects_newest_evaluation(ledger: Ledger) -> None:
    # Out of order, an evaluation replaced, and projects beyond one statement's batch.
    names = [f"p{n}" for n in range(LATEST_BATCH + 1)]
    evaluations = [("a", 0, "evaluated"), ("a", 2, "evaluated"), ("a", 1, "evaluated")]
    evaluations += [("b", 1, "evaluated"), ("b", 1, "failed"), ("p0", 3, "evaluated")]
    evaluations += [(names[-1], 4, "skipped")]
    for project, offset, outcome in evaluations:
        ledger.record_slot(
            project,
            T + offset * SLOT,
            revision=f"rev-{offset}",
            outcome=SlotOutcome(outcome),
            error="unreadable" if outcome == "failed" else None,
            replica="r",
            now=T + offset * MINUTE,
        )

    latest = ledger.latest_slots(["a", "b", "never", "a", *names])

    assert {name: (r.slot, r.outcome, r.error) for name, r in latest.items()} == {
        "a": (T + 2 * SLOT, SlotOutcome.EVALUATED, None),
        "b": (T + SLOT, SlotOutcome.FAILED, "unreadable"),
        "p0": (T + 3 * SLOT, SlotOutcome.EVALUATED, None),
        names[-1]: (T + 4 * SLOT, SlotOutcome.SKIPPED, None),
    }
    assert latest["a"] == ledger.slots(project="a", limit=1)[0]
    assert ledger.latest_slots([]) == {}


# History


def test_fires_history_filters_and_newest_first(ledger: Ledger) -> None:
    a0 = must_claim(ledger, project="a", job="nightly", slot=T)
    a1 = must_claim(ledger, project="a", job="nightly", slot=T + SLOT)
    b1 = must_claim(ledger, project="b", job="nightly", slot=T + SLOT)
    w2 = must_claim(ledger, project="a", job="weekly", slot=T + 2 * SLOT)
    m1 = must_claim(ledger, project="a", job="nightly", slot=T + SLOT, kind=FireKind.MANUAL)
    ledger.finish(a0, state=FireState.CREATED, now=T, details={"task": {"taskGroupId": "g"}})

    def ids(**filters: Any) -> list[int]:
        return [fire.id for fire in ledger.fires(**filters)]

    # Newest slot first; in one slot, the latest fire first.
    assert ids() == [w2.fire_id, m1.fire_id, b1.fire_id, a1.fire_id, a0.fire_id]
    assert ids(project="a") == [w2.fire_id, m1.fire_id, a1.fire_id, a0.fire_id]
    assert ids(project="a", job="nightly") == [m1.fire_id, a1.fire_id, a0.fire_id]
    assert ids(job="nightly", since=T + SLOT) == [m1.fire_id, b1.fire_id, a1.fire_id]
    assert ids(state=FireState.CREATED) == [a0.fire_id]
    assert ids(state=FireState.CLAIMED, limit=2) == [w2.fire_id, m1.fire_id]
    assert ids(project="nobody") == []
    assert ledger.fire("a", "nightly", T + 3 * SLOT) is None
    # Without the rendered tasks: the same fires, their details left out.
    assert ledger.fires(details=False) == [replace(f, details=None) for f in ledger.fires()]
    assert ledger.fires(project="a", job="nightly")[-1].details == {"task": {"taskGroupId": "g"}}

    # Each job's newest fire, as the history orders them: a manual fire beside the scheduled one
    # in its slot is the later.
    latest = ledger.latest_fires("a", ["nightly", "weekly", "never", "nightly"])
    assert {job: fire.id for job, fire in latest.items()} == {
        "nightly": m1.fire_id,
        "weekly": w2.fire_id,
    }
    assert latest["nightly"] == ledger.fires(project="a", job="nightly", limit=1)[0]
    assert ledger.latest_fires("b", ["weekly"]) == {}
    assert ledger.latest_fires("a", []) == {}
    many = [f"job-{n}" for n in range(LATEST_BATCH)] + ["weekly"]  # past one statement's batch
    assert {job: fire.id for job, fire in ledger.latest_fires("a", many).items()} == {
        "weekly": w2.fire_id
    }


def test_task_groups_are_read_from_the_rendered_tasks(ledger: Ledger) -> None:
    documents: list[dict[str, Any] | None] = [
        {"task": {"taskGroupId": "fQGd7OhXSMSfVWdATUzmtw", "payload": {"env": {"A": "b"}}}},
        {"task": {"taskGroupId": 7}},  # not a task group: shown as none
        {"task": "rendered elsewhere"},
        {"hookPayload": {"taskGroupId": "not-a-task"}},
        None,
    ]
    ids = []
    for n, details in enumerate(documents):
        held = must_claim(ledger, job=f"job-{n}")
        ledger.finish(held, state=FireState.CREATED, now=T, details=details)
        ids.append(held.fire_id)

    assert ledger.task_groups([*ids, ids[0], 10**9]) == {ids[0]: "fQGd7OhXSMSfVWdATUzmtw"}
    assert ledger.task_groups([]) == {}


# Times


def test_times_come_back_as_aware_utc_whatever_zone_went_in(ledger: Ledger) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    slot = T.astimezone(india)  # 15:30 in India is 10:00 UTC: a slot
    now = datetime(2026, 11, 24, 15, 31, 7, 123456, tzinfo=india)

    held = must_claim(ledger, slot=slot, now=now)
    ledger.finish(held, state=FireState.CREATED, now=now + MINUTE)
    ledger.record_slot(
        PROJECT,
        slot,
        revision=None,
        outcome=SlotOutcome.EVALUATED,
        error=None,
        replica="r",
        now=now,
    )

    [fire] = ledger.fires()
    [record] = ledger.slots()
    times = [
        held.slot,
        fire.slot,
        fire.claimed_at,
        fire.finished_at,
        record.slot,
        record.evaluated_at,
        ledger.last_evaluated_slot(PROJECT),
    ]
    assert all(moment is not None and moment.tzinfo is UTC for moment in times), times
    assert fire.slot == record.slot == T
    assert fire.claimed_at == now
    assert fire.claimed_at.microsecond == 123456
    assert fire.finished_at == now + MINUTE
    assert ledger.fire(PROJECT, "nightly", slot) == fire
    assert [f.id for f in ledger.fires(since=slot)] == [fire.id]


def test_naive_times_are_refused(ledger: Ledger) -> None:
    naive = T.replace(tzinfo=None)

    with pytest.raises(ValueError, match="timezone-aware"):
        claim(ledger, slot=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        claim(ledger, now=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.fires(since=naive)
    assert ledger.fires() == []


def test_lease_comparisons_follow_time_not_text_across_zones(ledger: Ledger) -> None:
    # 10:04 in New York is 15:04 UTC: long after a lease ending at 10:05 UTC.
    new_york = timezone(timedelta(hours=-5))
    must_claim(ledger, now=T)

    assert claim(ledger, replica="replica-b", now=datetime(2026, 11, 24, 10, 4, tzinfo=new_york))


# Opening and migrations


def schema_state(url: str) -> tuple[str | None, list[Any], int]:
    """(revision, differences between the database and the models, rows in alembic_version)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            versions = connection.scalar(select(func.count()).select_from(table("alembic_version")))
            return current_revision(connection), differences, versions or 0
    finally:
        engine.dispose()


def test_open_migrates_a_fresh_database_to_the_models(ledger_url: str) -> None:
    with Ledger.open(ledger_url):
        pass

    revision, differences, versions = schema_state(ledger_url)
    assert revision == head_revision()
    assert differences == []
    assert versions == 1


def test_reopening_keeps_the_data_and_changes_nothing(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        held = must_claim(ledger)
    before = schema_state(ledger_url)

    with Ledger.open(ledger_url) as ledger:
        assert claim(ledger, replica="replica-b") is None
        assert ledger.finish(held, state=FireState.CREATED, now=T)

    assert schema_state(ledger_url) == before


def test_processes_opening_a_fresh_ledger_at_once_all_succeed(ledger_url: str) -> None:
    results = run_in_processes(open_at_once, [(ledger_url,)] * 3)

    assert results == [[], [], []]
    revision, differences, versions = schema_state(ledger_url)
    assert (revision, differences, versions) == (head_revision(), [], 1)


@pytest.mark.parametrize(
    "url",
    [
        "mysql://user@localhost/ledger",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+asyncpg://user@localhost/ledger",
        "not a database url",
    ],
)
def test_open_refuses_urls_it_cannot_use(url: str) -> None:
    with pytest.raises(LedgerURLError):
        Ledger.open(url)


def test_url_errors_do_not_show_the_password() -> None:
    with pytest.raises(LedgerURLError) as refused:
        Ledger.open("mysql://user:hunter2@localhost/ledger")

    assert "hunter2" not in str(refused.value)


# SQLite specifics: shared by processes, and writers wait for each other


def test_sqlite_ledger_creates_its_directory_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "ledger.db"

    with Ledger.open(f"sqlite:///{path}"):
        pass

    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_sqlite_writer_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(f"sqlite:///{path}") as ledger:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE fires SET replica = 'other'")  # holds the write lock
        release = threading.Timer(0.3, other.execute, ["COMMIT"])
        release.start()
        try:
            assert claim(ledger) is not None
        finally:
            release.join()
            other.close()


# -- remediations --------------------------------------------------------------------------


def test_one_remediation_runs_at_a_time_and_the_cooldown_holds(ledger: Ledger) -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    cooldown = timedelta(hours=6)
    expiring = [{"taskId": "abc", "where": "ns", "expires": "2026-12-01T00:00:00Z"}]

    def start(replica: str, at: datetime) -> Any:
        return ledger.start_remediation(
            "demo",
            action="rebuild-cached-tasks",
            expiring=expiring,
            replica=replica,
            now=at,
            cooldown=cooldown,
        )

    first = start("a", now)
    assert first is not None
    assert start("b", now) is None  # running elsewhere
    ledger.remediation_triggered(first.id, task_id="T", task_group_id="T")
    assert ledger.running_remediation("demo") == replace(first, task_id="T", task_group_id="T")
    assert ledger.finish_remediation(first.id, state=RemediationState.FAILED, now=now, error="x")
    assert not ledger.finish_remediation(first.id, state=RemediationState.SUCCEEDED, now=now)
    assert start("b", now + timedelta(hours=5)) is None  # within the cooldown
    again = start("b", now + timedelta(hours=6, seconds=1))
    assert again is not None
    assert [r.state for r in ledger.remediations(project="demo")] == [
        RemediationState.RUNNING,
        RemediationState.FAILED,
    ]
    assert ledger.remediations(project="demo")[1].error == "x"
