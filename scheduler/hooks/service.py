"""The Hooks service's side of `hooks/`: what the deployment has and last fired, applying a
plan to it, and firing a hook with a payload checked against its triggerSchema first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskcluster.exceptions import TaskclusterRestFailure

from scheduler.common.wording import counted
from scheduler.errors import Category, SchedulerError
from scheduler.hooks.changes import Change, HookPlan
from scheduler.hooks.definitions import DEFAULT_TRIGGER_SCHEMA, HookKey
from scheduler.hooks.payloads import (
    PayloadProblem,
    UncheckablePayloadError,
    payload_problems,
    trigger_schema_problem,
)
from scheduler.taskcluster import Clients
from scheduler.taskcluster_failures import TaskclusterError


@dataclass(frozen=True)
class Applied:
    plan: HookPlan
    # created, updated, removed, unchanged, kept or failed; in a dry run, what would happen
    outcome: str
    error: str | None = None


@dataclass(frozen=True)
class Fired:
    key: HookKey
    task_id: str | None  # None in a dry run, or when the task template rendered nothing
    dry_run: bool = False


class PayloadRejectedError(SchedulerError, category=Category.REJECTED, code="payload-rejected"):
    """The payload breaks the hook's triggerSchema; the hook was not triggered."""

    def __init__(self, key: HookKey, problems: list[PayloadProblem]) -> None:
        super().__init__(
            f"the payload does not match the triggerSchema of {key}, so it was not triggered "
            f"({counted(len(problems), 'problem')})"
        )
        self.key = key
        self.problems = problems

    def details(self) -> list[str]:
        return [str(problem) for problem in self.problems]


async def deployed_hooks(clients: Clients, groups: frozenset[str]) -> dict[HookKey, Any]:
    """The deployment's hooks of `groups`, as `hooks.listHooks` describes them."""
    deployed: dict[HookKey, Any] = {}
    for group in sorted(groups):
        try:
            listed = await clients.hooks.listHooks(group)
        except TaskclusterRestFailure as error:
            if error.status_code == 404:
                continue  # the service answers 404 for a group without hooks
            raise clients.explain(error, f"hooks.listHooks({group})") from None
        except Exception as error:
            raise clients.explain(error, f"hooks.listHooks({group})") from None
        for hook in listed.get("hooks", []):
            deployed[HookKey(hook["hookGroupId"], hook["hookId"])] = hook
    return deployed


def hook_read_scopes(groups: frozenset[str]) -> tuple[str, ...]:
    """All reading the hooks of `groups` and their last fires may do: nothing that changes or
    triggers a hook."""
    return tuple(
        scope
        for group in sorted(groups)
        for scope in (f"hooks:list-hooks:{group}", f"hooks:list-last-fires:{group}/*")
    )


async def last_fires(clients: Clients, key: HookKey, limit: int) -> list[dict[str, Any]]:
    """The hook's latest `limit` fires, newest first, as `hooks.listLastFires` lists them
    (none for a hook never fired: the service answers 404)."""
    try:
        page = await clients.hooks.listLastFires(
            key.group_id, key.hook_id, query={"limit": str(limit)}
        )
    except TaskclusterRestFailure as error:
        if error.status_code == 404:
            return []
        raise clients.explain(error, f"hooks.listLastFires({key})") from None
    except Exception as error:
        raise clients.explain(error, f"hooks.listLastFires({key})") from None
    fires = page.get("lastFires", []) if isinstance(page, dict) else []
    return [fire for fire in fires if isinstance(fire, dict)][:limit]


async def apply_plan(clients: Clients, plans: list[HookPlan], *, prune: bool) -> list[Applied]:
    """Carry out `plans` one hook at a time; a hook that fails does not stop the others."""
    return [await _apply_one(clients, planned, prune=prune) for planned in plans]


async def _apply_one(clients: Clients, planned: HookPlan, *, prune: bool) -> Applied:
    group_id, hook_id = planned.key.group_id, planned.key.hook_id
    method = {
        Change.CREATE: "createHook",
        Change.UPDATE: "updateHook",
        Change.UNDECLARED: "removeHook",
    }.get(planned.change)
    try:
        if planned.change is Change.CREATE and planned.declared:
            await clients.hooks.createHook(group_id, hook_id, planned.declared.definition)
            return Applied(planned, "created")
        if planned.change is Change.UPDATE and planned.declared:
            await clients.hooks.updateHook(group_id, hook_id, planned.declared.definition)
            return Applied(planned, "updated")
        if planned.change is Change.UNDECLARED and prune:
            await clients.hooks.removeHook(group_id, hook_id)
            return Applied(planned, "removed")
    except Exception as error:
        return Applied(
            planned, "failed", clients.explain(error, f"hooks.{method}({planned.key})").message
        )
    return Applied(planned, "kept" if planned.change is Change.UNDECLARED else "unchanged")


def hook_fire_scopes(key: HookKey) -> tuple[str, ...]:
    """All an operator's hook fire may do: read the hook (its triggerSchema) and trigger it."""
    return (
        f"hooks:get:{key.group_id}:{key.hook_id}",
        f"hooks:trigger-hook:{key.group_id}/{key.hook_id}",
    )


async def fire_hook(
    clients: Clients, key: HookKey, payload: dict[str, Any], *, dry_run: bool = False
) -> Fired:
    """Fetch the hook, check `payload` against its triggerSchema, then trigger it.

    Raises PayloadRejectedError (before any trigger call) when the payload breaks the schema,
    UncheckablePayloadError when the schema cannot be applied here, TaskclusterError otherwise.
    """
    try:
        hook = await clients.hooks.hook(key.group_id, key.hook_id)
    except TaskclusterRestFailure as error:
        if error.status_code == 404:
            raise TaskclusterError(
                f"the deployment {clients.root_url} has no hook {key}; check the name "
                f"(`tc-scheduler hooks list` shows the managed ones)",
                status=404,
                code="ResourceNotFound",
            ) from None
        raise clients.explain(error, f"hooks.hook({key})") from None
    except Exception as error:
        raise clients.explain(error, f"hooks.hook({key})") from None
    trigger_schema = hook.get("triggerSchema", DEFAULT_TRIGGER_SCHEMA)
    unusable = trigger_schema_problem(trigger_schema)
    if unusable:
        raise UncheckablePayloadError(f"cannot check a payload for {key}: {unusable}")
    problems = payload_problems(trigger_schema, payload)
    if problems:
        raise PayloadRejectedError(key, problems)
    if dry_run:
        return Fired(key, None, dry_run=True)
    try:
        response = await clients.hooks.triggerHook(key.group_id, key.hook_id, payload)
    except Exception as error:
        raise clients.explain(error, f"hooks.triggerHook({key})") from None
    task_id = response.get("taskId") if isinstance(response, dict) else None
    return Fired(key, task_id if isinstance(task_id, str) else None)
