"""The long-running service: a tick every 15 minutes (each slot prepared ahead), the rounds
between them, expiry scans, a start-up tick and a graceful stop.

The engine decides what a slot means (catch-up included); this module only decides when to ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
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
from scheduler.config.model import Config
from scheduler.engine import Engine
from scheduler.git.hg import HgSource
from scheduler.git.remote_http import RemoteHttp
from scheduler.git.source import GitSource
from scheduler.git.sources import Sources
from scheduler.ledger import (
    AsyncLedger,
    EngineLedger,
    Ledger,
    open_async_ledger,
)
from scheduler.monitoring import Metrics, Monitor
from scheduler.notifier import Notifier, open_notifier
from scheduler.notify import sentry
from scheduler.operations.acts import Operations
from scheduler.rounds import (
    Preflights,
    prepare_and_report,
    prune_ledger,
    recover_and_report,
    scan_and_report,
    tick_and_report,
)
from scheduler.slot_loop import SlotLoop
from scheduler.taskcluster import connect_service
from scheduler.taskcluster_calls import CallObserver
from scheduler.web.draining import STOP_BEYOND_GRACE

log = structlog.get_logger("tc_scheduler.service")

# After SIGTERM, what is in flight (ticks, rounds, scans, acts asked through the API) gets this
# long in all to finish; then it is cut off and the claims of its fires are released.
SHUTDOWN_GRACE = timedelta(seconds=30)
# Once the work is done or cut off: recording what ended and releasing the claims left (ledger
# writes of milliseconds; connecting to PostgreSQL gives up after 10 s), closing the ledger,
# the Taskcluster session and Sentry (which sends what it holds for up to 2 s).
WIND_DOWN = timedelta(seconds=10)
# The longest a stop takes from SIGTERM: the grace, the API closing, the wind-down. Kubernetes'
# terminationGracePeriodSeconds and systemd's TimeoutStopSec (deploy/) are longer.
SHUTDOWN_BUDGET = SHUTDOWN_GRACE + STOP_BEYOND_GRACE + WIND_DOWN
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
    """An engine on `ledger`, with its git cache, HTTP session of remote reads (git's heads and
    Mercurial's), Taskcluster session (its requests told to `observe`) and render workers."""
    render_pool = (
        ProcessPoolExecutor(config.render_workers, mp_context=multiprocessing.get_context("spawn"))
        if config.render_workers
        else None
    )
    try:
        remote = RemoteHttp(connections=config.remote_connections)
        async with remote as http, connect_service(config, observe=observe) as clients:
            # One HTTP session for every remote read: Mercurial's, and git's branch heads.
            source = Sources(GitSource(config.state_dir / "git", http=http), HgSource(http))
            yield Engine(config, ledger, source, clients, clock=clock, render_pool=render_pool)
    finally:
        if render_pool is not None:
            render_pool.shutdown(cancel_futures=True)


class Service(NamedTuple):
    """The parts of a service: its engine, the notifier that reports what it does, and the
    one boundary to its ledger, which each part holds as its own port."""

    engine: Engine
    notifier: Notifier
    ledger: AsyncLedger[Ledger]

    def operations(self, monitor: Monitor | None = None) -> Operations:
        """The operator's acts and reads of this service, reported as its own work is (and
        the fires they make counted by `monitor`, if given)."""
        return Operations(self.engine, self.ledger, self.notifier, monitor)


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


def _rounds(service: Service, running: _Running, monitor: Monitor) -> AsyncIOScheduler:
    """The rounds between ticks, on real time: watching, delivering, recovering, pruning and
    the expiry scans; not started yet."""
    engine, notifier, config = service.engine, service.notifier, service.engine.config
    supervised = running.supervised
    ticker = AsyncIOScheduler(timezone=UTC)
    repeat = {
        "coalesce": True,
        "max_instances": 1,
        "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
    }
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
    return ticker


async def run(
    config: Config,
    *,
    clock: Clock = utc_now,
    stop: asyncio.Event | None = None,
    grace: timedelta = SHUTDOWN_GRACE,
    prepare_ahead: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop`): a tick at start, then one per 15-minute slot,
    each slot prepared ahead unless not `prepare_ahead` (a benchmark's comparison).

    On stop: acts through the API are refused and it says it is not ready at once; what is in
    flight gets `grace` to finish (the API answering reads meanwhile), then is cut off; then
    the API closes and the claims left are released (SHUTDOWN_BUDGET in all).
    """
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

        preflights = Preflights(engine, notifier)

        async def tick_then_preflight(moment: datetime) -> None:
            results = await tick_and_report(engine, notifier, moment, monitor)
            await preflights.after_tick(results)

        # The slots' timing is the engine's clock's, which tests and benchmarks move: each slot
        # prepared ahead, and its tick started (never awaited: a slow tick must not hold the
        # next one back) once it has begun. The other rounds keep to real time.
        slots = SlotLoop(
            engine.clock,
            prepare=(lambda slot: prepare_and_report(engine, slot)) if prepare_ahead else None,
            tick=lambda moment: start(tick_then_preflight(moment)),
        )
        slot_loop = asyncio.create_task(slots.run())
        ticker = _rounds(service, running, monitor)
        ticker.start()
        operations = service.operations(monitor)
        # The web app is imported here, by `run` alone: `tick` and the other commands that open
        # the service do without FastAPI, Starlette, uvicorn and Jinja (a third of their start-up).
        from scheduler.web.server import ApiServer  # noqa: PLC0415

        api = ApiServer(operations, config.api, monitor)
        api.start()
        # What Taskcluster would refuse, found before anything fires; then the start-up tick:
        # the current slot, and catch-up since the last one.
        start(preflights.check(config.projects))
        start(tick_then_preflight(engine.clock()))
        if config.hooks_dir is not None:  # read once now: the hooks page's readers never wait
            start(operations.hooks_overview())
        await stop.wait()
        # First, before anything stops: no new act, and the load balancer told not to send any.
        api.stop_taking_acts()
        log.info("stopping", in_flight=len(running.tasks))
        ticker.shutdown(wait=False)
        slot_loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slot_loop
        # One grace for everything in flight: the acts through the API, then the rest.
        ends = loop.time() + grace.total_seconds()
        await api.stop(grace)
        await running.drain(timedelta(seconds=max(0.0, ends - loop.time())))
        await engine.release_all()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    log.info("stopped")
