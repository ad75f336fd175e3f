"""What a tick reads from the ledger while it reads its projects' heads: each project's last
evaluated slot, pauses, open fires and fires still running, for all projects in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from scheduler.config.model import Project
from scheduler.cron.overlap import RunningFire
from scheduler.engine.overlap import running_fires_of
from scheduler.ledger import AsyncLedger, EngineLedger, Fire, Pause


@dataclass(frozen=True)
class ProjectReads:
    """One project's part of a tick's reads."""

    last_evaluated: datetime | None = None
    pauses: list[Pause] = field(default_factory=list)
    open_fires: list[Fire] = field(default_factory=list)
    running: list[RunningFire] = field(default_factory=list)


async def read_tick(
    ledger: AsyncLedger[EngineLedger],
    projects: Sequence[Project],
    *,
    now: datetime,
    horizon: timedelta,
) -> dict[str, ProjectReads]:
    """Each of `projects`' reads at `now`, by name: a few statements, however many projects.
    `horizon`: how long a fire made without a watch may run (`running_fires`)."""
    names = [project.name for project in projects]

    def read(ledger: EngineLedger) -> dict[str, ProjectReads]:
        last = ledger.last_evaluated_slots(names)
        pauses = ledger.pauses_of(names, at=now)
        running = running_fires_of(ledger, projects, now=now, horizon=horizon)
        found: dict[str, list[Fire]] = {name: [] for name in names}
        for fire in ledger.open_fires(due_at=now):
            if fire.project in found:
                found[fire.project].append(fire)
        return {
            name: ProjectReads(last.get(name), pauses[name], found[name], running[name])
            for name in names
        }

    return await ledger.run(read)
