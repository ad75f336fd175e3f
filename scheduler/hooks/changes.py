"""A plan to make the deployment's hooks match the folder: which to create, update or remove,
and the fields that differ. Pure."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scheduler.common.schema_messages import json_path
from scheduler.common.yamldoc import JsonPath
from scheduler.hooks.definitions import (
    DEFAULT_EMAIL_ON_ERROR,
    DEFAULT_SCHEDULE,
    DEFAULT_TRIGGER_SCHEMA,
    DeclaredHook,
    HookFolder,
    HookKey,
)


class Absent(enum.Enum):
    """A field one side of a comparison does not have."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


@dataclass(frozen=True)
class FieldChange:
    path: JsonPath
    old: Any
    new: Any

    @property
    def where(self) -> str:
        return json_path(self.path)

    def __str__(self) -> str:
        return f"{self.where}: {shown_value(self.old)} → {shown_value(self.new)}"


class Change(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    # In a managed group, deployed, and in no file: removed only with --prune.
    UNDECLARED = "undeclared"


@dataclass(frozen=True)
class HookPlan:
    key: HookKey
    change: Change
    declared: DeclaredHook | None
    fields: tuple[FieldChange, ...] = ()


def plan(folder: HookFolder, deployed: Mapping[HookKey, Mapping[str, Any]]) -> list[HookPlan]:
    """What it takes to make the deployment's hooks in the folder's groups match the folder.

    `deployed` holds the service's definitions (`hooks.hook` replies); hooks of groups the
    folder does not manage are left out of the plan, whatever `deployed` holds.
    """
    plans: list[HookPlan] = []
    declared = {hook.key: hook for hook in folder.hooks}
    for key, hook in declared.items():
        current = deployed.get(key)
        if current is None:
            plans.append(HookPlan(key, Change.CREATE, hook))
            continue
        changes = field_changes(as_stored(current), as_stored(hook.definition))
        change = Change.UPDATE if changes else Change.UNCHANGED
        plans.append(HookPlan(key, change, hook, tuple(changes)))
    for key in deployed:
        if key not in declared and key.group_id in folder.groups:
            plans.append(HookPlan(key, Change.UNDECLARED, None))
    return sorted(plans, key=lambda p: p.key)


def as_stored(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The fields this folder manages, as the service stores them (defaults filled in)."""
    metadata = definition.get("metadata")
    if isinstance(metadata, dict):
        metadata = {
            **metadata,
            "emailOnError": metadata.get("emailOnError", DEFAULT_EMAIL_ON_ERROR),
        }
    return {
        "metadata": metadata,
        "schedule": definition.get("schedule", DEFAULT_SCHEDULE),
        "task": definition.get("task"),
        "triggerSchema": definition.get("triggerSchema", DEFAULT_TRIGGER_SCHEMA),
        "bindings": definition.get("bindings", []),
    }


def field_changes(old: Any, new: Any, path: JsonPath = ()) -> list[FieldChange]:
    """Each leaf that differs between two JSON values, with its path.

    Mappings are compared key by key, lists of equal length item by item; a list that grew
    or shrank is one change. Numbers compare by value (JSON has no 1.0 apart from 1), but
    true is not 1.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[FieldChange] = []
        for key in [*new, *(key for key in old if key not in new)]:
            changes.extend(field_changes(old.get(key, ABSENT), new.get(key, ABSENT), (*path, key)))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            change
            for index, (before, after) in enumerate(zip(old, new, strict=True))
            for change in field_changes(before, after, (*path, index))
        ]
    return [] if same_json(old, new) else [FieldChange(path, old, new)]


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON values: numbers by value, booleans only to booleans."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same_json(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same_json, left, right))
    return type(left) is type(right) and bool(left == right)


def shown_value(value: Any, limit: int = 100) -> str:
    """A JSON value on one line, shortened if long; `(absent)` for a missing field."""
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
