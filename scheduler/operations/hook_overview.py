"""The hooks page's read: the configured hooks folder (`hooks-dir`) against the deployment's
hooks, each with its last fires. What cannot be read is a problem shown, never an error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from scheduler.common.redaction import MASK, is_secret_key, scrub_data
from scheduler.engine import Engine
from scheduler.hooks.changes import ABSENT, Change, FieldChange, HookPlan, plan, shown_value
from scheduler.hooks.definitions import DEFAULT_TRIGGER_SCHEMA, HookFolder, HookKey, key_of
from scheduler.hooks.folder import load_folder
from scheduler.hooks.service import deployed_hooks, hook_read_scopes, last_fires
from scheduler.hooks.summary import example_payload, schedule_words, schema_summary
from scheduler.operations.page_models import (
    HookDriftOut,
    HookLastFireOut,
    HookOut,
    HooksOverviewOut,
)
from scheduler.taskcluster import Clients
from scheduler.taskcluster_failures import TaskclusterError

# How many of each hook's fires the page shows.
LAST_FIRES = 5
STATES = {
    Change.UNCHANGED: "in-sync",
    Change.UPDATE: "drift",
    Change.CREATE: "missing",
    Change.UNDECLARED: "undeclared",
}


async def hooks_overview(engine: Engine) -> HooksOverviewOut:
    """The hooks of the configured folder and of the groups it manages, as declared and as
    deployed; a folder whose files have problems, or a deployment that does not answer, is
    said on the page while the rest is still shown."""
    config = engine.config
    now = engine.clock()
    if config.hooks_dir is None:
        return HooksOverviewOut(
            now=now,
            root_url=config.root_url,
            folder=None,
            hooks=[],
            folder_problems=[],
            deployment_problem=None,
        )
    folder, folder_problems = await asyncio.to_thread(_read_folder, config.hooks_dir)
    broken = _broken_files(folder)
    clients = engine.clients.restricted("the hooks page", hook_read_scopes(folder.groups))
    deployed: dict[HookKey, Any] = {}
    deployment_problem = None
    try:
        deployed = await deployed_hooks(clients, folder.groups)
    except TaskclusterError as error:
        deployment_problem = f"the deployed hooks cannot be read: {error.message}"
    plans = plan(folder, deployed)
    if deployment_problem is not None:
        # Only the folder's side is known: nothing can be said of what is deployed.
        plans = [HookPlan(p.key, p.change, p.declared) for p in plans]
    fires = await asyncio.gather(*(_last_fires(clients, p.key) for p in plans if p.key in deployed))
    fires_of = dict(zip([p.key for p in plans if p.key in deployed], fires, strict=True))
    hooks = [
        _hook_out(
            p,
            deployed.get(p.key),
            fires_of.get(p.key, ([], None)),
            known=deployment_problem is None,
            broken=broken.get(p.key),
        )
        for p in plans
    ]
    return HooksOverviewOut(
        now=now,
        root_url=config.root_url,
        folder=str(config.hooks_dir),
        hooks=hooks,
        folder_problems=folder_problems,
        deployment_problem=deployment_problem,
    )


def _read_folder(directory: Path) -> tuple[HookFolder, list[str]]:
    if not directory.is_dir():
        empty = HookFolder(str(directory), (), frozenset(), ())
        return empty, [f"{directory}: the hooks folder (hooks-dir) is not a folder any more"]
    folder = load_folder(directory)
    return folder, [str(diagnostic) for diagnostic in folder.diagnostics]


def _broken_files(folder: HookFolder) -> dict[HookKey, str]:
    """The hooks whose file has an error, by the file's place: they are not declared (the
    file cannot be used), but not undeclared either."""
    broken: dict[HookKey, str] = {}
    root = Path(folder.directory)
    for diagnostic in folder.diagnostics:
        if not diagnostic.is_error:
            continue
        try:
            relative = Path(diagnostic.path).relative_to(root)
        except ValueError:
            continue
        key = key_of(PurePosixPath(relative.as_posix()))
        if isinstance(key, HookKey):
            broken[key] = diagnostic.path
    return broken


async def _last_fires(clients: Clients, key: HookKey) -> tuple[list[HookLastFireOut], str | None]:
    try:
        fires = await last_fires(clients, key, LAST_FIRES)
    except TaskclusterError as error:
        return [], f"the last fires cannot be read: {error.message}"
    return [_fire_out(fire) for fire in fires], None


def _fire_out(fire: Mapping[str, Any]) -> HookLastFireOut:
    task_id = fire.get("taskId")
    error = fire.get("error")
    state = fire.get("taskState")
    return HookLastFireOut(
        task_id=task_id if isinstance(task_id, str) and task_id else None,
        fired_at=_time(fire.get("taskCreateTime")),
        fired_by=str(fire.get("firedBy", "")),
        result=str(fire.get("result", "")),
        error=error if isinstance(error, str) and error else None,
        task_state=state if isinstance(state, str) else None,
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _hook_out(
    planned: HookPlan,
    deployed: Mapping[str, Any] | None,
    fires: tuple[list[HookLastFireOut], str | None],
    *,
    known: bool,
    broken: str | None,
) -> HookOut:
    declared = planned.declared.definition if planned.declared else None
    source: Mapping[str, Any] = declared or deployed or {}
    if not known:
        state = "unknown"
    elif broken is not None and planned.change is Change.UNDECLARED:
        state = "invalid-file"
    else:
        state = STATES[planned.change]
    metadata = source.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    schedule = source.get("schedule")
    trigger_schema = source.get("triggerSchema", DEFAULT_TRIGGER_SCHEMA)
    if not isinstance(trigger_schema, dict):
        trigger_schema = DEFAULT_TRIGGER_SCHEMA
    return HookOut(
        hook=str(planned.key),
        hook_group_id=planned.key.group_id,
        hook_id=planned.key.hook_id,
        state=state,
        file=planned.declared.path if planned.declared else broken,
        name=_text(metadata.get("name")),
        description=_text(metadata.get("description")),
        schedule=schedule_words(schedule) if isinstance(schedule, list) else None,
        trigger_schema=schema_summary(trigger_schema),
        trigger_schema_json=_json(trigger_schema),
        example_payload=_json(example_payload(trigger_schema)),
        drift=[_drift(change) for change in planned.fields],
        last_fires=fires[0],
        last_fires_problem=fires[1],
        deployed=deployed is not None,
    )


def _drift(change: FieldChange) -> HookDriftOut:
    # The plan's old side is the deployed hook, its new side the file.
    return HookDriftOut(
        path=change.where,
        declared=_masked(change.path, change.new),
        deployed=_masked(change.path, change.old),
    )


def _masked(path: Sequence[Any], value: Any) -> str:
    """A changed field's value on one line, masked as a secret when its key names one (an
    env `*_TOKEN`) or it holds what looks like one."""
    names = [part for part in path if isinstance(part, str)]
    if value is not ABSENT and names and is_secret_key(names[-1]):
        return MASK
    return shown_value(scrub_data(value))


def _json(value: Any) -> str:
    return json.dumps(scrub_data(value), indent=2, sort_keys=False, ensure_ascii=False)


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None
