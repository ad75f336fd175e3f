"""What an operator does by hand, the same from the command line and the API: fire a job, trigger
an action, fire a hook, start an expiry remediation; each act is written to the audit log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from scheduler.actions.triggering import Triggered, TriggerError
from scheduler.engine import Engine
from scheduler.expiry.model import ExpiryEvent, ExpiryEventKind
from scheduler.hooks.definitions import HookKey
from scheduler.hooks.payloads import UncheckablePayloadError
from scheduler.hooks.service import Fired, PayloadRejectedError, fire_hook, hook_fire_scopes
from scheduler.ledger import FireState
from scheduler.outcomes import FireError, FireResult, UnknownTargetError
from scheduler.taskcluster import TaskclusterError

if TYPE_CHECKING:  # the service imports the API, which imports this
    from scheduler.service import Notifier


async def fire_job(
    engine: Engine,
    actor: str,
    project: str,
    job: str,
    cron_input: Mapping[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> FireResult:
    """Fire `job` now (a manual fire); raises FireError when it cannot even start."""
    act = {"input": cron_input, "dry_run": dry_run}
    try:
        result = await engine.fire_now(project, job, cron_input, dry_run=dry_run)
    except FireError as error:
        await record(engine, actor, "fire", f"{project}/{job}", act, ok=False, result=str(error))
        raise
    ok = result.state is not FireState.FAILED
    outcome = f"{result.state}: task {result.task_id}" if ok else str(result.error)
    await record(engine, actor, "fire", f"{project}/{job}", act, ok=ok, result=outcome)
    return result


async def run_action(
    engine: Engine,
    actor: str,
    project: str,
    action: str,
    action_input: Mapping[str, Any] | None = None,
    *,
    revision: str | None = None,
    dry_run: bool = False,
) -> Triggered:
    """Trigger the project's action `action`; raises UnknownTargetError or TriggerError."""
    act = {"input": action_input, "revision": revision, "dry_run": dry_run}
    target = f"{project}/{action}"
    try:
        triggered = await engine.run_action(
            project, action, action_input, revision=revision, dry_run=dry_run
        )
    except (UnknownTargetError, TriggerError) as error:
        await record(engine, actor, "action", target, act, ok=False, result=str(error))
        raise
    hook = f"{triggered.trigger.hook_group_id}/{triggered.trigger.hook_id}"
    outcome = (
        f"dry run: would trigger {hook}"
        if triggered.dry_run
        else f"triggered {hook}: task {triggered.task_id}"
    )
    await record(engine, actor, "action", target, act, ok=True, result=outcome)
    return triggered


async def fire_any_hook(
    engine: Engine,
    actor: str,
    key: HookKey,
    payload: Mapping[str, Any],
    *,
    dry_run: bool = False,
) -> Fired:
    """Fire the hook `key` with `payload`, checked against its triggerSchema first.

    Raises PayloadRejectedError, UncheckablePayloadError or TaskclusterError (all recorded).
    """
    act = {"payload": dict(payload), "dry_run": dry_run}
    try:
        fired = await fire_hook(
            engine.clients.restricted(f"the hook fire of {key}", hook_fire_scopes(key)),
            key,
            dict(payload),
            dry_run=dry_run or engine.config.dry_run,
        )
    except PayloadRejectedError as error:
        outcome = f"{error}: {'; '.join(map(str, error.problems))}"
        await record(engine, actor, "hook-fire", str(key), act, ok=False, result=outcome)
        raise
    except (TaskclusterError, UncheckablePayloadError) as error:
        message = error.message if isinstance(error, TaskclusterError) else str(error)
        await record(engine, actor, "hook-fire", str(key), act, ok=False, result=message)
        raise
    if fired.dry_run:
        outcome = f"dry run: would trigger {key}"
    elif fired.task_id is None:
        outcome = f"triggered {key}: its task template made no task"
    else:
        outcome = f"triggered {key}: task {fired.task_id}"
    await record(engine, actor, "hook-fire", str(key), act, ok=True, result=outcome)
    return fired


async def remediate(
    engine: Engine,
    notifier: Notifier | None,
    actor: str,
    project_name: str,
    *,
    dry_run: bool = False,
) -> list[ExpiryEvent]:
    """Scan the project's cached tasks now and rebuild what expires (or follow the running
    rebuild); the events are reported as a scheduled scan's are (None: not reported).

    A scan that Taskcluster failed is reported and audited, then raised as a TaskclusterError:
    the act could not be carried out.
    """
    act = {"dry_run": dry_run}
    try:
        project = engine.project(project_name)
    except UnknownTargetError as error:
        await record(
            engine, actor, "expiry-remediate", project_name, act, ok=False, result=str(error)
        )
        raise
    events = await engine.check_expiry(project, dry_run=dry_run)
    if notifier is not None:
        await notifier.expiry_scanned(project.name, events)
        await notifier.round()
    failed = [event.message for event in events if event.failed]
    outcome = "; ".join(failed or [f"{event.kind}: {event.message}" for event in events])
    await record(
        engine,
        actor,
        "expiry-remediate",
        project.name,
        act,
        ok=not failed,
        result=outcome or "nothing at risk, no rebuild running",
    )
    scan_failed = [event.message for event in events if event.kind is ExpiryEventKind.SCAN_FAILED]
    if scan_failed:
        raise TaskclusterError(f"{project.name}: {scan_failed[0]}")
    return events


async def record(
    engine: Engine,
    actor: str,
    action: str,
    target: str,
    act: dict[str, Any],
    *,
    ok: bool,
    result: str,
) -> None:
    """Write one act to the audit log."""
    await asyncio.to_thread(
        engine.ledger.record_act,
        actor,
        action,
        target,
        act,
        ok=ok,
        result=result,
        now=engine.clock(),
    )
