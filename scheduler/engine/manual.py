"""Fires an operator asks for: a job now, whatever its schedule (its own task id, recorded as
manual, kept `manual-fire-interval` apart), and a decision task's action by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.actions.spec import decision_index_path, latest_decision_index_path
from scheduler.actions.triggering import SETTLE, Triggered, trigger_action
from scheduler.clock import Clock
from scheduler.config.model import Project
from scheduler.cron import CronFile, TriggerAction
from scheduler.cron.timing import slot_of
from scheduler.durations import format_duration
from scheduler.engine.fires import FireRequest
from scheduler.engine.firing import FireRunner
from scheduler.git.source import Snapshot
from scheduler.ledger import Claim, FireKind, FireState
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
    and is recorded as manual. Raises UnknownTargetError or FireTooSoonError."""
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
    claim = await setting.ledger.run(
        lambda ledger: ledger.claim_manual(
            project.name,
            job.name,
            replica=config.replica,
            now=now,
            lease=config.claim_lease,
            min_interval=interval,
            unsure_for=SETTLE,
        )
    )
    if not isinstance(claim, Claim) and claim.state is FireState.FAILED and claim.sent_at:
        wait = claim.sent_at + SETTLE - now
        raise FireTooSoonError(
            f"{project.name}/{job.name} was fired by hand at {claim.claimed_at:%H:%M:%S} UTC "
            f"and may have made its task although it failed ({claim.error}); to fire it "
            f"again, check the hook's last fires, then try again in "
            f"{int(wait.total_seconds()) + 1} s",
            retry_after=wait,
        )
    if not isinstance(claim, Claim):
        wait = interval - (now - claim.claimed_at)
        raise FireTooSoonError(
            f"{project.name}/{job.name} was fired by hand at "
            f"{claim.claimed_at:%H:%M:%S} UTC (task {claim.task_id or 'not made yet'}); "
            f"manual fires of one job are at least {format_duration(interval)} apart: try "
            f"again in {int(wait.total_seconds()) + 1} s",
            retry_after=wait,
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
    return result


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
