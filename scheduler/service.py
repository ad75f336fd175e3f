"""The long-running service: ticks every 15 minutes, expiry scans, start-up tick, graceful stop.

The engine decides what a slot means (catch-up included); this module only decides when to ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from scheduler.clock import Clock, utc_now
from scheduler.config.model import Config, Project
from scheduler.cron.timing import format_slot, slot_of
from scheduler.engine import Engine
from scheduler.expiry.model import ExpiryEvent
from scheduler.findings import Checked
from scheduler.git.source import GitSource
from scheduler.ledger import (
    AsyncLedger,
    EngineLedger,
    Ledger,
    Notice,
    NotifierLedger,
    open_async_ledger,
)
from scheduler.monitoring import Metrics, Monitor
from scheduler.notify import sentry
from scheduler.notify.outbox import Postman
from scheduler.notify.routing import Router
from scheduler.notify.slack import SlackSender
from scheduler.operations.acts import Operations
from scheduler.operations.ledgered import LedgerOperations
from scheduler.outcomes import SlotResult
from scheduler.preflight import preflight
from scheduler.reports.reporter import Reporter
from scheduler.taskcluster import connect_service
from scheduler.taskcluster_calls import CallObserver
from scheduler.watcher import Watcher
from scheduler.web.server import ApiServer

log = structlog.get_logger("tc_scheduler.service")

# In-flight fires get this long to finish after SIGTERM; then their claims are released.
SHUTDOWN_GRACE = timedelta(seconds=30)
# A tick delayed by a busy event loop still runs; only the engine's catch-up judges lateness.
MISFIRE_GRACE = timedelta(minutes=14)
# How often the outbox is looked at for letters due (new ones, or retries whose time came).
DELIVERY_EVERY = timedelta(seconds=10)
# How often fires nobody holds are looked for between ticks: a dead replica's claims once their
# lease runs out, and retries that are due.
RECOVER_EVERY = timedelta(seconds=20)
# The ledger is pruned once a day, in this hour (UTC), at a random time within PRUNE_SPREAD.
PRUNE_HOUR = 4
PRUNE_SPREAD = timedelta(hours=1)
# The service's own Sentry Crons monitor: one check-in per tick.
TICK_MONITOR = "tc-scheduler-tick"
TICK_SCHEDULE = "*/15 * * * *"


@asynccontextmanager
async def open_engine(config: Config, *, clock: Clock = utc_now) -> AsyncIterator[Engine]:
    """An engine with its ledger (migrated), git cache and Taskcluster session."""
    async with (
        open_async_ledger(config.ledger_url) as ledger,
        _engine_on(config, ledger, clock) as engine,
    ):
        yield engine


@asynccontextmanager
async def _engine_on(
    config: Config,
    ledger: AsyncLedger[EngineLedger],
    clock: Clock,
    observe: CallObserver | None = None,
) -> AsyncIterator[Engine]:
    """An engine on `ledger`, with its git cache, Taskcluster session (its requests told to
    `observe`) and render workers."""
    render_pool = (
        ProcessPoolExecutor(config.render_workers, mp_context=multiprocessing.get_context("spawn"))
        if config.render_workers
        else None
    )
    try:
        source = GitSource(config.state_dir / "git")
        async with connect_service(config, observe=observe) as clients:
            yield Engine(config, ledger, source, clients, clock=clock, render_pool=render_pool)
    finally:
        if render_pool is not None:
            render_pool.shutdown(cancel_futures=True)


@dataclass
class Notifier:
    """Reports what the engine and the expiry watch did, follows what they started, and
    delivers the outbox: the service's half of notifications."""

    ledger: AsyncLedger[NotifierLedger]
    reporter: Reporter
    watcher: Watcher
    postman: Postman
    clock: Callable[[], datetime]
    # Ticks, scans and the interval job all ask for rounds; one at a time is enough.
    _round: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    async def slots_evaluated(self, results: Sequence[SlotResult]) -> None:
        now = self.clock()
        notices = [n for result in results for n in self.reporter.slot_evaluated(result, now)]
        await self._queue(notices, now)

    async def preflight_checked(self, checked: Checked) -> None:
        """A project's preflight: what Taskcluster would refuse, once per revision."""
        now = self.clock()
        await self._queue(self.reporter.preflight_checked(checked, now), now)

    async def expiry_scanned(self, project: str, events: Sequence[ExpiryEvent]) -> None:
        """The events of one expiry scan of `project` (one says so if the scan failed)."""
        now = self.clock()
        await self._queue(self.reporter.expiry_scanned(project, events, now), now)

    async def _queue(self, notices: Sequence[Notice], now: datetime) -> None:
        """Queue `notices` in the outbox (incidents kept), to be delivered by the postman."""
        await self.ledger.run(lambda ledger: ledger.report(notices, now=now))

    async def round(self) -> None:
        """Follow what was started one step, then send what is due. Failures are logged."""
        async with self._round:
            try:
                await self.watcher.step()
            except Exception:
                log.exception("watching failed; trying again next round")
            try:
                await self.postman.deliver()
            except Exception:
                log.exception("delivering notifications failed; trying again next round")


class Service(NamedTuple):
    """The parts of a service: its engine, the notifier that reports what it does, and the
    one boundary to its ledger, which each part holds as its own port."""

    engine: Engine
    notifier: Notifier
    ledger: AsyncLedger[Ledger]

    def operations(self) -> Operations:
        """The operator's acts and reads of this service, reported as its own work is."""
        return Operations(self.engine, self.ledger, self.notifier)


@asynccontextmanager
async def open_service(
    config: Config,
    *,
    clock: Clock = utc_now,
    ledger_wait: timedelta = timedelta(0),
    stop: asyncio.Event | None = None,
    observe: CallObserver | None = None,
) -> AsyncIterator[Service]:
    """The engine and the notifier that reports what it does, on one ledger, with Sentry set
    up if configured. A ledger that does not answer is waited for up to `ledger_wait` (or
    until `stop` is set); requests to Taskcluster are told to `observe` if given."""
    if config.notify.sentry is not None:
        sentry.configure(config.notify.sentry.dsn, environment=config.notify.sentry.environment)
    try:
        async with (
            open_async_ledger(config.ledger_url, wait=ledger_wait, stop=stop) as ledger,
            _engine_on(config, ledger, clock, observe) as engine,
        ):
            yield Service(engine, open_notifier(config, engine, ledger), ledger)
    finally:
        if config.notify.sentry is not None:
            sentry.close()


def open_notifier(config: Config, engine: Engine, ledger: AsyncLedger[Ledger]) -> Notifier:
    """The notifier of a service whose engine is `engine`, on its `ledger`."""
    router = Router(config.notify)
    reporter = Reporter(
        router,
        canceled=config.notify.canceled,
        deadline_exceeded=config.notify.deadline_exceeded,
    )
    slack = config.notify.slack
    sender = (
        SlackSender(token=slack.token, webhook_url=slack.webhook_url, base_url=slack.api_url)
        if slack is not None
        else None
    )
    postman = Postman(
        ledger,
        router,
        config.root_url,
        config.replica,
        engine.clock,
        slack=sender,
        give_up_after=config.notify.give_up_after,
    )
    watcher = Watcher(engine.clients_of, ledger, reporter, engine.clock)
    return Notifier(ledger, reporter, watcher, postman, engine.clock)


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
            monitor.recovered(recovered)
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


def _every(interval: timedelta) -> IntervalTrigger:
    return IntervalTrigger(seconds=max(1, int(interval.total_seconds())), timezone=UTC)


@dataclass
class _Running:
    """The service's work in flight (ticks, watch rounds, deliveries, scans), drained on
    shutdown: given a grace period to finish, then cancelled, never cut off mid-way unseen."""

    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def start(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def supervised(
        self, work: Callable[..., Coroutine[Any, Any, Any]], *args: Any
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        """`work(*args)` as an APScheduler job whose runs are started here: when the scheduler
        shuts down and cancels its jobs, the work goes on and is drained with the rest."""

        async def job() -> None:
            task = self.start(work(*args))
            # Cancelled: the scheduler is shutting down; `drain` waits for the work (or
            # cancels it after the grace period), and no traceback is logged for it.
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

        job.__qualname__ = getattr(work, "__qualname__", job.__qualname__)
        return job

    async def drain(self, grace: timedelta) -> None:
        if not self.tasks:
            return
        _, pending = await asyncio.wait(self.tasks, timeout=grace.total_seconds())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def run(config: Config, *, clock: Clock = utc_now, stop: asyncio.Event | None = None) -> None:
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
    metrics = Metrics()
    async with open_service(
        config,
        clock=clock,
        ledger_wait=config.ledger_wait,
        stop=stop,
        observe=metrics.taskcluster_call,
    ) as service:
        engine, notifier = service.engine, service.notifier
        monitor = Monitor(service.ledger, engine.clock, metrics)
        # A process starting under a name takes over at once what a dead one of that name held.
        now = engine.clock()
        fires, letters = await service.ledger.run(
            lambda ledger: ledger.release_replica(config.replica, now=now)
        )
        if fires or letters:
            log.warning("took over what this replica held before", fires=fires, letters=letters)
        running = _Running()
        start = running.start
        supervised = running.supervised

        preflights = Preflights(engine, notifier)

        async def tick_then_preflight(moment: datetime) -> None:
            results = await tick_and_report(engine, notifier, moment, monitor)
            await preflights.after_tick(results)

        async def scheduled_tick() -> None:
            # Not awaited: a slow tick must not hold the next one back (max_instances).
            start(tick_then_preflight(engine.clock()))

        ticker = AsyncIOScheduler(timezone=UTC)
        repeat = {
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
        }
        ticker.add_job(scheduled_tick, CronTrigger(minute="0,15,30,45", timezone=UTC), **repeat)
        ticker.add_job(supervised(notifier.round), _every(config.watch_every), **repeat)
        ticker.add_job(supervised(notifier.postman.deliver), _every(DELIVERY_EVERY), **repeat)
        ticker.add_job(
            supervised(recover_and_report, engine, notifier, monitor),
            _every(RECOVER_EVERY),
            **repeat,
        )
        # Replicas prune at random times within the hour: the first removes, the others find
        # little left (each removes only what is still there, so two at once do no harm).
        ticker.add_job(
            supervised(prune_ledger, service.operations().ledger, config),
            CronTrigger(hour=PRUNE_HOUR, timezone=UTC, jitter=int(PRUNE_SPREAD.total_seconds())),
            **repeat,
        )
        for project in config.projects:
            if project.expiry_watched:
                ticker.add_job(
                    supervised(scan_and_report, engine, notifier, project, monitor),
                    _every(project.expiry.every),
                    next_run_time=datetime.now(UTC),
                    **repeat,
                )
        ticker.start()
        api = ApiServer(service.operations(), config.api, monitor)
        api.start()
        # What Taskcluster would refuse, found before anything fires; then the start-up tick:
        # the current slot, and catch-up since the last one.
        start(preflights.check(config.projects))
        start(tick_then_preflight(engine.clock()))
        await stop.wait()
        log.info("stopping", in_flight=len(running.tasks))
        ticker.shutdown(wait=False)
        await running.drain(SHUTDOWN_GRACE)
        await api.stop()
        await engine.release_all()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    log.info("stopped")
