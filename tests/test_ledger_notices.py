"""The ledger's watches, incidents and outbox, the same suite on SQLite and PostgreSQL.

What the watcher follows after a fire, which notices become letters (once, or once per incident),
and how replicas take letters in order without sending one twice. Time is injected (`now`).
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from scheduler.common.redaction import remember_secret
from scheduler.ledger import (
    Claim,
    FireKind,
    FireState,
    Health,
    Ledger,
    Letter,
    LetterState,
    Notice,
    Outcome,
    SlotOutcome,
    Watch,
    WatchPhase,
    WatchSpec,
)

PROJECT = "mozilla-central"
T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
SLOT = timedelta(minutes=15)
TASK_ID = "fZ3x9nVnQ4mS0b1x2d3e4f"
REVISION = "3b2c1a0f" * 5
RELENG = "slack:#releng"
NIGHTLY = "slack:#nightly"
SENTRY = "sentry"
SUBJECT = f"job:{PROJECT}/nightly"


def must_claim(
    ledger: Ledger,
    *,
    job: str = "nightly",
    slot: datetime = T,
    replica: str = "replica-a",
    now: datetime = T,
) -> Claim:
    taken = ledger.claim(
        PROJECT, job, slot, kind=FireKind.SCHEDULED, replica=replica, now=now, lease=LEASE
    )
    assert taken is not None, f"expected to claim {job} at {slot}"
    return taken


def fire_and_finish(
    ledger: Ledger,
    state: FireState,
    *,
    job: str = "nightly",
    task_id: str | None = TASK_ID,
    watch: WatchSpec | None = None,
    error: str | None = None,
    now: datetime = T + MINUTE,
) -> Claim:
    held = must_claim(ledger, job=job)
    [recorded] = ledger.finish_many(
        [Outcome(held, state, task_id, REVISION, error, None, watch)], now=now
    )
    assert recorded
    return held


def notice(
    key: str,
    *destinations: str,
    health: Health = Health.NONE,
    subject: str | None = None,
    fingerprint: str | None = None,
) -> Notice:
    return Notice(
        key=key,
        event={"kind": "task-failed", "title": f"event {key}"},
        destinations=destinations or (RELENG,),
        subject=subject if subject is not None or health is Health.NONE else SUBJECT,
        health=health,
        fingerprint=fingerprint,
    )


def failing(key: str, *destinations: str, fingerprint: str | None = "rev-1") -> Notice:
    return notice(key, *destinations, health=Health.FAILING, fingerprint=fingerprint)


def healthy(key: str, *destinations: str) -> Notice:
    return notice(key, *destinations, health=Health.HEALTHY)


def keys(letters: list[Letter]) -> list[tuple[str, str]]:
    return [(letter.key, letter.destination) for letter in letters]


def take(
    ledger: Ledger, *, now: datetime = T, replica: str = "replica-a", limit: int = 100
) -> list[Letter]:
    return ledger.take_letters(replica=replica, now=now, lease=LEASE, limit=limit)


def canary() -> str:
    """A made-up secret that matches none of scrub's patterns: only remembering masks it."""
    return "".join(secrets.choice(string.ascii_letters) for _ in range(28))


# Watches


def test_a_created_fire_with_a_task_is_watched_from_its_task(ledger: Ledger) -> None:
    spec = WatchSpec(task_kind="decision", follow_group=True, crontab="0 3 * * *")
    held = fire_and_finish(ledger, FireState.CREATED, watch=spec, now=T + MINUTE)

    assert ledger.watches() == [
        Watch(
            fire_id=held.fire_id,
            project=PROJECT,
            job="nightly",
            slot=T,
            kind=FireKind.SCHEDULED,
            fire_state=FireState.CREATED,
            revision=REVISION,
            task_id=TASK_ID,
            error=None,
            task_kind="decision",
            follow_group=True,
            crontab="0 3 * * *",
            project_broken=False,
            phase=WatchPhase.TASK,
            created_at=T + MINUTE,
        )
    ]
    assert ledger.watch(held.fire_id) == ledger.watches()[0]


def test_a_fire_someone_else_created_is_watched_from_its_task(ledger: Ledger) -> None:
    held = fire_and_finish(ledger, FireState.ALREADY_FIRED, watch=WatchSpec(task_kind="action"))

    watch = ledger.watch(held.fire_id)
    assert watch is not None
    assert (watch.phase, watch.fire_state, watch.task_kind) == (
        WatchPhase.TASK,
        FireState.ALREADY_FIRED,
        "action",
    )


def test_a_failed_fire_is_watched_only_for_its_report(ledger: Ledger) -> None:
    error = "createTask failed: 403 — client lacks queue:create-task:highest:proj/x"
    held = fire_and_finish(
        ledger,
        FireState.FAILED,
        task_id=None,
        error=error,
        watch=WatchSpec(project_broken=True, crontab="*/15 * * * *"),
    )

    [watch] = ledger.watches()
    assert watch.fire_id == held.fire_id
    assert (watch.phase, watch.fire_state, watch.task_id, watch.error) == (
        WatchPhase.REPORT,
        FireState.FAILED,
        None,
        error,
    )
    assert (watch.project_broken, watch.crontab) == (True, "*/15 * * * *")


def test_no_watch_without_a_spec_or_without_a_task_to_follow(ledger: Ledger) -> None:
    unwatched = fire_and_finish(ledger, FireState.CREATED, job="no-spec", watch=None)
    # What the engine records for a dry run: a task id that was never created, no spec.
    dry = fire_and_finish(ledger, FireState.DRY_RUN, job="dry-run", watch=None)
    # A triggered hook whose task id is not known yet: nothing to follow.
    hook = fire_and_finish(ledger, FireState.CREATED, job="hook", task_id=None, watch=WatchSpec())

    assert ledger.watches() == []
    for held in (unwatched, dry, hook):
        assert ledger.watch(held.fire_id) is None


def test_a_dry_run_is_never_watched_even_if_its_outcome_asks(ledger: Ledger) -> None:
    held = fire_and_finish(ledger, FireState.DRY_RUN, watch=WatchSpec())

    assert ledger.watch(held.fire_id) is None


def test_no_watch_when_the_claim_was_taken_over(ledger: Ledger) -> None:
    first = must_claim(ledger, replica="replica-a", now=T)
    second = must_claim(ledger, replica="replica-b", now=T + LEASE)

    late = Outcome(first, FireState.CREATED, TASK_ID, REVISION, watch=WatchSpec())
    assert ledger.finish_many([late], now=T + LEASE + MINUTE) == [False]
    assert ledger.watches() == []

    winner = Outcome(second, FireState.CREATED, TASK_ID, REVISION, watch=WatchSpec())
    assert ledger.finish_many([winner], now=T + LEASE + MINUTE) == [True]
    assert [watch.fire_id for watch in ledger.watches()] == [second.fire_id]


def test_watches_are_listed_oldest_first_without_done_ones(ledger: Ledger) -> None:
    outcomes = []
    for job in ("charlie", "alpha", "bravo"):
        held = must_claim(ledger, job=job)
        state = FireState.FAILED if job == "alpha" else FireState.CREATED
        task_id = None if state is FireState.FAILED else TASK_ID
        outcomes.append(Outcome(held, state, task_id, REVISION, watch=WatchSpec()))
    assert ledger.finish_many(outcomes, now=T + MINUTE) == [True, True, True]

    watches = ledger.watches()
    assert [w.job for w in watches] == ["charlie", "alpha", "bravo"]
    assert [w.phase for w in watches] == [WatchPhase.TASK, WatchPhase.REPORT, WatchPhase.TASK]
    assert [w.job for w in ledger.watches(limit=2)] == ["charlie", "alpha"]

    assert ledger.advance_watch(watches[0], WatchPhase.DONE, now=T + HOUR, task_state="completed")
    assert [w.job for w in ledger.watches()] == ["alpha", "bravo"]
    done = ledger.watch(watches[0].fire_id)
    assert done is not None
    assert (done.phase, done.task_state, done.resolved_at) == (
        WatchPhase.DONE,
        "completed",
        T + HOUR,
    )


def test_advance_watch_moves_on_and_queues_its_notices_in_one_step(ledger: Ledger) -> None:
    held = fire_and_finish(ledger, FireState.CREATED, watch=WatchSpec(follow_group=True))
    [read] = ledger.watches()

    assert ledger.advance_watch(
        read,
        WatchPhase.GROUP,
        now=T + HOUR,
        notices=[notice("decision-done", RELENG, SENTRY)],
        task_state="completed",
        task_group_id=TASK_ID,
    )

    moved = ledger.watch(held.fire_id)
    assert moved is not None
    assert (moved.phase, moved.task_state, moved.task_group_id, moved.resolved_at) == (
        WatchPhase.GROUP,
        "completed",
        TASK_ID,
        None,
    )
    assert keys(ledger.letters()) == [("decision-done", RELENG), ("decision-done", SENTRY)]
    assert {letter.created_at for letter in ledger.letters()} == {T + HOUR}


def test_the_pages_read_watches_by_fire_and_letters_by_fire_or_project(ledger: Ledger) -> None:
    followed = fire_and_finish(ledger, FireState.CREATED, watch=WatchSpec())
    unwatched = fire_and_finish(ledger, FireState.CREATED, job="hourly")
    assert ledger.watches_of([]) == {}
    [read] = ledger.watches()
    about_it = notice("task-failed:1", RELENG)
    assert ledger.advance_watch(
        read, WatchPhase.DONE, now=T + HOUR, notices=[about_it], task_state="failed"
    )
    ledger.report(
        [
            Notice("other", {"kind": "x", "project": "elsewhere"}, (RELENG,)),
            Notice("expiry", {"kind": "expiring-found", "project": PROJECT}, (RELENG,)),
        ],
        now=T + 2 * HOUR,
    )

    found = ledger.watches_of([followed.fire_id, unwatched.fire_id])
    assert list(found) == [followed.fire_id]
    assert (found[followed.fire_id].task_state, found[followed.fire_id].phase) == (
        "failed",
        WatchPhase.DONE,
    )
    assert [letter.key for letter in ledger.letters_about(fire_id=followed.fire_id)] == [
        "task-failed:1"
    ]
    assert ledger.letters_about(fire_id=unwatched.fire_id) == []
    # A project's letters: those whose event names it, newest first.
    assert [letter.key for letter in ledger.letters_about(project=PROJECT)] == ["expiry"]
    assert [letter.key for letter in ledger.letters_about(project="elsewhere")] == ["other"]
    assert ledger.letters_about(project="nobody") == []
    # Leaving out a kind by its keys' start, before the limit (check-ins outnumber the rest).
    ledger.report(
        [
            Notice(f"check-in:{n}:end", {"project": PROJECT, "status": "ok"}, (RELENG,))
            for n in (1, 2)
        ],
        now=T + 3 * HOUR,
    )
    assert [letter.key for letter in ledger.letters_about(project=PROJECT, limit=1)] == [
        "check-in:2:end"
    ]
    assert [
        letter.key
        for letter in ledger.letters_about(project=PROJECT, except_keys="check-in:", limit=1)
    ] == ["expiry"]
    # The start is taken as text, not as a LIKE pattern.
    assert len(ledger.letters_about(project=PROJECT, except_keys="check_in%")) == 3


def test_a_watch_read_by_two_replicas_is_advanced_once(ledger: Ledger, ledger_url: str) -> None:
    fire_and_finish(ledger, FireState.CREATED, watch=WatchSpec())
    with Ledger.open(ledger_url) as other:
        [seen_by_a] = ledger.watches()
        [seen_by_b] = other.watches()

        assert ledger.advance_watch(
            seen_by_a,
            WatchPhase.DONE,
            now=T + HOUR,
            notices=[failing("failed-by-a")],
            task_state="failed",
        )
        assert not other.advance_watch(
            seen_by_b,
            WatchPhase.DONE,
            now=T + HOUR,
            notices=[notice("told-by-b"), failing("failed-by-b")],
            task_state="exception",
            reason="deadline-exceeded",
        )
        # The same stale watch again: still nothing.
        assert not ledger.advance_watch(
            seen_by_a, WatchPhase.GROUP, now=T + HOUR, notices=[notice("again")]
        )

    done = ledger.watch(seen_by_a.fire_id)
    assert done is not None
    assert (done.phase, done.task_state, done.reason) == (WatchPhase.DONE, "failed", None)
    assert keys(ledger.letters()) == [("failed-by-a", RELENG)]
    [incident] = ledger.incidents()
    assert incident.failures == 1, "the losing replica's failure was not counted either"


# Incidents and what gets queued


def test_a_plain_notice_is_queued_once_per_key_and_destination(ledger: Ledger) -> None:
    assert ledger.report([notice("slots-skipped/1", RELENG, NIGHTLY)], now=T) == ["slots-skipped/1"]
    assert ledger.report([notice("slots-skipped/1", RELENG, NIGHTLY)], now=T + MINUTE) == []
    # A destination it was not queued for yet still gets it.
    assert ledger.report([notice("slots-skipped/1", NIGHTLY, SENTRY)], now=T + HOUR) == [
        "slots-skipped/1"
    ]

    letters = ledger.letters()
    assert keys(letters) == [
        ("slots-skipped/1", RELENG),
        ("slots-skipped/1", NIGHTLY),
        ("slots-skipped/1", SENTRY),
    ]
    assert [letter.created_at for letter in letters] == [T, T, T + HOUR]
    assert all(letter.state is LetterState.PENDING for letter in letters)
    assert all(
        letter.attempts == 0 and letter.next_attempt_at == letter.created_at for letter in letters
    )
    assert letters[0].event == {"kind": "task-failed", "title": "event slots-skipped/1"}
    assert ledger.incidents() == []


def test_a_first_failure_opens_an_incident_and_is_queued(ledger: Ledger) -> None:
    assert ledger.report([failing("fail-1", RELENG, SENTRY)], now=T) == ["fail-1"]

    [incident] = ledger.incidents(open_only=True)
    assert (incident.subject, incident.opened_at, incident.closed_at) == (SUBJECT, T, None)
    assert (incident.opened_by, incident.thread_key, incident.fingerprint) == (
        "fail-1",
        "fail-1",
        "rev-1",
    )
    assert incident.failures == 1
    assert keys(ledger.letters()) == [("fail-1", RELENG), ("fail-1", SENTRY)]


def test_further_failures_are_counted_and_not_sent(ledger: Ledger) -> None:
    ledger.report([failing("fail-1")], now=T)

    assert ledger.report([failing("fail-2")], now=T + HOUR) == []
    assert ledger.report([failing("fail-3", fingerprint=None)], now=T + 2 * HOUR) == []
    # The same failure reported twice (a restart, another replica) counts once.
    assert ledger.report([failing("fail-3", fingerprint=None)], now=T + 2 * HOUR) == []

    [incident] = ledger.incidents()
    assert incident.failures == 3
    assert (incident.opened_by, incident.thread_key, incident.fingerprint) == (
        "fail-1",
        "fail-1",
        "rev-1",
    )
    assert keys(ledger.letters()) == [("fail-1", RELENG)]


def test_a_failure_with_a_new_fingerprint_is_sent_and_becomes_the_thread(ledger: Ledger) -> None:
    ledger.report([failing("fail-1", fingerprint="rev-1")], now=T)
    ledger.report([failing("fail-2", fingerprint="rev-1")], now=T + HOUR)

    assert ledger.report([failing("fail-3", fingerprint="rev-2")], now=T + 2 * HOUR) == ["fail-3"]

    [incident] = ledger.incidents()
    assert (incident.opened_by, incident.thread_key, incident.fingerprint) == (
        "fail-1",
        "fail-3",
        "rev-2",
    )
    assert (incident.failures, incident.opened_at) == (3, T)
    assert keys(ledger.letters()) == [("fail-1", RELENG), ("fail-3", RELENG)]


def test_health_without_an_open_incident_queues_nothing(ledger: Ledger) -> None:
    assert ledger.report([healthy("ok-1", RELENG, SENTRY)], now=T) == []

    assert ledger.letters() == []
    assert ledger.incidents() == []


def test_health_closes_the_incident_and_replies_in_its_thread(ledger: Ledger) -> None:
    ledger.report([failing("fail-1", fingerprint="rev-1")], now=T)
    ledger.report([failing("fail-2", fingerprint="rev-1")], now=T + HOUR)
    ledger.report([failing("fail-3", fingerprint="rev-2")], now=T + 2 * HOUR)

    assert ledger.report([healthy("ok-1", RELENG, NIGHTLY)], now=T + 3 * HOUR) == ["ok-1"]

    [incident] = ledger.incidents()
    assert incident.closed_at == T + 3 * HOUR
    assert ledger.incidents(open_only=True) == []
    recoveries = [letter for letter in ledger.letters() if letter.key == "ok-1"]
    assert [r.destination for r in recoveries] == [RELENG, NIGHTLY]
    for recovery in recoveries:
        assert recovery.reply_to == "fail-3"
        assert recovery.incident is not None
        assert datetime.fromisoformat(recovery.incident["opened_at"]) == T
        assert recovery.incident["failures"] == 3
        assert recovery.incident["opened_by"] == "fail-1"
    # Healthy again: nothing is open, so nothing more is said.
    assert ledger.report([healthy("ok-2")], now=T + 4 * HOUR) == []
    assert [letter.key for letter in ledger.letters()].count("ok-2") == 0


def test_after_a_recovery_a_new_failure_opens_a_new_incident(ledger: Ledger) -> None:
    ledger.report([failing("fail-1"), healthy("ok-1")], now=T)

    assert ledger.report([failing("fail-2")], now=T + HOUR) == ["fail-2"]

    newest, oldest = ledger.incidents(subject=SUBJECT)
    assert (newest.opened_by, newest.failures, newest.closed_at) == ("fail-2", 1, None)
    assert (oldest.opened_by, oldest.closed_at) == ("fail-1", T)
    assert [incident.id for incident in ledger.incidents(open_only=True)] == [newest.id]


def test_incidents_are_per_subject(ledger: Ledger) -> None:
    other = f"job:{PROJECT}/weekly"
    ledger.report([failing("fail-nightly")], now=T)

    assert ledger.report(
        [notice("fail-weekly", health=Health.FAILING, subject=other, fingerprint="rev-1")],
        now=T + MINUTE,
    ) == ["fail-weekly"]
    assert ledger.report(
        [notice("ok-weekly", health=Health.HEALTHY, subject=other)], now=T + HOUR
    ) == ["ok-weekly"]

    [still_open] = ledger.incidents(open_only=True)
    assert (still_open.subject, still_open.failures) == (SUBJECT, 1)
    [closed] = ledger.incidents(subject=other)
    assert closed.closed_at == T + HOUR


# Taking and settling letters


def test_letters_are_taken_oldest_first(ledger: Ledger) -> None:
    ledger.report([notice("one", RELENG, NIGHTLY)], now=T)
    ledger.report([notice("two", SENTRY), notice("three", RELENG)], now=T + MINUTE)

    taken = take(ledger, now=T + MINUTE)

    assert keys(taken) == [("one", RELENG), ("one", NIGHTLY), ("two", SENTRY), ("three", RELENG)]
    assert [letter.id for letter in taken] == sorted(letter.id for letter in taken)
    assert keys(take(ledger, now=T + MINUTE, replica="replica-b")) == []


def test_the_limit_bounds_a_take(ledger: Ledger) -> None:
    ledger.report([notice(f"n{i}") for i in range(5)], now=T)

    assert [letter.key for letter in take(ledger, limit=2)] == ["n0", "n1"]
    assert [letter.key for letter in take(ledger, limit=2)] == [], "the rest wait behind n0"


def test_a_destination_waits_behind_a_letter_that_is_not_due_while_others_go(
    ledger: Ledger,
) -> None:
    ledger.report([notice("a1", RELENG), notice("a2", RELENG), notice("b1", NIGHTLY)], now=T)
    a1, a2, b1 = take(ledger, now=T)

    assert ledger.letter_failed(a1, error="503 from Slack", retry_at=T + 10 * MINUTE)
    assert ledger.letter_sent(b1, now=T + MINUTE)
    ledger.release_letters([a2])
    ledger.report([notice("a3", RELENG), notice("b2", NIGHTLY)], now=T + 2 * MINUTE)

    [b2] = take(ledger, now=T + 2 * MINUTE)
    assert (b2.key, b2.destination) == ("b2", NIGHTLY)
    assert ledger.letter_sent(b2, now=T + 3 * MINUTE)
    retried = take(ledger, now=T + 10 * MINUTE)
    assert keys(retried) == [("a1", RELENG), ("a2", RELENG), ("a3", RELENG)]
    assert (retried[0].attempts, retried[0].last_error) == (1, "503 from Slack")
    assert retried[0].next_attempt_at == T + 10 * MINUTE


def test_a_letter_held_by_another_replica_blocks_its_destination_until_the_lease_ends(
    ledger: Ledger,
) -> None:
    ledger.report([notice("a1", RELENG), notice("a2", RELENG), notice("b1", NIGHTLY)], now=T)
    assert keys(take(ledger, replica="replica-a", limit=1)) == [("a1", RELENG)]

    # a2 may not overtake a1, which replica-a is sending; b1 still goes.
    assert keys(take(ledger, replica="replica-b")) == [("b1", NIGHTLY)]
    assert keys(take(ledger, replica="replica-b", now=T + LEASE - MINUTE)) == []

    # replica-a died: once its lease ends, a1 goes out again, first.
    late = take(ledger, replica="replica-b", now=T + LEASE)
    assert keys(late) == [("a1", RELENG), ("a2", RELENG), ("b1", NIGHTLY)]
    assert [letter.attempts for letter in late] == [0, 0, 0]


def test_released_letters_can_be_taken_again_at_once(ledger: Ledger) -> None:
    ledger.report([notice("a1", RELENG), notice("a2", RELENG)], now=T)
    taken = take(ledger, replica="replica-a")

    ledger.release_letters(taken)

    assert keys(take(ledger, replica="replica-b")) == [("a1", RELENG), ("a2", RELENG)]


def test_a_sent_letter_records_what_was_posted_and_is_not_taken_again(ledger: Ledger) -> None:
    ledger.report([notice("a1", RELENG)], now=T)
    [a1] = take(ledger)

    assert ledger.letter_sent(a1, now=T + MINUTE, posted={"channel": "C0RELENG", "ts": "1.5"})

    [sent] = ledger.letters(state=LetterState.SENT)
    assert (sent.key, sent.posted, sent.sent_at, sent.attempts) == (
        "a1",
        {"channel": "C0RELENG", "ts": "1.5"},
        T + MINUTE,
        1,
    )
    assert take(ledger, now=T + HOUR) == []
    assert ledger.letters(state=LetterState.PENDING) == []


def test_a_reply_comes_with_the_thread_its_parent_was_posted_in_per_destination(
    ledger: Ledger,
) -> None:
    ledger.report([failing("fail-1", RELENG, NIGHTLY)], now=T)
    posted = {
        RELENG: {"channel": "C0RELENG", "ts": "1700000000.000100"},
        NIGHTLY: {"channel": "C0NIGHTLY", "ts": "1700000000.000200"},
    }
    for letter in take(ledger):
        assert letter.thread is None
        assert ledger.letter_sent(letter, now=T + MINUTE, posted=posted[letter.destination])
    ledger.report([healthy("ok-1", RELENG, NIGHTLY)], now=T + HOUR)

    replies = take(ledger, now=T + HOUR)

    assert keys(replies) == [("ok-1", RELENG), ("ok-1", NIGHTLY)]
    for reply in replies:
        assert reply.reply_to == "fail-1"
        assert reply.thread == posted[reply.destination]
    assert [letter.thread for letter in ledger.letters()] == [None] * 4, "only take_letters adds it"


def test_a_reply_has_no_thread_where_its_parent_was_not_delivered(ledger: Ledger) -> None:
    ledger.report([failing("fail-1", RELENG, NIGHTLY)], now=T)
    to_releng, to_nightly = take(ledger)
    assert ledger.letter_sent(to_releng, now=T + MINUTE, posted={"channel": "C0", "ts": "1.1"})
    assert ledger.letter_failed(to_nightly, error="not_in_channel", retry_at=None)
    ledger.report([healthy("ok-1", RELENG, NIGHTLY)], now=T + HOUR)

    threads = {reply.destination: reply.thread for reply in take(ledger, now=T + HOUR)}

    assert threads == {RELENG: {"channel": "C0", "ts": "1.1"}, NIGHTLY: None}


def test_a_reply_taken_with_its_unsent_parent_has_no_thread_yet(ledger: Ledger) -> None:
    ledger.report([failing("fail-1")], now=T)
    ledger.report([healthy("ok-1")], now=T + MINUTE)

    parent, reply = take(ledger, now=T + MINUTE)

    assert (parent.key, reply.key, reply.reply_to) == ("fail-1", "ok-1", "fail-1")
    assert reply.thread is None


def test_a_letter_given_up_on_is_never_taken_again_and_blocks_nothing(ledger: Ledger) -> None:
    ledger.report([notice("a1", RELENG), notice("a2", RELENG)], now=T)
    a1, a2 = take(ledger)
    ledger.release_letters([a2])

    assert ledger.letter_failed(a1, error="channel_not_found", retry_at=None)

    [failed] = ledger.letters(state=LetterState.FAILED)
    assert (failed.key, failed.attempts, failed.last_error) == ("a1", 1, "channel_not_found")
    assert keys(take(ledger, now=T + MINUTE)) == [("a2", RELENG)]
    assert keys(take(ledger, now=T + 30 * 24 * HOUR, replica="replica-b")) == [("a2", RELENG)]


def test_settling_a_letter_whose_attempts_moved_on_does_nothing(ledger: Ledger) -> None:
    ledger.report([notice("a1", RELENG)], now=T)
    [stale] = take(ledger)
    assert ledger.letter_failed(stale, error="timeout", retry_at=T + MINUTE)

    assert not ledger.letter_failed(stale, error="late", retry_at=None)
    assert not ledger.letter_sent(stale, now=T + MINUTE, posted={"ts": "9.9"})

    [letter] = ledger.letters()
    assert (letter.state, letter.attempts, letter.last_error, letter.posted) == (
        LetterState.PENDING,
        1,
        "timeout",
        None,
    )
    [fresh] = take(ledger, now=T + MINUTE)
    assert ledger.letter_sent(fresh, now=T + 2 * MINUTE)


def test_a_replica_whose_letter_lease_was_taken_over_cannot_settle_it(ledger: Ledger) -> None:
    ledger.report([notice("a1", RELENG)], now=T)
    [held_by_a] = take(ledger, replica="replica-a")
    [held_by_b] = take(ledger, replica="replica-b", now=T + LEASE)
    assert held_by_b.id == held_by_a.id

    # The docstring: "False if the letter was no longer ours (its lease was taken)".
    assert not ledger.letter_sent(held_by_a, now=T + LEASE, posted={"ts": "1.1"})


def test_a_long_backlog_for_one_destination_does_not_hold_back_the_others(
    ledger: Ledger,
) -> None:
    ledger.report([notice(f"a{i}", RELENG) for i in range(4)] + [notice("b1", SENTRY)], now=T)
    [a0] = take(ledger, limit=1)
    assert ledger.letter_failed(a0, error="Slack is down", retry_at=T + HOUR)

    assert keys(take(ledger, now=T + MINUTE, limit=1)) == [("b1", SENTRY)]


# Scrubbing at the ledger's boundary


def test_secrets_are_scrubbed_from_what_the_ledger_stores(ledger: Ledger) -> None:
    secret = canary()
    remember_secret(secret)

    failed = must_claim(ledger, job="failed")
    assert ledger.finish(
        failed, state=FireState.FAILED, now=T, error=f"createTask failed with token {secret}"
    )
    assert ledger.record_skip(
        PROJECT,
        "skipped",
        T,
        kind=FireKind.CATCH_UP,
        reason=f"catch-up skipped: {secret}",
        replica="replica-a",
        now=T,
    )
    ledger.record_slot(
        PROJECT,
        T,
        revision=None,
        outcome=SlotOutcome.FAILED,
        error=f"git fetch https://example.com/{secret}/repo failed",
        replica="replica-a",
        now=T,
    )
    event: dict[str, Any] = {
        "title": f"failed: {secret}",
        "facts": [["Output", f"...{secret}..."]],
        "nested": {"error": secret},
    }
    ledger.report([Notice("scrubbed", event, (RELENG,))], now=T)
    [letter] = take(ledger)
    assert ledger.letter_failed(letter, error=f"HTTP 500 echoing {secret}", retry_at=T + HOUR)

    fires = sorted((fire.job, fire.error or "") for fire in ledger.fires(project=PROJECT))
    slots = [slot.error for slot in ledger.slots(project=PROJECT)]
    letters = [(letter.event, letter.last_error) for letter in ledger.letters()]
    assert secret not in json.dumps([fires, slots, letters])
    assert fires == [
        ("failed", "createTask failed with token ***"),
        ("skipped", "catch-up skipped: ***"),
    ]
    assert slots == ["git fetch https://example.com/***/repo failed"]
    assert letters == [
        (
            {
                "title": "failed: ***",
                "facts": [["Output", "...***..."]],
                "nested": {"error": "***"},
            },
            "HTTP 500 echoing ***",
        )
    ]


# Concurrency


def test_replicas_taking_letters_at_the_same_moment_never_share_one(ledger_url: str) -> None:
    destinations = (RELENG, NIGHTLY, SENTRY, "slack:#try")
    rounds = 6
    start = threading.Barrier(2)
    with Ledger.open(ledger_url) as first, Ledger.open(ledger_url) as second:
        replicas = [("replica-a", first), ("replica-b", second)]

        def take_at(now: datetime, index: int) -> list[Letter]:
            replica, ledger = replicas[index]
            start.wait()
            return ledger.take_letters(replica=replica, now=now, lease=LEASE, limit=1000)

        with ThreadPoolExecutor(2) as pool:
            for round_ in range(rounds):
                now = T + round_ * 2 * LEASE  # every earlier lease has ended
                first.report(
                    [notice(f"r{round_}-{i}", d) for i in range(5) for d in destinations],
                    now=now,
                )
                taken_a, taken_b = pool.map(take_at, [now, now], range(2))

                ids_a = {letter.id for letter in taken_a}
                ids_b = {letter.id for letter in taken_b}
                assert ids_a.isdisjoint(ids_b), f"round {round_}: both took {ids_a & ids_b}"
                pending = {letter.id for letter in first.letters(state=LetterState.PENDING)}
                assert ids_a | ids_b == pending, f"round {round_}: a due letter was left"
                # Each destination's letters went to one replica, so they go out in order.
                owners = {
                    letter.destination: replica
                    for replica, taken in (("a", taken_a), ("b", taken_b))
                    for letter in taken
                }
                for replica, taken in (("a", taken_a), ("b", taken_b)):
                    assert all(owners[letter.destination] == replica for letter in taken)
