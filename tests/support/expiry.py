"""What expiry tests put in the emulator: cached tasks indexed to expire when they ask, and a
project's decision task with the rebuild-cached-tasks action and the hook behind it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import slugid
import taskcluster

from tests.emulator import Emulator
from tests.emulator.clock import format_time
from tests.support.emulated import task_definition

HOOK = ("project-tcs", "in-tree-action-1-generic/0123456789")
REBUILD_ACTIONS = {
    "version": 1,
    "variables": {},
    "actions": [
        {
            "name": "rebuild-cached-tasks",
            "title": "Rebuild cached tasks",
            "description": "Rebuild the cached tasks",
            "kind": "hook",
            "context": [],
            "hookGroupId": HOOK[0],
            "hookId": HOOK[1],
            "hookPayload": {
                "decision": {"action": {"name": "rebuild-cached-tasks"}},
                "user": {
                    "input": {"$eval": "input"},
                    "taskGroupId": {"$eval": "taskGroupId"},
                    "taskId": {"$eval": "taskId"},
                },
            },
            "schema": {"type": "object"},
        }
    ],
}
CACHED = ("tcs.cache.level-1.toolchains.v3.clang", "tcs.cache.level-1.docker-images.v3.base")


def seed(
    emulator: Emulator, namespace: str, expires_in: timedelta, task_id: str | None = None
) -> str:
    """A completed cached task indexed at `namespace`, expiring `expires_in` from now."""
    now = emulator.clock.now()
    task_id = task_id or slugid.nice()
    if task_id not in emulator.queue.tasks:
        definition = task_definition(now, expires=format_time(now + expires_in))
        emulator.add_task(task_id, definition)
    with emulator.lock:
        expires = emulator.queue.tasks[task_id].expires
        emulator.index.insert(namespace, task_id, expires=expires)
    return task_id


def seed_rebuild_action(emulator: Emulator, project: str) -> None:
    """The project's latest decision task, completed, with the rebuild action and its hook."""
    now = emulator.clock.now()
    decision = slugid.nice()
    route = f"index.tcs.v2.{project}.latest.taskgraph.decision"
    emulator.add_task(
        decision,
        task_definition(now, routes=[route], scopes=[f"in-tree:hook-action:{HOOK[0]}/*"]),
    )
    emulator.resolve_task(decision, "completed")
    emulator.add_artifact(decision, "public/actions.json", REBUILD_ACTIONS)
    template = task_definition(now)
    template.update(
        created={"$fromNow": "0 seconds"},
        deadline={"$fromNow": "1 hour"},
        taskGroupId={"$eval": "payload.user.taskGroupId"},
        payload={"action": {"$eval": "payload"}},
    )
    taskcluster.Hooks(emulator.options()).createHook(
        *HOOK,
        {
            "metadata": {"name": "action", "description": "d", "owner": "o@example.com"},
            "task": template,
            "triggerSchema": {"type": "object"},
        },
    )
    emulator.set_role(f"hook-id:{HOOK[0]}/*", ["queue:create-task:*", "queue:scheduler-id:*"])


def demo_config(tmp_path: Path, setting: str = "level: 3") -> Path:
    """A service configuration with one project, `demo` (trust domain tcs), plus `setting`."""
    config = tmp_path / "service.yml"
    config.write_text(
        "projects:\n"
        "  - name: demo\n"
        "    repository: https://github.com/example/demo\n"
        "    trust-domain: tcs\n"
        f"    {setting}\n"
    )
    return config
