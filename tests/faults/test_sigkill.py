"""SIGKILL at random points of a tick: decision tasks and trigger actions, each exactly once.

Slot after slot, `tc-scheduler tick` runs on the emulator's clock, a few seconds into its slot,
and is killed (every tick in the quick form, half of them in the full one) at a random, seeded
moment: before it says anything, or a few milliseconds after one of its log lines, so kills
land before, between and inside fires and their ledger writes. The next slot's tick (catch-up
policy `all`) is the rerun; a last tick, never killed, ends the trial. Then Taskcluster must
hold every (job, slot) once, and the ledger say so.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.cron import format_slot, slot_of
from scheduler.ledger import FireState
from tests.emulator import Emulator
from tests.faults.harness import (
    Cli,
    Figures,
    clock_at,
    full_size,
    ledger_fires,
    sized,
    sqlite_url,
)
from tests.faults.worlds import (
    QUARTER,
    Tally,
    action_cron,
    decision_repository,
    every_fire,
    project_entry,
    seed_actions,
    slots_from,
    tally_actions,
    tally_decision_tasks,
    write_config,
)
from tests.support.repos import Repository

SEED = 14
# In the full form, the share of ticks killed; the quick form kills each of its few.
KILL_RATE = 0.5


def killed_ticks(emulator: Emulator, config: Path, slots: list[datetime], jobs: int) -> int:
    """Tick each slot, killing the tick at a random moment (in the full form, half of them, as
    crashes come now and then); then tick the slot after the last, unkilled.

    A kill comes anywhere in the tick: before its first log line, or just after one of the
    lines a tick of its backlog writes (the slots since the last tick that ran to its end, with
    `jobs` fires each), so it lands as often late in a catch-up as early. Returns how many
    kills found the process still running.
    """
    chooser = random.Random(SEED)
    kills = 0
    backlog = 0
    for slot in slots:
        backlog += 1
        env = clock_at(emulator, slot + timedelta(seconds=chooser.uniform(5, 60)))
        tick = Cli(["tick", "--at", format_slot(slot), "--config", str(config)], env)
        if full_size() and chooser.random() >= KILL_RATE:
            tick.finish()
            backlog = 0
            continue
        after = chooser.randrange(0, 2 + jobs * backlog + 1)
        if after:
            tick.wait_for(lambda cli, after=after: len(cli.events) >= after)
            time.sleep(chooser.uniform(0, 0.03))
        else:  # anywhere from start-up on
            time.sleep(chooser.uniform(0, 2.0))
        killed = tick.kill()
        kills += killed
        if not killed:
            backlog = 0
    last = slots[-1] + QUARTER
    env = clock_at(emulator, last + timedelta(seconds=30))
    survivor = Cli(["tick", "--at", format_slot(last), "--config", str(config)], env)
    assert survivor.finish() == 0, survivor.text
    return kills


def trial_slots(count: int) -> list[datetime]:
    """`count` past slots, followed by the one the last tick evaluates, which has begun too."""
    first = slot_of(datetime.now(UTC)) - QUARTER * (count + 2)
    return slots_from(first, count)


def figures_of(scenario: str, tally: Tally, kills: int, slots: int, ledger_url: str) -> Figures:
    # Fires a killed tick had made without recording them, found made by a later one.
    found = sum(1 for fire in ledger_fires(ledger_url) if fire.state is FireState.ALREADY_FIRED)
    return tally.figures(scenario, slots=slots, sigkills=kills, found_made=found, seed=SEED)


def run_trial(
    emulator: Emulator,
    tmp_path: Path,
    repository: Repository,
    jobs: list[str],
    slots: list[datetime],
    tally: Callable[[list[datetime], str], Tally],
    scenario: str,
) -> None:
    config = write_config(
        tmp_path / "service.yml",
        f"ledger: {sqlite_url(tmp_path / 'ledger.db')}\ncatch-up: {{policy: all}}\n",
        project_entry("demo", repository),
    )
    kills = killed_ticks(emulator, config, slots, len(jobs))
    every = [*slots, slots[-1] + QUARTER]
    ledger_url = sqlite_url(tmp_path / "ledger.db")
    counted = tally(every, ledger_url)
    figures_of(scenario, counted, kills, len(every), ledger_url)
    assert kills, "no kill landed: the trial proved nothing"
    assert counted.exact, counted.explain()


def test_sigkill_mid_tick_decision_tasks(emulator: Emulator, tmp_path: Path) -> None:
    jobs = [f"job-{n}" for n in range(3)]
    repository = decision_repository(tmp_path / "repo", jobs)
    run_trial(
        emulator,
        tmp_path,
        repository,
        jobs,
        trial_slots(sized(3, 150)),
        lambda slots, ledger_url: tally_decision_tasks(
            emulator, every_fire(["demo"], jobs, slots), ledger_url=ledger_url
        ),
        "sigkill mid-tick, decision tasks",
    )


def test_sigkill_mid_tick_trigger_actions(emulator: Emulator, tmp_path: Path) -> None:
    jobs = [f"act-{n}" for n in range(2)]
    repository = Repository(tmp_path / "repo", {".cron.yml": action_cron(jobs)})
    slots = trial_slots(sized(3, 150))
    emulator.clock.set(slots[0], frozen=False)
    seed_actions(emulator, "demo", repository)
    run_trial(
        emulator,
        tmp_path,
        repository,
        jobs,
        slots,
        lambda slots, ledger_url: tally_actions(emulator, "demo", jobs, slots, ledger_url),
        "sigkill mid-tick, trigger actions",
    )
