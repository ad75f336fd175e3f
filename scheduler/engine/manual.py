"""Fires an operator asks for: a job now, whatever its schedule (its own task id, recorded as
manual, kept `manual-fire-interval` apart), and a decision task's action by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from scheduler.actions.spec import decision_index_path, latest_decision_index_path
from scheduler.actions.triggering import SETTLE, Triggered, trigger_action
from scheduler.clock import Clock
from scheduler.config.model import Project
from scheduler.cron import CronFile, DecisionTask, TriggerAction
from scheduler.cron.timing import slot_of
from scheduler.durations import format_duration
from scheduler.engine.decision_task import create_unsure_for, task_link
from scheduler.engine.fires import FireRequest
from scheduler.engine.firing import FireRunner
from scheduler.git.source import Snapshot
from scheduler.ledger import Claim, Fire, FireKind, FireState
from scheduler.outcomes import FireResult, FireTooSoonError, UnknownTargetError
from scheduler.taskcluster import Clients


async def fire_job_now(
    runner: FireRunner,
    project: Project,
    snapshot: Snapshot,
    cron: CronFile,
    job_name: str,
    cron_input: Mapping[str, Any] | None = None,
    *,
    dry_run: bool = False,
) -> FireResult:
    """Run a job of `cron` (the project's `.cron.yml` at `snapshot`) now, whatever its `when`
    and `run-on-projects` say (build-decision's `--force-run`). The fire gets its own task id
    and is recorded as manual; while whether the last one made its task is not known (until
    `create_unsure_for`, or SETTLE for an action), none follows. Raises UnknownTargetError or
    FireTooSoonError."""
    job = cron.job(job_name)
    if job is None:
        problems = [str(d) for d in cron.errors if d.job == job_name]
        detail = "; ".join(problems) or (
            "known jobs: " + ", ".join(j.name for j in cron.jobs) if cron.jobs else "no jobs"
        )
        raise UnknownTargetError(
            f"{project.name}'s .cron.yml has no usable job {job_name!r} ({detail})"
        )
    setting = runner.setting
    now = setting.clock()
    interval = setting.config.manual_fire_interval
    config = setting.config
    creates = isinstance(job.kind, DecisionTask)
    unsure_for = create_unsure_for(config.calls) if creates else SETTLE
    claim = await setting.ledger.run(
        lambda ledger: ledger.claim_manual(
            project.name,
            job.name,
            replica=config.replica,
            now=now,
            lease=config.claim_lease,
            min_interval=interval,
            unsure_for=unsure_for,
        )
    )
    if not isinstance(claim, Claim):
        fired = f"{project.name}/{job.name} was fired by hand at {claim.claimed_at:%H:%M:%S} UTC"
        raise _too_soon(
            fired, claim, now, interval, unsure_for, config.root_url if creates else None
        )
    manual = FireRequest(
        project,
        snapshot,
        job,
        slot_of(now),
        FireKind.MANUAL,
        cron_input or {},
        now,
        dry_run=dry_run,
    )
    result = await runner.fire(manual, claim)
    await runner.record([claim])
    return replace(result, fire_id=claim.fire_id)


async def run_action(
    clients: Clients,
    project: Project,
    action_name: str,
    action_input: Mapping[str, Any] | None = None,
    *,
    revision: str | None,
    dry_run: bool,
    clock: Clock,
) -> Triggered:
    """Trigger the action `action_name` of the project's decision task for `revision` (by
    default its latest), as Treeherder's action menu does. Nothing dedupes it: an action
    has no slot. Raises TriggerError."""
    if revision:
        path = decision_index_path(project.trust_domain, project.name, revision)
    else:
        path = latest_decision_index_path(project.trust_domain, project.name)
    kind = TriggerAction(action_name=action_name, extra_input=dict(action_input or {}))
    return await trigger_action(clients, path, kind, dry_run=dry_run, clock=clock)


def _too_soon(
    fired: str,
    last: Fire,
    now: datetime,
    interval: timedelta,
    unsure_for: timedelta,
    root_url: str | None,
) -> FireTooSoonError:
    """Why a manual fire asked for at `now` waits for `last`, the fire `claim_manual` found,
    and until when. `root_url`: for a decision task's fire (None: an action's)."""
    made = last.state in (FireState.CLAIMED, FireState.CREATED, FireState.ALREADY_FIRED)
    apart = last.claimed_at + interval if made else None
    # Sent, and failed or still going on: it may have made its task, or may yet.
    unsettled = None
    if last.sent_at is not None and last.state in (FireState.FAILED, FireState.CLAIMED):
        unsettled = last.sent_at + unsure_for
    # Within the interval, say when that ends: a fire still going on may well succeed by then.
    if unsettled is None or (apart is not None and apart > now):
        assert apart is not None
        wait = apart - now
        return FireTooSoonError(
            f"{fired} (task {last.task_id or 'not made yet'}); manual fires of one job are at "
            f"least {format_duration(interval)} apart: try again in "
            f"{int(wait.total_seconds()) + 1} s",
            retry_after=wait,
        )
    wait = unsettled - now
    when = f"in {int(wait.total_seconds()) + 1} s"
    how = (
        f"although it failed ({last.error})"
        if last.state is FireState.FAILED
        else "(its request has not been answered yet)"
    )
    if root_url is None:
        return FireTooSoonError(
            f"{fired} and may have made its task {how}; to fire it again, check the hook's "
            f"last fires, then try again {when}",
            retry_after=wait,
        )
    task = f"task {last.task_id}" if last.task_id else "its task"
    look = f": see {task_link(root_url, last.task_id)}" if last.task_id else ""
    return FireTooSoonError(
        f"{fired} and may have created {task} {how}{look}. A new fire is allowed from "
        f"{unsettled:%H:%M:%S} UTC ({when}), when the queue has settled that createTask, so "
        "that it cannot make a second task unknowingly",
        retry_after=wait,
    )
