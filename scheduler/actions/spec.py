"""Taskgraph actions, as a trigger-action cron job runs them: find one, build its input, render it.

Pure: callers fetch `public/actions.json` and trigger the hook. Follows build-decision.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft7Validator, SchemaError

from scheduler.common import jsone_cache
from scheduler.cron.model import TriggerAction

# The input property a fire's trigger carries its marker in, where the action's schema allows:
# what tells the task it made from every other task of the same hook.
MARKER_KEY = "tc-scheduler-fire"


class ActionError(Exception):
    """The action cannot be triggered; the message says what to fix and where."""


@dataclass(frozen=True)
class HookTrigger:
    """What to send: `hooks.triggerHook(hook_group_id, hook_id, payload)`."""

    action_name: str
    hook_group_id: str
    hook_id: str
    payload: dict[str, Any]
    marker: str | None = None  # in the input under MARKER_KEY, when the schema allowed it


def decision_index_path(trust_domain: str, project: str, revision: str) -> str:
    """Where taskgraph indexes the decision task of a revision."""
    return f"{trust_domain}.v2.{project}.revision.{revision}.taskgraph.decision"


def latest_decision_index_path(trust_domain: str, project: str) -> str:
    """Where taskgraph indexes a project's latest decision task."""
    return f"{trust_domain}.v2.{project}.latest.taskgraph.decision"


def hook_action_scope(hook_group_id: str, hook_id: str) -> str:
    """The scope a decision task must hold for its `actions.json` to name a hook."""
    return f"in-tree:hook-action:{hook_group_id}/{hook_id}"


def find_action(actions_json: Any, name: str) -> dict[str, Any]:
    """The task-group action called `name` (the first one, as the Treeherder UI picks)."""
    if not isinstance(actions_json, Mapping) or actions_json.get("version") != 1:
        version = actions_json.get("version") if isinstance(actions_json, Mapping) else None
        raise ActionError(
            f"public/actions.json has version {version!r}; only version 1 is supported"
        )
    actions = actions_json.get("actions")
    if not isinstance(actions, list):
        raise ActionError("public/actions.json has no `actions` list")
    for action in actions:
        if isinstance(action, Mapping) and action.get("name") == name and not action.get("context"):
            if action.get("kind") != "hook":
                raise ActionError(
                    f"action {name!r} is of kind {action.get('kind')!r}; only hook actions "
                    "can be triggered"
                )
            return dict(action)
    available = sorted(
        {str(a.get("name")) for a in actions if isinstance(a, Mapping) and not a.get("context")}
    )
    raise ActionError(
        f"the decision task defines no task-group action named {name!r}; "
        f"its task-group actions are: {', '.join(available) or 'none'}"
    )


def action_input(kind: TriggerAction, cron_input: Mapping[str, Any] | None) -> dict[str, Any]:
    """The action's input: the cron input (if the job includes it) updated by `extra-input`."""
    base = dict(cron_input or {}) if kind.include_cron_input else {}
    base.update(copy.deepcopy(dict(kind.extra_input)))
    return base


def render_trigger(
    actions_json: Mapping[str, Any],
    kind: TriggerAction,
    *,
    decision_task_id: str,
    cron_input: Mapping[str, Any] | None = None,
    marker: str | None = None,
) -> HookTrigger:
    """Everything needed to trigger `kind`'s action on the decision task's task group.

    `marker` names the fire: added to the input under MARKER_KEY if the action's schema
    accepts it there (otherwise the trigger carries none).
    """
    action = find_action(actions_json, kind.action_name)
    given = action_input(kind, cron_input)
    _validate(action, given)
    if marker is not None:
        marked = {**given, MARKER_KEY: marker}
        if _accepts(action, marked):
            given = marked
        else:
            marker = None
    variables = actions_json.get("variables") or {}
    context = {**variables, "taskGroupId": decision_task_id, "taskId": None, "input": given}
    try:
        payload = jsone_cache.render(action.get("hookPayload", {}), context)
    except Exception as error:
        # JSON-e's own errors and Python's alike are mistakes in the action's template.
        raise ActionError(
            f"the hookPayload of action {kind.action_name!r} did not render: {error}"
        ) from None
    hook_group_id, hook_id = action.get("hookGroupId"), action.get("hookId")
    if not isinstance(hook_group_id, str) or not isinstance(hook_id, str):
        raise ActionError(f"action {kind.action_name!r} names no hookGroupId and hookId")
    if not isinstance(payload, dict):
        raise ActionError(f"the hookPayload of action {kind.action_name!r} is not a mapping")
    return HookTrigger(kind.action_name, hook_group_id, hook_id, payload, marker)


def carries_fire(task: Mapping[str, Any], marker: str | None) -> bool:
    """Whether `task`, made by a hook, may be the one a trigger carrying `marker` made.

    A task showing the marker is; one showing another fire's marker is not; one showing none
    (its hook does not pass the action's input into the task) cannot be told apart, and is
    taken as made by it, so that a fire is never sent twice.
    """
    text = json.dumps(task)
    if marker is not None and marker in text:
        return True
    return MARKER_KEY not in text


def _accepts(action: Mapping[str, Any], given: Mapping[str, Any]) -> bool:
    schema = action.get("schema")
    return schema is None or Draft7Validator(schema).is_valid(given)


def _validate(action: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    schema = action.get("schema")
    if schema is None:
        return
    try:
        Draft7Validator.check_schema(schema)
    except SchemaError as error:
        raise ActionError(
            f"action {action['name']!r} has an invalid input schema: {error.message}"
        ) from None
    errors = sorted(Draft7Validator(schema).iter_errors(given), key=lambda e: list(e.path))
    if errors:
        details = "; ".join(
            f"{'.'.join(map(str, e.absolute_path)) or 'input'}: {e.message}" for e in errors[:5]
        )
        raise ActionError(
            f"the input for action {action['name']!r} does not match its schema ({details}); "
            "fix the job's extra-input or the cron input"
        )
