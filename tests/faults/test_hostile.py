"""Hostile repositories beside well-behaved ones: nothing they ask for beyond their scopes is
done, nothing stops, and the unrelated projects still fire.

One `tc-scheduler tick` over projects whose files try to widen their scopes (a task asking for
another repository's role and for secrets), to trigger a hook their decision task may not name
(`actions.json` pointing at a privileged hook), or to break the service with what they hold
(a `.cron.yml` over the size limit, binary, an alias bomb, nesting thousands deep; a template
that is not YAML, or that renders thousands of tasks) - and two projects that should simply
fire: a decision task and an action.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import slugid
import taskcluster

from scheduler.cron import format_slot, slot_of
from scheduler.ids import decision_task_id
from tests.emulator import Emulator
from tests.faults.harness import Figures, clock_at, report, run_cli, sqlite_url
from tests.faults.worlds import (
    ACTION_HOOK,
    TEMPLATE,
    action_cron,
    decision_cron,
    hook_fires,
    project_entry,
    seed_actions,
    write_config,
)
from tests.support.emulated import task_definition
from tests.support.engine import ACTIONS_JSON
from tests.support.repos import Repository

PRIVILEGED_HOOK = ("project-releng", "release-promotion")

WIDENING_TEMPLATE = """\
version: 1
tasks:
  - taskId: {$eval: ownTaskId}
    taskQueueId: proj-test/worker
    created: {$eval: now}
    deadline: {$fromNow: '1 hour', from: {$eval: now}}
    scopes:
      - assume:repo:github.com/example/good:cron:*
      - secrets:get:project/releng/level-3/*
      - auth:create-client:*
    payload: {}
    metadata:
      name: widen
      description: a task asking for more than its repository may do
      owner: mallory@example.com
      source: https://github.com/example/widen
"""
MANY_TASKS_TEMPLATE = """\
version: 1
tasks:
  $map: {$eval: 'range(0, 20000)'}
  each(n): {taskId: {$eval: ownTaskId}, n: {$eval: n}}
"""


def alias_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\njobs: []\n"


def hostile_repositories(tmp_path: Path) -> dict[str, Repository]:
    """Each hostile project's repository, by project name."""
    one_job = decision_cron(["job"])
    files: dict[str, dict[str, str | bytes]] = {
        "widen": {".cron.yml": one_job, ".taskcluster.yml": WIDENING_TEMPLATE},
        "many-tasks": {".cron.yml": one_job, ".taskcluster.yml": MANY_TASKS_TEMPLATE},
        "not-yaml": {".cron.yml": one_job, ".taskcluster.yml": "version: 1\ntasks: [{\n\t:"},
        "huge-cron": {".cron.yml": one_job + "#" * (300 * 1024) + "\n"},
        "huge-template": {".cron.yml": one_job, ".taskcluster.yml": "#" * (2 * 1024 * 1024)},
        "binary-cron": {".cron.yml": bytes(range(256)) * 64},
        "alias-bomb": {".cron.yml": alias_bomb(), ".taskcluster.yml": TEMPLATE},
        "deep-cron": {".cron.yml": "jobs: " + "[" * 20000 + "]" * 20000 + "\n"},
        "hook-grab": {".cron.yml": action_cron(["grab"])},
    }
    return {name: Repository(tmp_path / name, content) for name, content in files.items()}


def seed_grabbing_decision(emulator: Emulator, project: str, repository: Repository) -> None:
    """A decision task for the project whose actions.json points its action at a privileged
    hook (which exists, and which the service's own client could trigger), while the task's
    scopes name only the project's own action hooks."""
    actions = copy.deepcopy(ACTIONS_JSON)
    for action in actions["actions"]:
        if action["name"] == "add-new-jobs":
            action["hookGroupId"], action["hookId"] = PRIVILEGED_HOOK
    queue = taskcluster.Queue(emulator.options())
    decision = slugid.nice()
    route = f"index.tcs.v2.{project}.revision.{repository.head}.taskgraph.decision"
    queue.createTask(
        decision,
        task_definition(
            emulator.clock.now(),
            routes=[route],
            scopes=["in-tree:hook-action:project-mobile/in-tree-action-3-*"],
        ),
    )
    emulator.add_artifact(decision, "public/actions.json", actions)
    emulator.resolve_task(decision, "completed")
    privileged = task_definition(emulator.clock.now())
    privileged["created"] = {"$fromNow": "0 seconds"}
    privileged["deadline"] = {"$fromNow": "1 hour"}
    taskcluster.Hooks(emulator.options()).createHook(
        *PRIVILEGED_HOOK,
        {
            "metadata": {"name": "promote", "description": "d", "owner": "releng@example.com"},
            "task": privileged,
            "triggerSchema": {"type": "object"},
        },
    )
    emulator.set_role(f"hook-id:{'/'.join(PRIVILEGED_HOOK)}", ["queue:create-task:*"])


def test_hostile_repositories_change_nothing_for_the_others(
    emulator: Emulator, tmp_path: Path
) -> None:
    slot = slot_of(datetime.now(UTC))
    clock_at(emulator, slot)
    good = Repository(
        tmp_path / "good", {".cron.yml": decision_cron(["job"]), ".taskcluster.yml": TEMPLATE}
    )
    good_action = Repository(tmp_path / "good-action", {".cron.yml": action_cron(["act"])})
    hostile = hostile_repositories(tmp_path)
    seed_actions(emulator, "good-action", good_action)
    seed_grabbing_decision(emulator, "hook-grab", hostile["hook-grab"])
    seeded = {task.task_id for task in emulator.tasks()}
    config = write_config(
        tmp_path / "service.yml",
        f"ledger: {sqlite_url(tmp_path / 'ledger.db')}\nstate-dir: {tmp_path / 'state'}\n",
        *(project_entry(name, repository) for name, repository in hostile.items()),
        project_entry("good", good),
        project_entry("good-action", good_action),
    )
    env = clock_at(emulator, slot + timedelta(seconds=30))

    tick = run_cli(["tick", "--at", format_slot(slot), "--config", str(config)], env)
    check = run_cli(
        ["check", *(str(repository.path / ".cron.yml") for repository in hostile.values())],
        env,
    )

    made = [task for task in emulator.tasks() if task.task_id not in seeded]
    good_task = decision_task_id(emulator.root_url, "good", "job", slot)
    action_fires = hook_fires(emulator, ACTION_HOOK)
    grabbed = hook_fires(emulator, PRIVILEGED_HOOK)
    hostile_tasks = [
        task.task_id
        for task in made
        if task.task_id != good_task
        and not any(fire["taskId"] == task.task_id for fire in action_fires)
    ]
    tracebacks = [
        name for name, cli in (("tick", tick), ("check", check)) if "Traceback" in cli.text
    ]
    missing = int(good_task not in {task.task_id for task in made}) + int(len(action_fires) != 1)
    lines = tick.text.splitlines()
    unnamed = [  # a failed fire in the table, or an error line of the project's slot
        name
        for name in hostile
        if not any(
            line.strip().startswith(f"{name} ")
            and (" failed " in line or f"{format_slot(slot)}: " in line)
            for line in lines
        )
    ]
    report(
        Figures(
            "hostile repositories",
            fires=len(made),
            duplicates=max(0, len(action_fires) - 1),
            missing=missing,
            leaks=len(hostile_tasks) + len(grabbed),
            notes={
                "hostile_projects": len(hostile),
                "tracebacks": len(tracebacks),
                "unexplained": len(unnamed),
            },
        )
    )
    assert tick.process.returncode == 1, tick.text  # the hostile projects' fires failed
    assert check.process.returncode == 1, check.text
    assert not tracebacks, tick.text + check.text
    assert good_task in {task.task_id for task in made}, tick.text
    assert len(action_fires) == 1, tick.text
    assert not grabbed, f"the privileged hook was triggered: {grabbed}"
    assert not hostile_tasks, json.dumps(hostile_tasks)
    assert not unnamed, f"failures not named: {unnamed}\n{tick.text}"
    assert "in-tree:hook-action:project-releng/release-promotion" in tick.text
    assert "secrets:get:project/releng/level-3/*" in tick.text
