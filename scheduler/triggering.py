"""Triggering an action of a decision task: index -> public/actions.json -> the hook-action
guard -> hooks.triggerHook.

The I/O half of actions.py, shared by trigger-action cron jobs and the expiry watch's rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskcluster.exceptions import TaskclusterRestFailure

from scheduler.actions import ActionError, HookTrigger, hook_action_scope, render_trigger
from scheduler.cron.model import TriggerAction
from scheduler.scopes import satisfies
from scheduler.taskcluster import Clients


class TriggerError(Exception):
    """The action could not be triggered; the message says why and what to check.

    `upstream`: Taskcluster failed or could not be reached (not the action or its input).
    `unindexed`: no decision task is indexed where its actions were looked for (yet).
    """

    def __init__(self, message: str, *, upstream: bool = False, unindexed: bool = False) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.unindexed = unindexed


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
    """Find the decision task at `index_path`, render `kind`'s action and trigger its hook,
    if the decision task may have it triggered (the hook-action guard)."""
    try:
        found = await clients.index.findTask(index_path)
    except TaskclusterRestFailure as error:
        if error.status_code == 404:
            raise TriggerError(
                f"no decision task is indexed at {index_path}{missing_hint}, so its actions "
                "are unknown",
                unindexed=True,
            ) from None
        raise TriggerError(
            clients.explain(error, "index.findTask").message, upstream=True
        ) from None
    except Exception as error:
        raise TriggerError(
            clients.explain(error, "index.findTask").message, upstream=True
        ) from None
    decision_task_id = found["taskId"]
    try:
        actions_json = await clients.download_json(decision_task_id, "public/actions.json")
    except Exception as error:
        doing = f"fetching public/actions.json of {decision_task_id}"
        raise TriggerError(clients.explain(error, doing).message, upstream=True) from None
    try:
        trigger = render_trigger(
            actions_json, kind, decision_task_id=decision_task_id, cron_input=cron_input
        )
    except ActionError as error:
        raise TriggerError(str(error)) from None
    await check_hook_action(clients, decision_task_id, trigger)
    if dry_run:
        return Triggered(decision_task_id, trigger, None, dry_run=True)
    try:
        response = await clients.hooks.triggerHook(
            trigger.hook_group_id, trigger.hook_id, trigger.payload
        )
    except Exception as error:
        what = f"hooks.triggerHook({trigger.hook_group_id}/{trigger.hook_id})"
        raise TriggerError(clients.explain(error, what).message, upstream=True) from None
    return Triggered(decision_task_id, trigger, response.get("taskId"))


async def check_hook_action(clients: Clients, decision_task_id: str, trigger: HookTrigger) -> None:
    """Refuse to trigger a hook that the decision task publishing `actions.json` may not name.

    As build-decision and Treeherder check, the decision task's scopes, expanded, must satisfy
    `in-tree:hook-action:<hookGroupId>/<hookId>`: whatever a repository writes into
    `actions.json`, only hooks its own roles grant it can be triggered.
    """
    required = hook_action_scope(trigger.hook_group_id, trigger.hook_id)
    try:
        task = await clients.queue.task(decision_task_id)
        expanded = await clients.auth.expandScopes({"scopes": task.get("scopes") or []})
    except Exception as error:
        doing = f"checking that decision task {decision_task_id} may trigger {required}"
        raise TriggerError(clients.explain(error, doing).message, upstream=True) from None
    if not satisfies(expanded.get("scopes") or [], required):
        raise TriggerError(
            f"refused to trigger action {trigger.action_name!r}: its hook "
            f"{trigger.hook_group_id}/{trigger.hook_id} is not one the decision task "
            f"{decision_task_id} may name (its scopes do not satisfy {required}); grant "
            f"{required} to the role the repository's decision tasks assume if the action is "
            "meant for it"
        )
