"""Lost replies and 5xx on the queue and hooks routes: every fire still ends made exactly once.

The emulator injects the faults (an outcome ending in `-after` lets the call take effect and
loses its reply). The engine runs in this process on the emulator's frozen clock: a tick per
slot, and between ticks the recover rounds the service runs, each at the moment an unfinished
fire is due again, so that retries and the settling of unknown outcomes take no real time.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.config.model import CatchUp, Config
from scheduler.engine import Engine
from scheduler.ledger import FireState
from scheduler.service import open_engine
from tests.emulator import Emulator
from tests.faults.harness import ledger_fires, sized
from tests.faults.worlds import (
    QUARTER,
    Tally,
    action_cron,
    decision_repository,
    every_fire,
    seed_actions,
    slots_from,
    tally_actions,
    tally_decision_tasks,
)
from tests.support.projects import make_config, project
from tests.support.repos import Repository

DAY = datetime(2026, 12, 1, tzinfo=UTC)
LOST = ["500-after", "502-after", "503-after", "reset-after"]
EVERY_KIND = ["500", "502", "503", "reset", *LOST]
# A recover round never runs more often than this (the service runs one every 20-30 s).
ROUND = timedelta(seconds=20)
MAX_ROUNDS = 20_000


async def recover_rounds(engine: Engine, emulator: Emulator, until: datetime) -> int:
    """The recover rounds the service would run before `until`: one whenever an unfinished
    fire is due again. Returns how many ran."""
    rounds = 0
    while rounds < MAX_ROUNDS:
        due = await engine.ledger.run(lambda ledger: ledger.open_fires(due_at=until))
        times = [fire.lease_until for fire in due if fire.lease_until is not None]
        if not times:
            return rounds
        moment = max(min(times), emulator.clock.now() + ROUND)
        if moment >= until:
            return rounds
        emulator.clock.set(moment, frozen=True)
        await engine.recover()
        rounds += 1
    raise AssertionError(f"hang guard: still recovering after {MAX_ROUNDS} rounds")


def drive(
    config: Config,
    emulator: Emulator,
    slots: list[datetime],
    *,
    recover: bool = True,
    after_tick: list[list[FireState | None]] | None = None,
) -> int:
    """Tick each slot (20 s into it), then recover until the next; after the last, recover
    until nothing is left within max-lateness. `after_tick` gets each tick's fire states.
    Returns the number of recover rounds."""

    async def main() -> int:
        rounds = 0
        async with open_engine(config, clock=emulator.clock.now) as engine:
            for slot in slots:
                emulator.clock.set(slot + timedelta(seconds=20), frozen=True)
                results = await engine.tick(slot)
                if after_tick is not None:
                    after_tick.append([fire.state for r in results for fire in r.fires])
                if recover:
                    rounds += await recover_rounds(engine, emulator, slot + QUARTER)
            if recover:
                lateness = max(p.catch_up.max_lateness for p in config.projects)
                rounds += await recover_rounds(engine, emulator, slots[-1] + lateness)
        return rounds

    return asyncio.run(main())


def figures(scenario: str, tally: Tally, emulator: Emulator, **notes: object) -> None:
    tally.figures(scenario, faults=len(emulator.faults.injected), **notes)


def test_lost_trigger_replies_fire_each_action_once(emulator: Emulator, tmp_path: Path) -> None:
    """Acceptance: 45 slots at 20 % lost replies on hooks.triggerHook, 0 doubles, 0 misses."""
    jobs = ["act-0", "act-1"]
    repository = Repository(tmp_path / "repo", {".cron.yml": action_cron(jobs)})
    config = make_config(emulator, tmp_path, project("demo", repository))
    slots = slots_from(DAY, sized(12, 45))
    emulator.clock.set(DAY - timedelta(minutes=5), frozen=True)
    seed_actions(emulator, "demo", repository)
    emulator.faults.add("hooks.triggerHook", error_rate=0.2, errors=LOST)

    rounds = drive(config, emulator, slots)

    tally = tally_actions(emulator, "demo", jobs, slots, config.ledger_url)
    lost = sum(1 for route, _ in emulator.faults.injected if route == "hooks.triggerHook")
    figures("lost triggerHook replies at 20 %", tally, emulator, lost=lost, rounds=rounds)
    assert lost, "no reply was lost: the trial proved nothing"
    assert tally.exact, tally.explain()


def test_a_lost_create_task_reply_ends_created_never_failed(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Half of createTask's replies are lost (the client's own retries too, at times): each
    tick's fires end created or already-fired at once, and never failed."""
    jobs = [f"job-{n}" for n in range(4)]
    repository = decision_repository(tmp_path / "repo", jobs)
    config = make_config(emulator, tmp_path, project("demo", repository))
    slots = slots_from(DAY, sized(6, 24))
    emulator.faults.add("queue.createTask", error_rate=0.5, errors=LOST)
    states: list[list[FireState | None]] = []

    drive(config, emulator, slots, recover=False, after_tick=states)

    tally = tally_decision_tasks(
        emulator, every_fire(["demo"], jobs, slots), ledger_url=config.ledger_url
    )
    figures("lost createTask replies at 50 %", tally, emulator)
    assert emulator.faults.injected, "no reply was lost: the trial proved nothing"
    assert all(set(tick) <= {FireState.CREATED, FireState.ALREADY_FIRED} for tick in states), [
        (fire.job, fire.slot, fire.state, fire.error)
        for fire in ledger_fires(config.ledger_url)
        if fire.state not in (FireState.CREATED, FireState.ALREADY_FIRED)
    ]
    assert tally.exact, tally.explain()


def test_sixty_percent_faults_still_create_every_decision_task_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Acceptance: at 60 % faults (5xx, resets, lost replies) on the queue and hooks, every
    fire within max-lateness ends created exactly once, after retries where needed."""
    jobs = [f"job-{n}" for n in range(4)]
    repository = decision_repository(tmp_path / "repo", jobs)
    demo = replace(project("demo", repository), catch_up=CatchUp(max_lateness=timedelta(hours=1)))
    config = make_config(emulator, tmp_path, demo)
    slots = slots_from(DAY, sized(6, 40))
    for routes in ("queue.*", "hooks.*"):
        emulator.faults.add(routes, error_rate=0.6, errors=EVERY_KIND)

    rounds = drive(config, emulator, slots)

    tally = tally_decision_tasks(
        emulator, every_fire(["demo"], jobs, slots), ledger_url=config.ledger_url
    )
    retried = sum(1 for fire in ledger_fires(config.ledger_url) if fire.attempt > 1)
    figures("60 % faults, decision tasks", tally, emulator, retried=retried, rounds=rounds)
    assert tally.exact, tally.explain()


def test_sixty_percent_faults_still_trigger_every_action_once(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The same for trigger actions: the queue (the decision task, its actions.json, the
    tasks found) and the hooks (triggers and their last fires) fail 60 % of the time; no
    action is triggered twice and none is lost within max-lateness. Each failed call costs
    the client's backoff in real time, hence fewer slots."""
    jobs = ["act-0", "act-1"]
    repository = Repository(tmp_path / "repo", {".cron.yml": action_cron(jobs)})
    demo = replace(project("demo", repository), catch_up=CatchUp(max_lateness=timedelta(hours=1)))
    config = make_config(emulator, tmp_path, demo)
    slots = slots_from(DAY, sized(3, 40))
    emulator.clock.set(DAY - timedelta(minutes=5), frozen=True)
    seed_actions(emulator, "demo", repository)
    for routes in ("queue.*", "hooks.*"):
        emulator.faults.add(routes, error_rate=0.6, errors=EVERY_KIND)

    rounds = drive(config, emulator, slots)

    tally = tally_actions(emulator, "demo", jobs, slots, config.ledger_url)
    retried = sum(1 for fire in ledger_fires(config.ledger_url) if fire.attempt > 1)
    figures("60 % faults, trigger actions", tally, emulator, retried=retried, rounds=rounds)
    assert tally.exact, tally.explain()
