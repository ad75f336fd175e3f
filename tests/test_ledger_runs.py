"""Each run's outcome in the ledger, the same suite on SQLite and PostgreSQL: a watch's task
state as it moves, its run state and its task group's counts, the history filtered on them,
the runs of a job still unresolved, and the migration that brings older watches along.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command

from scheduler.ledger import (
    Claim,
    FireKind,
    FireState,
    GroupCounts,
    Ledger,
    Notice,
    Outcome,
    RunState,
    Watch,
    WatchPhase,
    WatchSpec,
)
from scheduler.ledger.connecting import create_ledger_engine
from scheduler.ledger.migrating import alembic_config
from scheduler.operations.runs import outcome_of

PROJECT = "mozilla-central"
T = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
GROUP = GroupCounts(total=50, failed=3, exception=1, blocked=2, unresolved=0)


def fired(
    ledger: Ledger,
    job: str,
    state: FireState = FireState.CREATED,
    *,
    follow_group: bool = False,
    project: str = PROJECT,
) -> Claim:
    """A fire of `job` at T that ended in `state`, followed by a watch."""
    held = ledger.claim(
        project, job, T, kind=FireKind.SCHEDULED, replica="replica-a", now=T, lease=LEASE
    )
    assert held is not None
    task_id = None if state is FireState.FAILED else f"task-{job}"
    error = "could not render" if task_id is None else None
    outcome = Outcome(held, state, task_id, None, error, None, WatchSpec(follow_group=follow_group))
    assert ledger.finish_many([outcome], now=T + MINUTE) == [True]
    return held


def watch_of(ledger: Ledger, fire: Claim) -> Watch:
    found = ledger.watch(fire.fire_id)
    assert found is not None
    return found


def step(ledger: Ledger, fire: Claim, phase: WatchPhase, **recorded: Any) -> None:
    """One step of the watcher's on `fire`'s watch as it now stands."""
    assert ledger.advance_watch(watch_of(ledger, fire), phase, now=T + HOUR, **recorded)


def test_a_task_state_change_is_recorded_once_and_the_run_moves_on(
    ledger: Ledger, ledger_url: str
) -> None:
    fire = fired(ledger, "nightly")
    assert watch_of(ledger, fire).run_state is None, "no task started: the fire says created"

    with Ledger.open(ledger_url) as other:
        [seen_by_a], [seen_by_b] = ledger.watches(), other.watches()
        started = Notice("started", {"kind": "x"}, ("slack:#releng",))
        assert ledger.advance_watch(
            seen_by_a, WatchPhase.TASK, now=T + HOUR, notices=[started], task_state="pending"
        )
        # Another replica saw the same first sight: the phase is the same, the state is not.
        assert not other.advance_watch(
            seen_by_b, WatchPhase.TASK, now=T + HOUR, notices=[started], task_state="pending"
        )
    assert [letter.key for letter in ledger.letters()] == ["started"]

    step(ledger, fire, WatchPhase.TASK, task_state="running", run_state=RunState.RUNNING)
    running = watch_of(ledger, fire)
    assert (running.phase, running.task_state, running.run_state) == (
        WatchPhase.TASK,
        "running",
        RunState.RUNNING,
    )
    step(ledger, fire, WatchPhase.DONE, task_state="failed", run_state=RunState.FAILED)
    done = watch_of(ledger, fire)
    assert (done.task_state, done.run_state, done.resolved_at) == (
        "failed",
        RunState.FAILED,
        T + HOUR,
    )


def test_a_watched_groups_counts_are_kept_as_they_change_and_with_its_verdict(
    ledger: Ledger,
) -> None:
    fire = fired(ledger, "nightly", follow_group=True)
    step(ledger, fire, WatchPhase.GROUP, task_state="completed", run_state=RunState.RUNNING)
    assert watch_of(ledger, fire).group is None, "not listed yet"

    listed = GroupCounts(total=50, failed=1, exception=0, blocked=0, unresolved=30)
    step(ledger, fire, WatchPhase.GROUP, group=listed)
    assert watch_of(ledger, fire).group == listed
    assert listed.completed == 19

    step(ledger, fire, WatchPhase.DONE, run_state=RunState.FAILED, group=GROUP)
    done = watch_of(ledger, fire)
    assert (done.phase, done.task_state, done.run_state, done.group) == (
        WatchPhase.DONE,
        "completed",
        RunState.FAILED,
        GROUP,
    )
    assert GROUP.completed == 44


def runs(ledger: Ledger) -> dict[str, Claim]:
    """A fire of each outcome: made no task, and tasks that ended each way or still run."""
    made = {
        "broken": fired(ledger, "broken", FireState.FAILED),
        "built": fired(ledger, "built"),
        "tested": fired(ledger, "tested"),
        "grouped": fired(ledger, "grouped", follow_group=True),
        "linted": fired(ledger, "linted"),
        "slow": fired(ledger, "slow"),
        "waiting": fired(ledger, "waiting"),
        "again": fired(ledger, "again", FireState.ALREADY_FIRED),
    }
    step(ledger, made["broken"], WatchPhase.DONE)  # its failure reported
    step(
        ledger, made["built"], WatchPhase.DONE, task_state="completed", run_state=RunState.COMPLETED
    )
    step(ledger, made["tested"], WatchPhase.DONE, task_state="failed", run_state=RunState.FAILED)
    step(
        ledger,
        made["grouped"],
        WatchPhase.GROUP,
        task_state="completed",
        run_state=RunState.RUNNING,
    )
    step(ledger, made["grouped"], WatchPhase.DONE, run_state=RunState.FAILED, group=GROUP)
    step(
        ledger,
        made["linted"],
        WatchPhase.DONE,
        task_state="exception",
        reason="malformed-payload",
        run_state=RunState.EXCEPTION,
    )
    step(ledger, made["slow"], WatchPhase.TASK, task_state="running", run_state=RunState.RUNNING)
    step(ledger, made["waiting"], WatchPhase.TASK, task_state="pending")
    step(
        ledger, made["again"], WatchPhase.DONE, task_state="completed", run_state=RunState.COMPLETED
    )
    return made


def test_the_history_filters_on_the_fire_state_or_its_runs(ledger: Ledger) -> None:
    runs(ledger)

    def jobs(state: FireState | RunState) -> set[str]:
        return {fire.job for fire in ledger.fires(state=state)}

    # Failed to make its task, or its task or group failed.
    assert jobs(FireState.FAILED) == jobs(RunState.FAILED) == {"broken", "tested", "grouped"}
    assert jobs(RunState.RUNNING) == {"slow"}
    assert jobs(RunState.COMPLETED) == {"built", "again"}
    assert jobs(RunState.EXCEPTION) == {"linted"}
    # The fire's own states: every fire that made its task, however it went.
    assert jobs(FireState.CREATED) == {"built", "tested", "grouped", "linted", "slow", "waiting"}
    assert jobs(FireState.ALREADY_FIRED) == {"again"}
    assert jobs(FireState.SKIPPED) == set()
    # With the other filters and a page.
    assert [f.job for f in ledger.fires(state=RunState.FAILED, job="tested")] == ["tested"]
    assert len(ledger.fires(state=FireState.FAILED, limit=2)) == 2


def test_the_migration_works_out_the_run_state_of_older_watches(
    ledger: Ledger, ledger_url: str
) -> None:
    made = runs(ledger)
    gone = fired(ledger, "gone")
    step(ledger, gone, WatchPhase.DONE, run_state=RunState.EXCEPTION)
    before = {job: watch_of(ledger, fire).run_state for job, fire in made.items()}
    engine = create_ledger_engine(ledger_url)
    try:
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection), "0007")
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
    finally:
        engine.dispose()

    after = {job: watch_of(ledger, fire).run_state for job, fire in made.items()}
    # Everything the older columns say comes back; a watched group's verdict was not kept
    # before (only told), so its completed task stands for it; counts are not known.
    assert after == before | {"grouped": RunState.COMPLETED}
    assert watch_of(ledger, gone).run_state is RunState.EXCEPTION
    assert watch_of(ledger, made["grouped"]).group is None


def test_a_failed_fire_naming_a_task_has_no_run_once_its_failure_is_reported(
    ledger: Ledger,
) -> None:
    """A fire given up without knowing whether its task exists names that task; its watch only
    reports the failure, so its run is nothing the watcher saw: not `exception`, `gone`."""
    held = ledger.claim(
        PROJECT, "nightly", T, kind=FireKind.SCHEDULED, replica="replica-a", now=T, lease=LEASE
    )
    assert held is not None
    error = "given up; whether task task-nightly exists is still not known"
    outcome = Outcome(held, FireState.FAILED, "task-nightly", None, error, None, WatchSpec())
    assert ledger.finish_many([outcome], now=T + MINUTE) == [True]
    step(ledger, held, WatchPhase.DONE)  # the watcher reported the failure

    assert outcome_of(watch_of(ledger, held)) is None
    assert ledger.fires(state=RunState.EXCEPTION) == []


def test_counts_listed_earlier_by_another_replica_never_replace_newer_ones(
    ledger: Ledger, ledger_url: str
) -> None:
    """Two replicas list the same running group; the one whose listing is older writes last:
    the watch moved on since it was read (its counts changed), so nothing is written."""
    fire = fired(ledger, "nightly", follow_group=True)
    step(ledger, fire, WatchPhase.GROUP, task_state="completed", run_state=RunState.RUNNING)
    older = GroupCounts(total=50, failed=0, exception=0, blocked=0, unresolved=40)
    newer = GroupCounts(total=50, failed=1, exception=0, blocked=0, unresolved=10)
    with Ledger.open(ledger_url) as other:
        [seen_by_a], [seen_by_b] = ledger.watches(), other.watches()
        assert other.advance_watch(seen_by_b, WatchPhase.GROUP, now=T + HOUR, group=newer)
        assert not ledger.advance_watch(seen_by_a, WatchPhase.GROUP, now=T + HOUR, group=older)
    assert watch_of(ledger, fire).group == newer
