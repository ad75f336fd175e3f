"""The long-running service: ticks every 15 minutes, expiry scans, start-up tick, graceful stop.

The engine decides what a slot means (catch-up included); this module only decides when to ask.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.config import Config, Project
from scheduler.cron.timing import format_slot, slot_of
from scheduler.engine import Engine, SlotResult, utc_now
from scheduler.expiry import Event, EventKind, Remediator, Scanner, findings
from scheduler.ledger import Ledger
from scheduler.source import GitSource
from scheduler.taskcluster import TaskclusterError, connect

log = structlog.get_logger("tc_scheduler.service")

# In-flight fires get this long to finish after SIGTERM; then their claims are released.
SHUTDOWN_GRACE = timedelta(seconds=30)
# A tick delayed by a busy event loop still runs; only the engine's catch-up judges lateness.
MISFIRE_GRACE = timedelta(minutes=14)


@asynccontextmanager
async def open_engine(
    config: Config, *, clock: Callable[[], datetime] = utc_now
) -> AsyncIterator[Engine]:
    """An engine with its ledger (migrated), git cache and Taskcluster session."""
    ledger = await asyncio.to_thread(Ledger.open, config.ledger_url)
    render_pool = (
        ProcessPoolExecutor(config.render_workers, mp_context=multiprocessing.get_context("spawn"))
        if config.render_workers
        else None
    )
    try:
        source = GitSource(config.state_dir / "git")
        credentials = config.credentials.as_options() if config.credentials else None
        async with connect(config.root_url, credentials, connections=config.connections) as clients:
            yield Engine(config, ledger, source, clients, clock=clock, render_pool=render_pool)
    finally:
        if render_pool is not None:
            render_pool.shutdown(cancel_futures=True)
        await asyncio.to_thread(ledger.close)


async def tick_once(engine: Engine, moment: datetime) -> list[SlotResult]:
    log.info("tick", slot=format_slot(slot_of(moment)))
    results = await engine.tick(moment)
    for result in results:
        log.info(
            "slot evaluated",
            project=result.project,
            slot=format_slot(result.slot),
            revision=result.revision,
            fires=len(result.fires),
            skipped=len(result.skipped),
            ok=result.ok,
        )
    return results


async def watch_expiry(engine: Engine, project: Project) -> list[Event]:
    """One expiry scan of `project` and the remediation step it calls for, as events."""
    bound = log.bind(project=project.name)
    try:
        scanner = Scanner(engine.clients, concurrency=project.expiry.concurrency)
        report = await scanner.report(project, project.expiry, engine.clock())
        remediator = Remediator(engine.clients, engine.ledger, engine.config.replica, engine.clock)
        event = await remediator.step(project, report, dry_run=engine.config.dry_run)
    except TaskclusterError as error:
        bound.error("expiry scan failed", error=error.message)
        return [Event(EventKind.FAILED, project.name, f"the expiry scan failed: {error.message}")]
    bound.info("expiry scanned", scanned=report.scanned, at_risk=len(report.at_risk))
    events = [*findings(report), *([event] if event is not None else [])]
    for found in events:
        log_event = bound.error if found.kind is EventKind.FAILED else bound.warning
        log_event(str(found.kind), message=found.message, task_group_id=found.task_group_id)
    return events


async def run(config: Config, *, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`): a tick at start, then one per 15-minute slot."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "starting",
        replica=config.replica,
        projects=[p.name for p in config.projects],
        dry_run=config.dry_run,
        root_url=config.root_url,
    )
    async with open_engine(config) as engine:
        running: set[asyncio.Task[list[SlotResult]]] = set()

        def start_tick() -> None:
            task = asyncio.create_task(tick_once(engine, engine.clock()))
            running.add(task)
            task.add_done_callback(running.discard)

        async def scheduled_tick() -> None:
            # A coroutine, so APScheduler runs it on the event loop rather than in a thread.
            start_tick()

        ticker = AsyncIOScheduler(timezone=UTC)
        ticker.add_job(
            scheduled_tick,
            CronTrigger(minute="0,15,30,45", timezone=UTC),
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(MISFIRE_GRACE.total_seconds()),
        )
        for project in config.projects:
            if project.expiry_watched:
                ticker.add_job(
                    watch_expiry,
                    IntervalTrigger(
                        seconds=int(project.expiry.every.total_seconds()), timezone=UTC
                    ),
                    args=[engine, project],
                    next_run_time=datetime.now(UTC),
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=int(MISFIRE_GRACE.total_seconds()),
                )
        ticker.start()
        start_tick()  # the start-up tick: the current slot, and catch-up since the last one
        await stop.wait()
        log.info("stopping", in_flight=len(running))
        ticker.shutdown(wait=False)
        if running:
            _, pending = await asyncio.wait(running, timeout=SHUTDOWN_GRACE.total_seconds())
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await engine.release_all()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    log.info("stopped")
