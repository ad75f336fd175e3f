"""The ledger's bulk forms, on SQLite and PostgreSQL: a tick's claims, outcomes, reads and slot
records and a watcher round's steps each take a number of statements that does not grow with
the fires or projects, and give what the one-at-a-time forms give.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from scheduler.config.model import OverlapPolicy, Project
from scheduler.engine.tick_reads import read_tick
from scheduler.ledger import (
    Act,
    AsyncLedger,
    Claim,
    FireKind,
    FireState,
    Health,
    Ledger,
    Notice,
    Outcome,
    SlotOutcome,
    SlotRecord,
    Watch,
    WatchPhase,
    WatchSpec,
    WatchStep,
)
from scheduler.ledger.connecting import create_ledger_engine
from scheduler.notify.routing import Router
from scheduler.notify.settings import NotifySettings
from scheduler.reports.reporter import Reporter
from scheduler.taskcluster import Clients
from scheduler.watcher import Watcher
from tests.support.ledger_backends import race_for_claims_at_once, run_in_processes

T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
SLOT = timedelta(minutes=15)


@pytest.fixture
def counted(ledger: Ledger, ledger_url: str) -> Iterator[tuple[Ledger, list[str]]]:
    """A second ledger on the same database, and the statements it runs (an executemany once;
    SQLite's BEGIN too)."""
    engine = create_ledger_engine(ledger_url)
    statements: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda *args: statements.append(str(args[2]).strip())
    )
    with Ledger(engine) as counting:
        yield counting, statements


@contextmanager
def counting(statements: list[str]) -> Iterator[list[str]]:
    """The statements run inside (BEGIN left out)."""
    statements.clear()
    inside: list[str] = []
    yield inside
    inside += [s for s in statements if not s.upper().startswith("BEGIN")]


def wanted(
    projects: int, jobs: int, slot: datetime = T
) -> list[tuple[str, str, datetime, FireKind]]:
    return [
        (f"project-{p}", f"job-{j}", slot, FireKind.SCHEDULED)
        for p in range(projects)
        for j in range(jobs)
    ]


def claim_all(
    ledger: Ledger, keys: Any, *, now: datetime = T, **options: Any
) -> list[Claim | None]:
    return ledger.claim_all(keys, replica="replica-a", now=now, lease=LEASE, **options)


def created(claim: Claim) -> Outcome:
    return Outcome(claim, FireState.CREATED, task_id=f"task-{claim.fire_id}", watch=WatchSpec())


# Claims


def test_a_batch_of_claims_over_projects_is_one_statement_whatever_its_size(
    counted: tuple[Ledger, list[str]],
) -> None:
    ledger, statements = counted
    sizes = {}
    for n, (projects, jobs) in enumerate([(2, 2), (20, 10)]):
        with counting(statements) as run:
            claims = claim_all(ledger, wanted(projects, jobs, T + n * SLOT))
        assert all(claims)
        sizes[projects * jobs] = len(run)
    assert sizes == {4: 1, 200: 1}


def test_claim_all_answers_each_fire_in_order_with_the_rules_of_claim(ledger: Ledger) -> None:
    held = claim_all(ledger, [("a", "held", T, FireKind.SCHEDULED)])[0]
    assert held is not None
    ledger.record_skip("b", "skipped", T, kind=FireKind.SCHEDULED, reason="x", replica="r", now=T)
    expired = ledger.claim(
        "a", "expired", T, kind=FireKind.SCHEDULED, replica="r", now=T - LEASE, lease=LEASE
    )
    assert expired is not None

    keys = [
        ("b", "skipped", T, FireKind.SCHEDULED),
        ("a", "new", T, FireKind.CATCH_UP),
        ("a", "held", T, FireKind.SCHEDULED),
        ("a", "manual", T + timedelta(minutes=3), FireKind.MANUAL),
        ("a", "expired", T, FireKind.SCHEDULED),
        ("a", "new", T, FireKind.CATCH_UP),  # the same fire twice: the first is claimed
        ("a", "new", T, FireKind.SCHEDULED),
        ("a", "manual", T + timedelta(minutes=3), FireKind.MANUAL),
    ]
    claims = claim_all(ledger, keys)

    assert [None if c is None else (c.project, c.job, c.kind, c.attempt) for c in claims] == [
        None,
        ("a", "new", FireKind.CATCH_UP, 1),
        None,
        ("a", "manual", FireKind.MANUAL, 1),
        ("a", "expired", FireKind.SCHEDULED, 2),
        None,
        None,
        ("a", "manual", FireKind.MANUAL, 1),
    ]
    manual = [c for c in claims if c is not None and c.kind is FireKind.MANUAL]
    assert manual[0].fire_id != manual[1].fire_id
    assert ledger.claim_many(
        "a", [("expired", T, FireKind.SCHEDULED)], replica="r", now=T, lease=LEASE
    ) == [None]


def test_a_backfill_batch_retakes_unmade_and_failed_fires_and_forgets_their_watches(
    ledger: Ledger,
) -> None:
    failed, dry = claim_all(ledger, wanted(1, 2))
    assert failed is not None
    assert dry is not None
    ledger.finish_many(
        [
            Outcome(failed, FireState.FAILED, error="broken", watch=WatchSpec()),
            Outcome(dry, FireState.DRY_RUN, details={"task": {}}),
        ],
        now=T,
    )
    assert ledger.watch(failed.fire_id) is not None

    later = T + LEASE
    retaken = claim_all(ledger, wanted(1, 2), now=later, retake_unmade=True)
    assert [c.attempt if c else None for c in retaken] == [None, 2]
    redone = ledger.fire_by_id(dry.fire_id)
    assert redone is not None
    assert (redone.state, redone.details, redone.asked_at) == (FireState.CLAIMED, None, later)

    rerun = later + timedelta(minutes=1)
    again = claim_all(ledger, wanted(1, 2), now=rerun, retake_unmade=True, rerun_failed=True)

    assert [c.attempt if c else None for c in again] == [2, None]
    assert ledger.watch(failed.fire_id) is None
    fire = ledger.fire_by_id(failed.fire_id)
    assert fire is not None
    assert (fire.state, fire.error, fire.finished_at, fire.asked_at) == (
        FireState.CLAIMED,
        None,
        None,
        rerun,
    )


def test_processes_racing_with_whole_batches_claim_each_fire_exactly_once(
    ledger: Ledger, ledger_url: str
) -> None:
    keys = [(f"project-{p}", f"job-{j}", T) for p in range(5) for j in range(8)]
    replicas = [f"process-{p}" for p in range(3)]

    results = run_in_processes(
        race_for_claims_at_once,
        [(ledger_url, replica, keys, T, T + LEASE, LEASE) for replica in replicas],
    )

    claimed = Counter(key for _, first, _ in results for key in first)
    taken = Counter(key for _, _, later in results for key in later)
    assert claimed == dict.fromkeys(keys, 1)
    assert taken == dict.fromkeys(keys, 1)
    assert {f.attempt for p in range(5) for f in ledger.fires(project=f"project-{p}")} == {2}


# Outcomes


def test_a_batch_of_outcomes_is_a_few_statements_whatever_its_size(
    ledger: Ledger, counted: tuple[Ledger, list[str]]
) -> None:
    counting_ledger, statements = counted
    sizes = {}
    for n, count in enumerate([2, 60]):
        claims = [c for c in claim_all(ledger, wanted(count, 1, T + n * SLOT)) if c]
        with counting(statements) as run:
            assert (
                counting_ledger.finish_many([created(c) for c in claims], now=T) == [True] * count
            )
        sizes[count] = len(run)
    assert sizes[2] == sizes[60] <= 3


def test_a_batch_of_outcomes_records_only_the_fires_still_held(ledger: Ledger) -> None:
    sent, stale, retried = (c for c in claim_all(ledger, wanted(1, 3)) if c)
    assert ledger.mark_sent(sent, now=T, details={"task": {"taskGroupId": "g"}})
    taker = ledger.claim(
        stale.project,
        stale.job,
        stale.slot,
        kind=stale.kind,
        replica="b",
        now=T + LEASE,
        lease=LEASE,
    )
    assert taker is not None

    recorded = ledger.finish_many(
        [
            created(sent),
            created(stale),
            Outcome(retried, FireState.RETRYING, error="down", retry_at=T + LEASE),
        ],
        now=T + LEASE,
    )

    assert recorded == [True, False, True]
    made = ledger.fire_by_id(sent.fire_id)
    assert made is not None
    assert (made.state, made.details, made.finished_at) == (
        FireState.CREATED,
        {"task": {"taskGroupId": "g"}},  # what was sent stays when no new details are given
        T + LEASE,
    )
    taken = ledger.fire_by_id(stale.fire_id)
    assert taken is not None
    assert (taken.state, taken.replica) == (FireState.CLAIMED, "b")
    again = ledger.fire_by_id(retried.fire_id)
    assert again is not None
    assert (again.state, again.lease_until) == (FireState.RETRYING, T + LEASE)
    assert [w.fire_id for w in ledger.watches()] == [sent.fire_id]
    assert ledger.renew_many([sent, taker], now=T + LEASE, lease=LEASE) == [False, True]


def test_a_claim_finished_twice_in_one_batch_is_recorded_and_watched_once(ledger: Ledger) -> None:
    [claim] = claim_all(ledger, wanted(1, 1))
    assert claim is not None

    recorded = ledger.finish_many([created(claim), created(claim)], now=T)

    assert recorded == [True, False]  # as `finish` twice answers
    assert [w.fire_id for w in ledger.watches()] == [claim.fire_id]


# A tick's reads and slot records


def test_a_ticks_reads_and_slot_records_take_the_same_statements_for_any_number_of_projects(
    ledger: Ledger, counted: tuple[Ledger, list[str]]
) -> None:
    counting_ledger, statements = counted
    sizes = {}
    for count in (2, 40):
        projects = [project(f"project-{n}", "skip") for n in range(count)]
        with counting(statements) as run:
            reads = asyncio.run(
                read_tick(AsyncLedger(counting_ledger), projects, now=T, horizon=timedelta(days=1))
            )
            counting_ledger.record_slots([evaluated(p.name, T) for p in projects])
        assert set(reads) == {p.name for p in projects}
        sizes[count] = len(run)
    assert sizes[2] == sizes[40] <= 8


def test_a_ticks_reads_are_each_projects_own(ledger: Ledger) -> None:
    pause = Act("alice", "pause", "a", None)
    ledger.pause("a", None, reason="maintenance", until=None, act=pause, now=T - SLOT)
    ledger.pause("b", "nightly", reason="broken", until=T - SLOT, act=pause, now=T - 2 * SLOT)
    ledger.record_slots(
        [evaluated("a", T - 2 * SLOT), evaluated("a", T - SLOT), evaluated("b", T - 2 * SLOT)]
    )
    _open_claim, running = (
        c
        for c in claim_all(
            ledger,
            [
                ("b", "open", T - SLOT, FireKind.SCHEDULED),
                ("a", "running", T - SLOT, FireKind.SCHEDULED),
            ],
        )
        if c
    )
    assert ledger.finish_many([created(running)], now=T - SLOT) == [True]
    projects = [project("a", "skip"), project("b", "allow"), project("c", "skip")]

    reads = asyncio.run(
        read_tick(AsyncLedger(ledger), projects, now=T + LEASE, horizon=timedelta(days=1))
    )

    assert {name: r.last_evaluated for name, r in reads.items()} == {
        "a": T - SLOT,
        "b": T - 2 * SLOT,
        "c": None,
    }
    assert {name: [p.reason for p in r.pauses] for name, r in reads.items()} == {
        "a": ["maintenance"],
        "b": [],  # over before the tick
        "c": [],
    }
    assert {name: [f.job for f in r.open_fires] for name, r in reads.items()} == {
        "a": [],
        "b": ["open"],
        "c": [],
    }
    # Only projects whose overlap policy needs them have their running fires read.
    assert {name: [f.job for f in r.running] for name, r in reads.items()} == {
        "a": ["running"],
        "b": [],
        "c": [],
    }


def test_slot_records_in_one_write_replace_earlier_evaluations(ledger: Ledger) -> None:
    ledger.record_slots([evaluated("a", T), evaluated("b", T)])
    failed = SlotRecord("a", T, None, SlotOutcome.FAILED, "unreachable", "r", T + LEASE)
    ledger.record_slots([failed])

    assert ledger.latest_slots(["a", "b"]) == {"a": failed, "b": evaluated("b", T)}
    assert ledger.last_evaluated_slots(["a", "b", "c"]) == {"a": T, "b": T}


def project(name: str, overlap: OverlapPolicy) -> Project:
    return Project(name, f"https://example.com/{name}", "test", overlap=overlap)


def evaluated(name: str, slot: datetime) -> SlotRecord:
    return SlotRecord(name, slot, "abc", SlotOutcome.EVALUATED, None, "r", slot)


# A watcher round


def test_a_watcher_round_is_one_transaction_whatever_its_size(
    ledger: Ledger, counted: tuple[Ledger, list[str]]
) -> None:
    counting_ledger, statements = counted
    sizes = {}
    for n, count in enumerate([2, 50]):
        claims = [c for c in claim_all(ledger, wanted(count, 1, T + n * SLOT)) if c]
        ledger.finish_many([created(c) for c in claims], now=T)
        ids = {c.fire_id for c in claims}
        steps = [
            WatchStep(w, WatchPhase.TASK, [healthy(f"seen-{w.fire_id}", w.project)], "running")
            for w in ledger.watches()
            if w.fire_id in ids
        ]
        with counting(statements) as run:
            assert counting_ledger.advance_watches(steps, now=T) == [True] * count
        sizes[count] = len(run)
    # The watches read, written, and the open incidents their healthy notices could close.
    assert sizes[2] == sizes[50] <= 3


def test_a_watcher_round_moves_only_watches_still_as_read_and_queues_their_notices(
    ledger: Ledger,
) -> None:
    claims = [c for c in claim_all(ledger, wanted(3, 1)) if c]
    ledger.finish_many([created(c) for c in claims], now=T)
    first, second, third = ledger.watches()
    assert ledger.advance_watch(second, WatchPhase.TASK, now=T, task_state="pending")

    def notice(key: str) -> Notice:
        return Notice(key, {"what": key}, ("log",), health=Health.NONE)

    moved = ledger.advance_watches(
        [
            WatchStep(first, WatchPhase.DONE, [notice("first")], "completed", run_state=None),
            WatchStep(second, WatchPhase.TASK, [notice("second")], task_state="running"),
            WatchStep(third, WatchPhase.TASK, [notice("third")], task_state="running"),
            WatchStep(third, WatchPhase.DONE, [notice("third-again")], task_state="failed"),
        ],
        now=T + LEASE,
    )

    assert moved == [True, False, True, False]
    assert {letter.key for letter in ledger.letters()} == {"first", "third"}
    done = ledger.watch(first.fire_id)
    assert done is not None
    assert (done.phase, done.task_state, done.resolved_at) == (
        WatchPhase.DONE,
        "completed",
        T + LEASE,
    )
    seen = ledger.watch(second.fire_id)
    assert seen is not None
    assert seen.task_state == "pending"


def test_a_rounds_healthy_notices_close_only_open_incidents(ledger: Ledger) -> None:
    claims = [c for c in claim_all(ledger, wanted(3, 1)) if c]
    ledger.finish_many([created(c) for c in claims], now=T)
    first, second, third = ledger.watches()
    ledger.report([failing("broken-a", "project-0")], now=T)

    moved = ledger.advance_watches(
        [
            WatchStep(first, WatchPhase.TASK, [healthy("fine-a", "project-0")], "running"),
            WatchStep(second, WatchPhase.TASK, [healthy("fine-b", "project-1")], "running"),
            WatchStep(
                third,
                WatchPhase.TASK,
                [failing("broken-c", "project-2"), healthy("fine-c", "project-2")],
                "running",
            ),
        ],
        now=T + LEASE,
    )

    assert moved == [True, True, True]
    letters = {letter.key: letter for letter in ledger.letters()}
    assert set(letters) == {"broken-a", "fine-a", "broken-c", "fine-c"}
    assert letters["fine-a"].reply_to == "broken-a"
    assert letters["fine-a"].fire_id == first.fire_id
    assert ledger.incidents(open_only=True) == []


def healthy(key: str, project: str) -> Notice:
    return Notice(key, {"what": key}, ("log",), f"template:{project}", Health.HEALTHY)


def failing(key: str, project: str) -> Notice:
    return Notice(key, {"what": key}, ("log",), f"template:{project}", Health.FAILING)


class _SlipReporter(Reporter):
    """A reporter with a bug: the notice of project-0's failure carries a value no ledger can
    store (a datetime in its event)."""

    def fire_failed(self, watch: Watch, now: datetime) -> list[Notice]:
        if watch.project == "project-0":
            return [Notice(f"bad-{watch.fire_id}", {"at": now}, ("log",))]
        return [Notice(f"failed-{watch.fire_id}", {"what": watch.job}, ("log",))]


def test_a_watcher_round_with_one_step_the_ledger_refuses_still_moves_the_others(
    ledger: Ledger,
) -> None:
    claims = [c for c in claim_all(ledger, wanted(3, 1)) if c]
    failed = [Outcome(c, FireState.FAILED, error="down", watch=WatchSpec()) for c in claims]
    ledger.finish_many(failed, now=T)

    def no_reads(project: str) -> Clients:
        raise AssertionError("a round without reads calls no Taskcluster")

    watcher = Watcher(
        no_reads, AsyncLedger(ledger), _SlipReporter(Router(NotifySettings())), lambda: T
    )
    assert asyncio.run(watcher.step(reads=False)) == 2

    phases = {w.project: w.phase for w in ledger.watches_of([c.fire_id for c in claims]).values()}
    assert phases == {
        "project-0": WatchPhase.REPORT,  # tried again next round
        "project-1": WatchPhase.DONE,
        "project-2": WatchPhase.DONE,
    }
    assert {letter.key for letter in ledger.letters()} == {
        f"failed-{c.fire_id}" for c in claims if c.project != "project-0"
    }
