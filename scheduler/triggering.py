"""Triggering an action of a decision task: index -> public/actions.json -> hooks.triggerHook.

The I/O half of actions.py, shared by trigger-action cron jobs and the expiry watch's rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskcluster.exceptions import TaskclusterRestFailure

from scheduler.actions import ActionError, HookTrigger, render_trigger
from scheduler.cron.model import TriggerAction
from scheduler.taskcluster import Clients, explain


class TriggerError(Exception):
    """The action could not be triggered; the message says why and what to check.

    `upstream`: Taskcluster failed or could not be reached (not the action or its input).
    """

    def __init__(self, message: str, *, upstream: bool = False) -> None:
        super().__init__(message)
        self.upstream = upstream


@dataclass(frozen=True)
class Triggered:
    decision_task_id: str
    trigger: HookTrigger
    task_id: str | None  # None in a dry run, or when the hook made no task
    dry_run: bool = False

    def details(self) -> dict[str, Any]:
        return {
            "hookGroupId": self.trigger.hook_group_id,
            "hookId": self.trigger.hook_id,
            "payload": self.trigger.payload,
            "decisionTaskId": self.decision_task_id,
        }


async def trigger_action(
    clients: Clients,
    index_path: str,
    kind: TriggerAction,
    *,
    cron_input: dict[str, Any] | None = None,
    dry_run: bool = False,
    missing_hint: str = "",
) -> Triggered:
    """Find the decision task at `index_path`, render `kind`'s action and trigger its hook."""
    try:
        found = await clients.index.findTask(index_path)
    except TaskclusterRestFailure as error:
        if error.status_code == 404:
            raise TriggerError(
                f"no decision task is indexed at {index_path}{missing_hint}, so its actions "
                "are unknown"
            ) from None
        raise TriggerError(explain(error, "index.findTask").message, upstream=True) from None
    except Exception as error:
        raise TriggerError(explain(error, "index.findTask").message, upstream=True) from None
    decision_task_id = found["taskId"]
    try:
        actions_json = await clients.download_json(decision_task_id, "public/actions.json")
    except Exception as error:
        message = explain(error, f"fetching public/actions.json of {decision_task_id}").message
        raise TriggerError(message, upstream=True) from None
    try:
        trigger = render_trigger(
            actions_json, kind, decision_task_id=decision_task_id, cron_input=cron_input
        )
    except ActionError as error:
        raise TriggerError(str(error)) from None
    if dry_run:
        return Triggered(decision_task_id, trigger, None, dry_run=True)
    try:
        response = await clients.hooks.triggerHook(
            trigger.hook_group_id, trigger.hook_id, trigger.payload
        )
    except Exception as error:
        what = f"hooks.triggerHook({trigger.hook_group_id}/{trigger.hook_id})"
        raise TriggerError(explain(error, what).message, upstream=True) from None
    return Triggered(decision_task_id, trigger, response.get("taskId"))
