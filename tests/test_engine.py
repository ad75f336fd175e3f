"""The engine against the Taskcluster emulator and real git repositories: plan -> claim -> fire."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
import taskcluster

from scheduler.actions.spec import MARKER_KEY
from scheduler.config.model import CatchUp, Project
from scheduler.cron import DecisionTask, fires_between, load_cron
from scheduler.cron.slots import FutureSlotError
from scheduler.engine import Engine
from scheduler.ids import decision_task_id
from scheduler.ledger import FireKind, FireState, Ledger
from scheduler.outcomes import FireTooSoonError, SlotResult
from tests.emulator import Emulator
from tests.support.corpus import CORPUS
from tests.support.engine import created_task_ids, fires, run, seed_decision_with_actions, tick
from tests.support.projects import (
    CORPUS_PROJECTS,
    DAY,
    HOURLY,
    corpus_repository,
    make_config,
    own_project,
    project,
)
from tests.support.repos import Repository

# -- a simulated day ---------------------------------------------------------------------------


def test_a_day_of_slots_creates_exactly_the_planned_tasks(
    emulator: Emulator, tmp_path: Path
) -> None:
    projects = [
        project(name, corpus_repository(tmp_path, name, stem), level=3)
        for name, stem in CORPUS_PROJECTS.items()
    ]
    config = make_config(emulator, tmp_path, *projects)
    expected = set()
    for name, stem in CORPUS_PROJECTS.items():
        cron = load_cron((CORPUS / "cron" / f"{stem}.cron.yml").read_text())
        for fire in fires_between(cron, name, DAY, DAY + timedelta(days=1)).fires:
            if isinstance(fire.job.kind, DecisionTask):
                expected.add(decision_task_id(emulator.root_url, name, fire.job_name, fire.slot))
    assert len(expected) >= 10, "the day should exercise several projects and jobs"

    async def day(engine: Engine) -> list[SlotResult]:
        results: list[SlotResult] = []
        slot = DAY
        while slot < DAY + timedelta(days=1):
            emulator.clock.set(slot, frozen=True)
            results.extend(await engine.tick(slot))
            slot += timedelta(minutes=15)
        return results

    results = run(config, emulator, day)
    assert set(created_task_ids(emulator)) == expected
    assert all(result.error is None for result in results)
    created = [f for f in fires(config) if f.state is FireState.CREATED]
    assert len(created) == len(expected)
    for task in emulator.tasks():
        # Fired on time, so created (and JSON-e's now) is the slot itself.
        assert task.definition["created"][14:] in {
            "00:00.000Z",
            "15:00.000Z",
            "30:00.000Z",
            "45:00.000Z",
        }


# -- exactly once ------------------------------------------------------------------------------


def test_rendering_in_worker_processes_gives_the_same_tasks(
    emulator: Emulator, tmp_path: Path
) -> None:
    slot = DAY.replace(hour=2)
    own = own_project(tmp_path)
    in_process = make_config(emulator, tmp_path, own, dry_run=True)
    workers = replace(
        in_process, render_workers=1, ledger_url=f"sqlite:///{tmp_path / 'workers.db'}"
    )
    [here] = tick(in_process, emulator, slot)
    [there] = tick(workers, emulator, slot)
    assert [(f.job, f.task_id) for f in here.fires] == [(f.job, f.task_id) for f in there.fires]
    assert [r.details for r in fires(in_process)] == [r.details for r in fires(workers)]


def test_ticking_a_slot_twice_fires_once(emulator: Emulator, tmp_path: Path) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path))
    slot = DAY.replace(hour=2)
    [first] = tick(config, emulator, slot)
    assert [(f.job, f.state) for f in first.fires] == [("nightly", FireState.CREATED)]
    [again] = tick(config, emulator, slot)
    # Nothing done again: the fire as the ledger records it.
    [nightly] = first.fires
    assert [(f.job, f.state, f.task_id, f.decided_before) for f in again.fires] == [
        ("nightly", FireState.CREATED, nightly.task_id, True)
    ]
    assert again.fired_here == ()
    assert created_task_ids(emulator) == [
        decision_task_id(emulator.root_url, "tc-scheduler", "nightly", slot)
    ]


def test_a_slot_that_has_not_begun_is_neither_fired_skipped_nor_claimed(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path))
    slot = DAY.replace(hour=2)
    emulator.clock.set(slot - timedelta(seconds=1), frozen=True)
    with pytest.raises(FutureSlotError, match="has not begun"):
        run(config, emulator, lambda engine: engine.tick(slot))
    assert created_task_ids(emulator) == []
    assert fires(config) == []
    [on_time] = tick(config, emulator, slot)
    assert [(f.job, f.state) for f in on_time.fires] == [("nightly", FireState.CREATED)]


def test_a_lost_ledger_still_fires_once(emulator: Emulator, tmp_path: Path) -> None:
    """The task id alone keeps Taskcluster from running a slot twice."""
    config = make_config(emulator, tmp_path, own_project(tmp_path))
    slot = DAY.replace(hour=2)
    tick(config, emulator, slot)
    fresh = replace(config, ledger_url=f"sqlite:///{tmp_path / 'other.db'}", replica="replica-2")
    # On time, the same definition renders again: the queue accepts it as the same task.
    [again] = tick(fresh, emulator, slot)
    assert [(f.job, f.state) for f in again.fires] == [("nightly", FireState.CREATED)]
    # Late, the definition differs (created is the firing time): 409, confirmed as fired.
    later = replace(fresh, ledger_url=f"sqlite:///{tmp_path / 'third.db'}", replica="replica-3")
    emulator.clock.set(slot + timedelta(minutes=12), frozen=True)
    [late] = run(later, emulator, lambda engine: engine.tick(slot))
    assert [(f.job, f.state) for f in late.fires] == [("nightly", FireState.ALREADY_FIRED)]
    assert len(created_task_ids(emulator)) == 1


EVERY_SLOT = """\
jobs:
  - name: often
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
"""


def test_queue_faults_still_create_every_task_once(emulator: Emulator, tmp_path: Path) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path, EVERY_SLOT))
    emulator.faults.add(
        "queue.*",
        error_rate=0.2,
        errors=["500", "502", "503", "reset", "500-after", "reset-after"],
    )

    slots = [DAY + timedelta(minutes=15 * n) for n in range(48)]

    async def twelve_hours(engine: Engine) -> None:
        for slot in slots:
            emulator.clock.set(slot, frozen=True)
            await engine.tick(slot)

    run(config, emulator, twelve_hours)
    assert len(emulator.faults.injected) >= 5, "the test must inject faults to mean anything"
    expected = sorted(
        decision_task_id(emulator.root_url, "tc-scheduler", "often", slot) for slot in slots
    )
    assert created_task_ids(emulator) == expected
    states = {f.state for f in fires(config)}
    assert states <= {FireState.CREATED, FireState.ALREADY_FIRED}


# -- isolation ---------------------------------------------------------------------------------


def test_failures_are_recorded_and_do_not_stop_other_work(
    emulator: Emulator, tmp_path: Path
) -> None:
    good = own_project(tmp_path, HOURLY, name="good")
    no_tasks = project(
        "no-tasks",
        Repository(
            tmp_path / "repos" / "no-tasks",
            {".cron.yml": HOURLY, ".taskcluster.yml": "version: 1\ntasks: []\n"},
        ),
    )
    action_cron = HOURLY + (
        "  - name: rebuild\n"
        "    job: {type: trigger-action, action-name: rebuild-cached-tasks}\n"
        "    when: [{minute: 0}]\n"
    )
    no_action = own_project(tmp_path, action_cron, name="no-action")
    unreachable = Project(name="gone", repository="file:///nonexistent/repo", trust_domain="tcs")
    config = make_config(emulator, tmp_path, good, no_tasks, no_action, unreachable)
    results = {r.project: r for r in tick(config, emulator, DAY)}

    assert [(f.job, f.state) for f in results["good"].fires] == [("hourly", FireState.CREATED)]
    [failed] = results["no-tasks"].fires
    assert failed.state is FireState.FAILED
    assert "rendered 0 tasks" in (failed.error or "")
    by_job = {f.job: f for f in results["no-action"].fires}
    assert by_job["hourly"].state is FireState.CREATED
    assert by_job["rebuild"].state is FireState.FAILED
    assert "no decision task is indexed" in (by_job["rebuild"].error or "")
    assert results["gone"].error is not None
    assert results["gone"].fires == ()
    recorded = {(f.project, f.job): f.state for f in fires(config)}
    assert recorded[("no-tasks", "hourly")] is FireState.FAILED
    assert recorded[("no-action", "rebuild")] is FireState.FAILED


@pytest.mark.parametrize("reachable", [True, False], ids=["a-project-reachable", "none-reachable"])
def test_a_tick_whose_ledger_reads_fail_fires_nothing_and_raises(
    emulator: Emulator, tmp_path: Path, reachable: bool
) -> None:
    """The ledger is read while the heads are: its failure still stops the tick, even when no
    project's head could be read (none waited for the reads)."""
    gone = Project(name="gone", repository="file:///nonexistent/repo", trust_domain="tcs")
    projects = (own_project(tmp_path, HOURLY, name="good"), gone) if reachable else (gone,)
    config = make_config(emulator, tmp_path, *projects)
    tick(config, emulator, DAY)  # the ledger made
    before = created_task_ids(emulator)
    with sqlite3.connect(tmp_path / "ledger.db") as broken:
        broken.execute("DROP TABLE pauses")
    broken.close()

    with pytest.raises(sqlalchemy.exc.OperationalError, match="no such table: pauses"):
        tick(config, emulator, DAY + timedelta(hours=1))

    assert created_task_ids(emulator) == before


def test_a_project_without_cron_file_has_no_jobs(emulator: Emulator, tmp_path: Path) -> None:
    bare = project("bare", Repository(tmp_path / "repos" / "bare", {"README": "nothing\n"}))
    config = make_config(emulator, tmp_path, bare)
    [result] = tick(config, emulator, DAY)
    assert result.error is None
    assert result.fires == ()


# -- trigger-action ------------------------------------------------------------------------------


def test_trigger_action_fires_the_hook_with_the_rendered_payload(
    emulator: Emulator, tmp_path: Path
) -> None:
    cron = """\
jobs:
  - name: add-jobs
    job:
      type: trigger-action
      action-name: add-new-jobs
      include-cron-input: true
      extra-input: {tasks: [build-linux64], times: 2}
    when: [{hour: 3, minute: 0}]
"""
    repository = Repository(tmp_path / "repos" / "fenix", {".cron.yml": cron})
    config = make_config(emulator, tmp_path, project("fenix", repository, trust_domain="mobile"))
    emulator.clock.set(DAY.replace(hour=2, minute=50), frozen=True)
    route = f"index.mobile.v2.fenix.revision.{repository.head}.taskgraph.decision"
    decision = seed_decision_with_actions(emulator, route)
    queue = taskcluster.Queue(emulator.options())
    hooks = taskcluster.Hooks(emulator.options())

    [result] = tick(config, emulator, DAY.replace(hour=3))

    [fired] = result.fires
    assert fired.state is FireState.CREATED, fired.error
    task = queue.task(fired.task_id)
    # The input carries the fire's marker too (the action's schema allows more properties).
    marker = task["payload"]["user"]["input"].pop(MARKER_KEY)
    assert marker.startswith("tcs:20261201T0300Z:")
    assert task["payload"]["user"] == {
        "input": {"tasks": ["build-linux64"], "times": 2},
        "taskGroupId": decision,
        "taskId": None,
    }
    [last] = hooks.listLastFires("project-mobile", "in-tree-action-3-generic/93267a5f84")[
        "lastFires"
    ]
    assert last["taskId"] == fired.task_id


# -- catch-up ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "fired_hours", "skipped_hours"),
    [
        ("latest", [3], [1, 2]),
        ("all", [1, 2, 3], []),
        ("none", [], [1, 2, 3]),
    ],
)
def test_catch_up_after_an_outage(
    emulator: Emulator,
    tmp_path: Path,
    policy: str,
    fired_hours: list[int],
    skipped_hours: list[int],
) -> None:
    own = own_project(tmp_path, HOURLY)
    own = replace(own, catch_up=CatchUp(policy=policy))  # type: ignore[arg-type]
    config = make_config(emulator, tmp_path, own)
    tick(config, emulator, DAY)  # the service ran at midnight, then stopped until 04:07
    emulator.clock.set(DAY.replace(hour=4, minute=7), frozen=True)
    [result] = run(config, emulator, lambda engine: engine.tick(emulator.clock.now()))

    assert sorted(f.slot.hour for f in result.fires if f.kind is FireKind.CATCH_UP) == fired_hours
    assert [f.slot.hour for f in result.fires if f.kind is FireKind.SCHEDULED] == [4]
    assert sorted(f.slot.hour for f in result.skipped) == skipped_hours
    recorded = {f.slot.hour: f for f in fires(config)}
    for hour in skipped_hours:
        assert recorded[hour].state is FireState.SKIPPED
        assert recorded[hour].error
    expected = [decision_task_id(emulator.root_url, "tc-scheduler", "hourly", DAY)]
    expected += [
        decision_task_id(emulator.root_url, "tc-scheduler", "hourly", DAY.replace(hour=hour))
        for hour in [*fired_hours, 4]
    ]
    assert created_task_ids(emulator) == sorted(expected)


# -- dry run and manual fires --------------------------------------------------------------------


def test_dry_run_records_the_rendered_task_and_creates_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path), dry_run=True)
    slot = DAY.replace(hour=2)
    [result] = tick(config, emulator, slot)
    [fired] = result.fires
    assert fired.state is FireState.DRY_RUN
    assert emulator.tasks() == []
    [record] = fires(config)
    assert record.details["task"]["metadata"]["name"]
    assert record.task_id == decision_task_id(emulator.root_url, "tc-scheduler", "nightly", slot)


def test_manual_fires_get_their_own_ids(emulator: Emulator, tmp_path: Path) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path))
    emulator.clock.set(DAY.replace(hour=13, minute=7), frozen=True)

    async def twice(engine: Engine) -> list[Any]:
        first = await engine.fire_now("tc-scheduler", "nightly")
        emulator.clock.advance(config.manual_fire_interval)
        second = await engine.fire_now("tc-scheduler", "nightly", {"reason": "retry"})
        return [first, second]

    first, second = run(config, emulator, twice)
    assert first.state is second.state is FireState.CREATED
    assert first.task_id != second.task_id
    assert first.kind is FireKind.MANUAL
    scheduled_id = decision_task_id(
        emulator.root_url, "tc-scheduler", "nightly", DAY.replace(hour=13)
    )
    assert scheduled_id not in {first.task_id, second.task_id}
    assert created_task_ids(emulator) == sorted([first.task_id, second.task_id])


def test_manual_fires_of_one_job_are_kept_apart(emulator: Emulator, tmp_path: Path) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path))
    emulator.clock.set(DAY.replace(hour=13, minute=7), frozen=True)

    async def double_click(engine: Engine) -> str:
        await engine.fire_now("tc-scheduler", "nightly")
        emulator.clock.advance(config.manual_fire_interval - timedelta(seconds=1))
        with pytest.raises(FireTooSoonError) as raised:
            await engine.fire_now("tc-scheduler", "nightly")
        assert raised.value.retry_after == timedelta(seconds=1)
        other = await engine.fire_now("tc-scheduler", "integration")  # another job: no wait
        assert other.state is FireState.CREATED
        return str(raised.value)

    message = run(config, emulator, double_click)
    assert "fired by hand at 13:07:00 UTC" in message
    assert "at least 1m apart: try again in 2 s" in message
    assert len(created_task_ids(emulator)) == 2


def test_a_claim_left_by_a_dead_replica_is_taken_over(emulator: Emulator, tmp_path: Path) -> None:
    config = make_config(emulator, tmp_path, own_project(tmp_path, HOURLY))
    slot = DAY.replace(hour=5)
    tick(config, emulator, slot - timedelta(hours=1))
    ledger = Ledger.open(config.ledger_url)
    try:
        # Another replica claimed 05:00 and died before finishing it.
        dead = ledger.claim(
            "tc-scheduler",
            "hourly",
            slot,
            kind=FireKind.SCHEDULED,
            replica="dead-replica",
            now=slot,
            lease=timedelta(minutes=10),
        )
        assert dead is not None
    finally:
        ledger.close()
    later = slot + timedelta(minutes=15)
    emulator.clock.set(later + timedelta(minutes=2), frozen=True)
    [result] = run(config, emulator, lambda engine: engine.tick(later))

    taken_over = [f for f in result.fires if f.slot == slot]
    # Taken over as what it was: the scheduled fire of 05:00, at its second attempt.
    assert [(f.state, f.kind) for f in taken_over] == [(FireState.CREATED, FireKind.SCHEDULED)]
    record = next(f for f in fires(config) if f.slot == slot)
    assert (record.state, record.attempt, record.replica) == (FireState.CREATED, 2, "replica-1")
    assert decision_task_id(emulator.root_url, "tc-scheduler", "hourly", slot) in created_task_ids(
        emulator
    )
