"""Hook definitions as the tests write them to a hooks folder and deploy them to the emulator:
a nightly task with a triggerSchema, the repository's role able to create it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import taskcluster
import yaml

from tests.emulator import Emulator

REVISION = "0123456789abcdef0123456789abcdef01234567"
TRIGGER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["revision", "flavor"],
    "properties": {
        "revision": {"type": "string", "pattern": "^[0-9a-f]{40}$"},
        "flavor": {"enum": ["ship", "promote"]},
        "build_number": {"type": "integer"},
    },
}


def hook_file(
    hook_id: str,
    *,
    group: str = "g",
    description: str = "A nightly task.",
    schedule: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A hook definition whose task the repository's role may create."""
    return {
        "hookGroupId": group,
        "hookId": hook_id,
        "metadata": {"name": f"Hook {hook_id}", "description": description, "owner": "r@e.com"},
        "schedule": ["0 0 3 * * *"] if schedule is None else schedule,
        "triggerSchema": TRIGGER_SCHEMA,
        "task": {
            "taskQueueId": "proj-test/worker",
            "created": {"$fromNow": "0 seconds"},
            "deadline": {"$fromNow": "1 hour"},
            "payload": {"env": env or {"FLAVOR": "${payload.flavor}"}},
            "metadata": {
                "name": "promote ${payload.revision}",
                "description": "d",
                "owner": "releng@example.com",
                "source": "https://example.com/hooks",
            },
        },
    }


def write_hook(folder: Path, definition: dict[str, Any]) -> Path:
    """Write `definition` to the folder, where its group and id say."""
    path: Path = folder / definition["hookGroupId"] / f"{definition['hookId']}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def deploy(emulator: Emulator, definition: dict[str, Any]) -> None:
    """Create the hook in the emulator, and the role of its hook id."""
    body = {k: v for k, v in definition.items() if k not in ("hookGroupId", "hookId")}
    group, hook_id = definition["hookGroupId"], definition["hookId"]
    taskcluster.Hooks(emulator.options(maxRetries=0)).createHook(group, hook_id, body)
    emulator.set_role(f"hook-id:{group}/{hook_id}", ["queue:create-task:*", "queue:scheduler-id:-"])


def declared_and_deployed(
    emulator: Emulator, folder: Path, hook_id: str = "same"
) -> dict[str, Any]:
    """A hook of group `g` written in `folder` and deployed as written (in sync): its
    definition."""
    definition = hook_file(hook_id)
    write_hook(folder, definition)
    deploy(emulator, definition)
    return definition
