"""Driving the engine in tests: run it on the emulator's clock, tick a slot, read what it fired,
and a decision task with the corpus actions.json for trigger-action jobs to find."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import slugid
import taskcluster

from scheduler.config.model import Config
from scheduler.engine import Engine
from scheduler.ledger import Ledger
from scheduler.outcomes import SlotResult
from scheduler.service import open_engine
from tests.emulator import Emulator
from tests.support.corpus import CORPUS
from tests.support.emulated import task_definition
from tests.support.projects import DAY, make_config, project
from tests.support.repos import Repository

T = TypeVar("T")
ACTIONS_JSON = json.loads(
    (CORPUS / "taskcluster-schemas/examples/fxci-config-build-decision-actions.json").read_text()
)
# The hook of the corpus actions.json's `add-new-jobs` action, and a job triggering it hourly.
HOOK = ("project-mobile", "in-tree-action-3-generic/93267a5f84")
ACTION_CRON = """\
jobs:
  - name: add-jobs
    job:
      type: trigger-action
      action-name: add-new-jobs
      extra-input: {tasks: [build-linux64], times: 1}
    when: [{minute: 0}]
"""


def run(config: Config, emulator: Emulator, work: Callable[[Engine], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_engine(config, clock=emulator.clock.now) as engine:
            return await work(engine)

    return asyncio.run(main())


def tick(config: Config, emulator: Emulator, slot: datetime) -> list[SlotResult]:
    emulator.clock.set(slot, frozen=True)
    return run(config, emulator, lambda engine: engine.tick(slot))


def created_task_ids(emulator: Emulator) -> list[str]:
    return sorted(task.task_id for task in emulator.tasks())


def fires(config: Config) -> list[Any]:
    ledger = Ledger.open(config.ledger_url)
    try:
        return ledger.fires()
    finally:
        ledger.close()


def seed_decision_with_actions(
    emulator: Emulator,
    route: str,
    *,
    scopes: tuple[str, ...] = ("in-tree:hook-action:project-mobile/in-tree-action-3-*",),
) -> str:
    """A completed decision task indexed at `route`, with the corpus actions.json, and the
    hook of its `add-new-jobs` action, allowed to create tasks; its task id. The decision task
    holds `scopes`: by default it may name the project's level-3 in-tree action hooks, as
    Firefox CI's push roles grant."""
    decision: str = slugid.nice()
    queue = taskcluster.Queue(emulator.options())
    definition = task_definition(
        emulator.clock.now(),
        routes=[route],
        scopes=list(scopes),
    )
    queue.createTask(decision, definition)
    emulator.add_artifact(decision, "public/actions.json", ACTIONS_JSON)
    emulator.resolve_task(decision, "completed")
    hook_task = task_definition(emulator.clock.now())
    hook_task["created"] = {"$fromNow": "0 seconds"}
    hook_task["deadline"] = {"$fromNow": "1 hour"}
    hook_task["payload"] = {"user": {"$eval": "payload.user"}}
    taskcluster.Hooks(emulator.options()).createHook(
        "project-mobile",
        "in-tree-action-3-generic/93267a5f84",
        {
            "metadata": {"name": "action", "description": "d", "owner": "o@example.com"},
            "task": hook_task,
            "triggerSchema": {"type": "object"},
        },
    )
    emulator.set_role(
        "hook-id:project-mobile/in-tree-action-3-generic/*",
        ["queue:create-task:*", "queue:scheduler-id:*"],
    )
    return decision


def action_world(emulator: Emulator, tmp_path: Path, **changes: Any) -> Config:
    """A project `fenix` whose hourly job triggers HOOK's action of its revision's decision
    task, seeded in the emulator before DAY; `changes` to its configuration."""
    repository = Repository(tmp_path / "repos" / "fenix", {".cron.yml": ACTION_CRON})
    fenix = project("fenix", repository, trust_domain="mobile")
    config = make_config(emulator, tmp_path, fenix, **changes)
    emulator.clock.set(DAY - timedelta(minutes=10), frozen=True)
    route = f"index.mobile.v2.fenix.revision.{repository.head}.taskgraph.decision"
    seed_decision_with_actions(emulator, route)
    return config


def hook_fires(emulator: Emulator) -> list[dict[str, Any]]:
    """HOOK's last fires, newest first (none if it never fired)."""
    hooks = taskcluster.Hooks(emulator.options())
    try:
        return list(hooks.listLastFires(*HOOK)["lastFires"])
    except taskcluster.TaskclusterRestFailure as error:
        if error.status_code == 404:
            return []
        raise
