"""The service's slot loop on a moved clock: each slot prepared a minute ahead, fired at its
boundary and not before, from the heads and pauses of the boundary; a replica that prepared and
died leaves nothing that holds another back."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from scheduler.config.model import ApiSettings
from scheduler.cron import format_slot
from scheduler.ids import decision_task_id
from scheduler.ledger import Act, FireState, Ledger
from scheduler.service import run
from scheduler.slot_loop import PREPARE_LEAD
from tests.emulator import Emulator
from tests.support.emulated import taskcluster_environment
from tests.support.projects import OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository
from tests.support.service import Service
from tests.support.waiting import HANG_GUARD, until_while_running, wait_until

BOUNDARY = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EVERY_SLOT = """\
jobs:
  - name: often
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
"""
FILES = {".cron.yml": EVERY_SLOT, ".taskcluster.yml": OWN_TEMPLATE}


def _logged(lines: list[MutableMapping[str, Any]], event: str, slot: datetime) -> int:
    return sum(
        1 for line in lines if line.get("event") == event and line.get("slot") == format_slot(slot)
    )


def _received_creates(emulator: Emulator) -> dict[str, datetime]:
    return {
        params["taskId"]: at
        for called, params, at in list(emulator.received)
        if called == "queue.createTask"
    }


def test_a_slot_prepared_ahead_fires_at_its_boundary_with_the_heads_and_pauses_then(
    emulator: Emulator, tmp_path: Path
) -> None:
    repositories = {
        name: Repository(tmp_path / name, FILES) for name in ("steady", "pushed", "paused")
    }
    config = make_config(
        emulator,
        tmp_path,
        *(project(name, repository) for name, repository in repositories.items()),
        api=ApiSettings(host="127.0.0.1", port=0),
    )
    ids = {
        name: decision_task_id(config.root_url, name, "often", BOUNDARY) for name in repositories
    }
    emulator.clock.set(BOUNDARY - PREPARE_LEAD - timedelta(minutes=1))  # running from there
    pushed: list[str] = []

    async def scenario() -> list[MutableMapping[str, Any]]:
        stop = asyncio.Event()
        with capture_logs() as lines:
            running = asyncio.create_task(run(config, clock=emulator.clock.now, stop=stop))
            before = BOUNDARY - timedelta(minutes=15)
            await until_while_running(
                lambda: _logged(lines, "slot evaluated", before) == 3, running
            )
            # The clock moved to the prepare: heads read and tasks rendered, nothing created.
            emulator.clock.set(BOUNDARY - PREPARE_LEAD)
            await until_while_running(
                lambda: _logged(lines, "slot prepared", BOUNDARY) == 1, running
            )
            assert not set(ids.values()) & set(_received_creates(emulator))
            with Ledger.open(config.ledger_url) as ledger:
                assert [f for f in ledger.fires() if f.slot == BOUNDARY] == []
                # After the prepare: a push, and a pause.
                pushed.append(repositories["pushed"].commit({"NEWS": "after the prepare\n"}))
                ledger.pause(
                    "paused",
                    "often",
                    reason="tree closed",
                    until=None,
                    act=Act("tests", "pause", "paused/often", None),
                    now=emulator.clock.now(),
                )
            emulator.clock.set(BOUNDARY - timedelta(seconds=0.5))
            await until_while_running(
                lambda: _logged(lines, "slot evaluated", BOUNDARY) == 3, running
            )
            stop.set()
            await asyncio.wait_for(running, HANG_GUARD)
        return lines

    asyncio.run(scenario())

    received = _received_creates(emulator)
    assert ids["steady"] in received
    assert ids["pushed"] in received
    assert ids["paused"] not in received
    assert all(received[ids[name]] >= BOUNDARY for name in ("steady", "pushed"))
    tasks = {task.task_id: task for task in emulator.tasks()}
    assert pushed[0] in str(tasks[ids["pushed"]].definition)
    with Ledger.open(config.ledger_url) as ledger:
        states = {f.project: f.state for f in ledger.fires() if f.slot == BOUNDARY}
    assert states == {
        "steady": FireState.CREATED,
        "pushed": FireState.CREATED,
        "paused": FireState.SKIPPED,
    }


def test_a_replica_killed_after_preparing_leaves_nothing_that_holds_another_back(
    emulator: Emulator, tmp_path: Path
) -> None:
    repository = Repository(tmp_path / "demo", FILES)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"

    def config_file(replica: str) -> Path:
        path = tmp_path / f"{replica}.yml"
        path.write_text(
            f"replica: {replica}\n"
            f"ledger: {ledger_url}\n"
            f"state-dir: {tmp_path / replica}\n"
            "api: {listen: 'off'}\n"
            "projects:\n"
            "  - name: demo\n"
            "    repository: https://github.com/example/demo\n"
            f"    fetch-from: {repository.url}\n"
            "    trust-domain: tcs\n"
        )
        return path

    def start(replica: str) -> Service:
        env = {**os.environ, **taskcluster_environment(emulator)}
        command = [sys.executable, "-m", "scheduler", "run", "--config", str(config_file(replica))]
        return Service(command, env)

    def logged(service: Service, event: str) -> bool:
        return any(line.get("event") == event for line in service.lines)

    # A starts just before the prepare, prepares the slot, and is killed before the boundary.
    emulator.clock.set(BOUNDARY - PREPARE_LEAD - timedelta(seconds=2))
    first = start("first")
    try:
        assert wait_until(
            lambda: logged(first, "slot prepared") or first.process.poll() is not None
        )
        assert logged(first, "slot prepared"), first.raw
    finally:
        first.process.kill()
        first.process.wait(timeout=HANG_GUARD)
    with Ledger.open(ledger_url) as ledger:
        assert [f for f in ledger.fires() if f.slot == BOUNDARY] == []

    # B comes up just before the boundary and fires the slot at once: nothing of A's in its way.
    emulator.clock.set(BOUNDARY - timedelta(seconds=3))
    second = start("second")
    try:
        assert wait_until(
            lambda: (
                second.process.poll() is not None
                or any(
                    line.get("event") == "fired" and line.get("slot") == format_slot(BOUNDARY)
                    for line in second.lines
                )
            )
        ), second.raw
    finally:
        assert second.stop() == 0
    with Ledger.open(ledger_url) as ledger:
        [fire] = [f for f in ledger.fires() if f.slot == BOUNDARY]
    assert (fire.state, fire.replica) == (FireState.CREATED, "second")
