"""The expiry report: each project's cached tasks that have expired or expire within its
threshold (or `within`), scanned now; it triggers nothing and records nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta

from scheduler.clock import Clock
from scheduler.config.model import Config, Project
from scheduler.expiry.scan import Scanner
from scheduler.operations.models import CachedTaskOut, ExpiryReportOut
from scheduler.taskcluster import connect_service

# Told the project being scanned; answers what to call with the index entries seen so far.
Progress = Callable[[Project], Callable[[int], None]]


async def expiry_report(
    config: Config,
    projects: Sequence[Project],
    clock: Clock,
    *,
    within: timedelta | None = None,
    progress: Progress | None = None,
) -> ExpiryReportOut:
    """Scan `projects`' cached tasks; raises TaskclusterError when a call of a scan fails."""
    now = clock()
    at_risk: list[CachedTaskOut] = []
    scanned = 0
    async with connect_service(config) as clients:
        for project in projects:
            scanner = Scanner(
                clients.for_project(project),
                concurrency=project.expiry.concurrency,
                progress=progress(project) if progress else None,
            )
            watch = project.expiry
            if within is not None:
                watch = dataclasses.replace(watch, threshold=within)
            report = await scanner.report(project, watch, now)
            scanned += report.scanned
            at_risk.extend(
                CachedTaskOut.of(report.project, task, report.now, report.threshold)
                for task in report.at_risk
            )
    return ExpiryReportOut(at_risk=at_risk, scanned=scanned)
