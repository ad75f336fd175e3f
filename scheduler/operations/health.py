"""What makes a project need a look on the dashboard (stalled ticks, preflight errors, incidents,
its expiry watch), and the expiry watch as its page shows it; from memory and given rows only.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from scheduler.common.wording import counted
from scheduler.config.model import Project
from scheduler.cron.timing import SLOT_LENGTH
from scheduler.durations import format_duration
from scheduler.engine.checks import ExpiryScanned, LastChecks, Preflighted
from scheduler.ledger import Remediation
from scheduler.operations.models import CachedTaskOut
from scheduler.operations.page_models import (
    ExpiryWatchOut,
    FindingOut,
    PreflightOut,
    ProjectHealthOut,
    RebuildOut,
)

# A project whose latest slot was evaluated longer ago than two ticks is not being ticked.
STALE_AFTER = 2 * SLOT_LENGTH


def staleness(evaluated_at: datetime | None, now: datetime) -> str | None:
    """Why the project's ticks look stalled, or None while they keep up."""
    if evaluated_at is None:
        return "never evaluated: no tick has reached it yet"
    late = now - evaluated_at
    if late <= STALE_AFTER:
        return None
    minutes = int(SLOT_LENGTH / timedelta(minutes=1))
    return (
        f"not evaluated for {format_duration(late - timedelta(seconds=late.seconds % 60))} "
        f"(it ticks every {minutes} min): is the service running and reaching its repository?"
    )


def preflight_out(preflighted: Preflighted | None) -> PreflightOut | None:
    if preflighted is None:
        return None
    checked = preflighted.checked
    return PreflightOut(
        checked_at=preflighted.at,
        revision=checked.revision,
        findings=[
            FindingOut(job=f.job, severity=str(f.severity), message=f.message)
            for f in checked.findings
        ],
    )


def assess(health: ProjectHealthOut, checks: LastChecks, now: datetime) -> ProjectHealthOut:
    """`health` with what this replica knows of it (staleness, preflight, the expiry scan)
    and the list of what needs a look."""
    stale = staleness(health.evaluated_at, now)
    preflight = preflight_out(checks.preflights.get(health.name))
    attention = []
    if stale:
        attention.append("not ticking" if health.evaluated_at else "never evaluated")
    if health.problem or health.last_outcome == "failed":
        attention.append("repository or .cron.yml unreadable")
    elif health.last_error:
        attention.append(".cron.yml errors")
    if preflight is not None:
        errors = sum(1 for f in preflight.findings if f.severity == "error")
        if errors:
            attention.append(counted(errors, "preflight error"))
    if health.incidents:
        attention.append(counted(len(health.incidents), "open incident"))
    scan = checks.scans.get(health.name)
    if scan is not None and scan.failure:
        attention.append("expiry scan failed")
    elif scan is not None:
        expired = sum(1 for t in scan.at_risk if t.gone or t.expires <= now)
        if expired:
            attention.append(f"{counted(expired, 'cached task')} expired")
    found = {"stale": stale, "preflight": preflight, "attention": attention}
    return health.model_copy(update=found)


def expiry_watch(
    project: Project, scan: ExpiryScanned | None, rebuild: Remediation | None, now: datetime
) -> ExpiryWatchOut:
    """The project's expiry watch: its latest scan's at-risk tasks, fewest days left first,
    and its latest rebuild."""
    threshold = project.expiry.threshold
    at_risk = sorted(scan.at_risk if scan else (), key=lambda t: (t.days_left(now), t.task_id))
    return ExpiryWatchOut(
        scanned_at=scan.at if scan else None,
        failure=scan.failure if scan else None,
        seen_at=scan.seen_at if scan else None,
        messages=[event.message for event in scan.events] if scan else [],
        at_risk=[CachedTaskOut.of(project.name, task, now, threshold) for task in at_risk],
        rebuild=None
        if rebuild is None
        else RebuildOut(
            state=str(rebuild.state),
            action=rebuild.action,
            started_at=rebuild.started_at,
            finished_at=rebuild.finished_at,
            task_id=rebuild.task_id,
            task_group_id=rebuild.task_group_id,
            error=rebuild.error,
            expiring=len(rebuild.expiring),
        ),
    )
