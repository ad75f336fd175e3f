"""A tick killed with SIGKILL at random points, then run again: no task twice, none missed."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.cron import format_slot, slot_of
from scheduler.ids import decision_task_id
from scheduler.ledger import FireState, Ledger
from tests.conftest import REPOSITORY_ROLES, REPOSITORY_ROOT, taskcluster_environment
from tests.emulator import Emulator
from tests.repos import Repository

JOBS = [f"job-{n}" for n in range(5)]
CRON = "jobs:\n" + "".join(
    f"  - name: {name}\n"
    f"    job: {{type: decision-task, treeherder-symbol: J{n}, target-tasks-method: j{n}}}\n"
    "    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]\n"
    for n, name in enumerate(JOBS)
)
SEEDS = range(20)
LEASE = timedelta(seconds=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """One emulator, repository and ledger for all seeds; each seed ticks its own slot."""
    tmp_path = tmp_path_factory.mktemp("crash")
    repository = Repository(
        tmp_path / "repo",
        {".cron.yml": CRON, ".taskcluster.yml": (REPOSITORY_ROOT / ".taskcluster.yml").read_text()},
    )
    config = tmp_path / "service.yml"
    config.write_text(
        "claim-lease: 1s\n"
        "projects:\n"
        "  - name: demo\n"
        "    repository: https://github.com/example/demo\n"
        f"    fetch-from: {repository.url}\n"
        "    trust-domain: tcs\n"
    )
    with Emulator(roles=REPOSITORY_ROLES) as emulator:
        env = {**os.environ, **taskcluster_environment(emulator)}
        # Past slots, oldest first, one per seed: each tick follows the one before it.
        first = slot_of(datetime.now(UTC)) - timedelta(minutes=15 * len(SEEDS))
        yield emulator, config, env, first
        emulator.assert_conforming()


def tick(config: Path, env: dict[str, str], slot: datetime) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scheduler",
            "tick",
            "--at",
            format_slot(slot),
            "--config",
            str(config),
        ],
        cwd=REPOSITORY_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_leases_to_lapse(ledger_url: str) -> None:
    """A killed process's claims hold until their lease ends; a restart must come after."""
    ledger = Ledger.open(ledger_url)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = datetime.now(UTC)
            held = [
                fire
                for fire in ledger.fires(project="demo", state=FireState.CLAIMED)
                if fire.lease_until and fire.lease_until > now
            ]
            if not held:
                return
            time.sleep(0.05)
        raise AssertionError(f"claims still held: {held}")
    finally:
        ledger.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_mid_tick_then_restart(world, seed: int) -> None:
    emulator, config, env, first = world
    slot = first + timedelta(minutes=15 * seed)
    ledger_url = f"sqlite:///{config.parent / '.tc-scheduler' / 'ledger.db'}"
    chooser = random.Random(seed)
    # Kill after a random number of log lines (0: before the tick says anything), plus a
    # random few milliseconds, so the kill lands before, between and inside fires.
    lines_before_kill = chooser.randrange(0, len(JOBS) + 2)
    extra_delay = chooser.uniform(0, 0.03)

    victim = tick(config, env, slot)
    assert victim.stderr is not None
    for _ in range(lines_before_kill):
        if not victim.stderr.readline():
            break
    time.sleep(extra_delay)
    victim.kill()
    victim.wait(timeout=30)

    wait_for_leases_to_lapse(ledger_url)
    survivor = tick(config, env, slot)
    _, errors = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, errors

    expected = {decision_task_id(emulator.root_url, "demo", job, slot) for job in JOBS}
    created = {task.task_id for task in emulator.tasks()}
    assert expected <= created, f"missed: {expected - created}"
    for_slot = [json.loads(line) for line in errors.splitlines() if '"fired"' in line]
    assert all(line["slot"] == format_slot(slot) for line in for_slot)
    ledger = Ledger.open(ledger_url)
    try:
        states = {
            fire.job: fire.state for fire in ledger.fires(project="demo") if fire.slot == slot
        }
    finally:
        ledger.close()
    assert set(states) == set(JOBS)
    assert set(states.values()) <= {FireState.CREATED, FireState.ALREADY_FIRED}
    # No duplicates: the queue holds one task per (job, slot), under its derived id.
    assert len(emulator.tasks()) == len(JOBS) * (seed + 1)
