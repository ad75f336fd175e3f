"""The emulated Taskcluster deployment the tests run against: its repository roles, a valid
task to create in it, and the variables that point a tc-scheduler process at it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from scheduler.clock import NOW_VARIABLE, offset_setting
from tests.emulator import Emulator
from tests.emulator.clock import format_time

# The test deployment's per-repository roles, `repo:<host>/<path>:*`: broadly what Firefox CI
# grants a repository's cron and decision tasks (create tasks in any queue, on any route, under
# any scheduler id; trigger hooks; name in-tree action hooks). Tests of least privilege make
# narrower ones.
REPOSITORY_ROLES = {
    "repo:*": [
        "queue:create-task:*",
        "queue:route:*",
        "queue:scheduler-id:*",
        "hooks:trigger-hook:*",
        "hooks:list-last-fires:*",
        "in-tree:hook-action:*",
    ]
}


def task_definition(now: datetime, **overrides: Any) -> dict[str, Any]:
    """A valid createTask request created at `now`, with `overrides` replacing its fields."""
    definition: dict[str, Any] = {
        "taskQueueId": "proj-test/worker",
        "created": format_time(now),
        "deadline": format_time(now + timedelta(hours=1)),
        "payload": {},
        "metadata": {
            "name": "test",
            "description": "a test task",
            "owner": "tests@example.com",
            "source": "https://example.com/tests",
        },
    }
    return definition | overrides


def taskcluster_environment(emulator: Emulator) -> dict[str, str]:
    """The variables that point a tc-scheduler process at the emulator, as its root client,
    on a clock running from the emulator's now (set the emulator's clock first)."""
    return {
        "TASKCLUSTER_ROOT_URL": emulator.root_url,
        "TASKCLUSTER_CLIENT_ID": emulator.root_credentials["clientId"],
        "TASKCLUSTER_ACCESS_TOKEN": emulator.root_credentials["accessToken"],
        NOW_VARIABLE: offset_setting(emulator.clock.now()),
    }
