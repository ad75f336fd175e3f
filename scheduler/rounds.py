"""The running service's rounds: a slot prepared ahead, a tick, a recovery round, an expiry
scan, the daily prune and preflight of new revisions; each reported, told to the monitor, and
never raising.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from scheduler.config.model import Config, Project
from scheduler.cron.timing import format_slot, slot_of
from scheduler.engine import Engine
from scheduler.monitoring import Monitor
from scheduler.notifier import Notifier
from scheduler.notify import sentry
from scheduler.operations.ledgered import LedgerOperations
from scheduler.outcomes import SlotResult
from scheduler.preflight import preflight

log = structlog.get_logger("tc_scheduler.service")

# The service's own Sentry Crons monitor: one check-in per tick.
TICK_MONITOR = "tc-scheduler-tick"
TICK_SCHEDULE = "*/15 * * * *"


async def prepare_and_report(engine: Engine, slot: datetime) -> None:
    """Before `slot` begins: its heads read and decision tasks rendered (`Engine.prepare`).
    Failures are logged, never raised: the boundary's tick does without what is missing."""
    try:
        done = await engine.prepare(slot)
    except Exception:
        log.exception("preparing the slot failed; its tick renders what it fires")
        return
    log.info(
        "slot prepared",
        slot=format_slot(slot),
        projects=done.projects,
        rendered=done.rendered,
        unreachable=list(done.unreachable),
        seconds=round(done.seconds, 3),
    )


async def tick_once(engine: Engine, moment: datetime) -> list[SlotResult]:
    log.info("tick", slot=format_slot(slot_of(moment)))
    results = await engine.tick(moment)
    for result in results:
        log.info(
            "slot evaluated",
            project=result.project,
            slot=format_slot(result.slot),
            revision=result.revision,
            fires=len(result.fired_here),
            decided_before=sum(fire.decided_before for fire in result.fires),
            skipped=len(result.skipped),
            ok=result.ok,
        )
    return results


async def tick_and_report(
    engine: Engine, notifier: Notifier, moment: datetime, monitor: Monitor | None = None
) -> list[SlotResult]:
    """A tick, reported: its slots' notices queued, what it started followed at once, the
    service's own Sentry monitor checked in (so that Sentry alerts when ticks stop), and the
    tick told to `monitor`."""
    settings = engine.config.notify.sentry
    monitored = settings is not None and settings.monitors
    check_in_id = sentry.check_in_id_for(f"tick/{engine.config.replica}/{slot_of(moment)}")

    def check_in(status: sentry.CheckInStatus) -> None:
        if monitored:
            sentry.check_in(TICK_MONITOR, status, check_in_id=check_in_id, schedule=TICK_SCHEDULE)

    check_in("in_progress")
    started = time.perf_counter()
    with _young_collections_only():
        try:
            results = await tick_once(engine, moment)
        except Exception:
            check_in("error")
            log.exception("tick failed")
            return []
        check_in("ok")
        if monitor is not None:
            monitor.ticked(results, seconds=time.perf_counter() - started)
        try:
            await notifier.slots_evaluated(results)
        except Exception:
            log.exception("reporting the tick failed; the next tick reports again")
        await notifier.round()
    return results


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """Meanwhile, the objects alive on entry are left out of the garbage collector's
    collections (`gc.freeze`), which then look at the objects made since only.

    A full collection of the service's heap (its repositories' files, parsed templates, the
    slot's prepared renders) stops the event loop for a tenth of a second or more, and a
    tick's burst of fires is what sets one off, just when every fire waits on the loop. The
    objects left out are looked at again once the tick and its report are over. A heap frozen
    already (by a tick beside this one) is left as it is, to be thawed by whoever froze it.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class Preflights:
    """Preflight for the running service: at start, then whenever a tick sees a project at a
    revision not checked yet (each revision once); findings go to the log and the notifier."""

    engine: Engine
    notifier: Notifier
    _checked: dict[str, str] = field(default_factory=dict)  # project -> revision
    # One preflight at a time, so a tick waits for the start-up one to know what it checked.
    _running: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    async def check(self, projects: Sequence[Project]) -> None:
        """Preflight `projects`; failures are logged, never raised (they stop nothing)."""
        async with self._running:
            await self._check(projects)

    async def after_tick(self, results: Sequence[SlotResult]) -> None:
        """Preflight the projects a tick found at a revision not checked yet."""
        async with self._running:
            new = [
                project
                for result in results
                if result.revision is not None
                and self._checked.get(result.project) != result.revision
                and (project := self.engine.config.project(result.project)) is not None
            ]
            if new:
                await self._check(new)

    async def _check(self, projects: Sequence[Project]) -> None:
        try:
            for checked in await preflight(self.engine, projects):
                if checked.revision is not None:
                    self._checked[checked.project] = checked.revision
                for finding in checked.findings:
                    say = log.error if finding.is_error else log.warning
                    say(
                        "preflight",
                        project=finding.project,
                        job=finding.job,
                        revision=checked.revision,
                        message=finding.message,
                    )
                await self.notifier.preflight_checked(checked)
        except Exception:
            log.exception("preflight failed; the next new revision tries again")


async def recover_and_report(
    engine: Engine, notifier: Notifier, monitor: Monitor | None = None
) -> None:
    """Between ticks: finish the fires nobody holds, and report what that started."""
    try:
        recovered = await engine.recover()
    except Exception:
        log.exception("recovering fires failed; the next round tries again")
        return
    if recovered:
        log.info("recovered fires", fires=len(recovered))
        if monitor is not None:
            monitor.fired(recovered)
        await notifier.round()


async def scan_and_report(
    engine: Engine, notifier: Notifier, project: Project, monitor: Monitor | None = None
) -> None:
    started = time.perf_counter()
    events = await engine.check_expiry(project)
    if monitor is not None:
        monitor.expiry_scanned(project.name, events, seconds=time.perf_counter() - started)
    await notifier.expiry_scanned(project.name, events)
    await notifier.round()


async def prune_ledger(operations: LedgerOperations, config: Config) -> None:
    """The daily prune: what is past retention goes. Failures are logged; tomorrow tries again."""
    try:
        pruned = await operations.prune(f"tc-scheduler ({config.replica})", config.retention)
    except Exception:
        log.exception("pruning the ledger failed; trying again tomorrow")
        return
    log.info("ledger pruned", **pruned.model_dump(exclude={"dry_run"}, mode="json"))
