"""Serving the API with uvicorn inside the service's own event loop, beside the scheduler, and
stopping it within a bound. A port that cannot be bound is logged and left: scheduling never
depends on the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from datetime import timedelta

import structlog
import uvicorn

from scheduler.config.model import ApiSettings
from scheduler.durations import format_duration
from scheduler.operations.acts import Operations
from scheduler.web.app import Monitoring, create_app
from scheduler.web.draining import WIND_UP, Draining

log = structlog.get_logger("tc_scheduler.web")


class _Server(uvicorn.Server):
    """uvicorn's server, leaving signals to the service: uvicorn's own handlers would close the
    API at SIGTERM, before acts are refused and those running are given their grace."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    def __init__(self, operations: Operations, settings: ApiSettings, monitor: Monitoring) -> None:
        self._operations = operations
        self._settings = settings
        self._monitor = monitor
        self._server: uvicorn.Server | None = None
        self._draining = Draining()
        self._task: asyncio.Task[None] | None = None
        self.url: str | None = None  # once serving: the port is known only then (0 picks one)

    def start(self) -> None:
        settings = self._settings
        if not settings.enabled:
            return
        try:
            sock = socket.create_server((settings.host, settings.port))
        except OSError as error:
            log.error(
                "cannot serve the API; scheduling goes on without it",
                listen=f"{settings.host}:{settings.port}",
                error=error.strerror or str(error),
            )
            return
        host, port = sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            create_app(self._operations, settings, self._monitor, self._draining),
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(WIND_UP.total_seconds()),
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        log.info("serving the API", url=self.url, public_reads=settings.public_reads)

    def stop_taking_acts(self) -> None:
        """From now on `/readyz` answers 503 and every act 503 `shutting-down`; reads go on."""
        self._draining.stop_taking_acts()

    async def stop(self, grace: timedelta = timedelta(0)) -> None:
        """Stop taking acts, give those running up to `grace` while the API answers on (an act
        cut off then is answered 503), and close: within `grace` + STOP_BEYOND_GRACE."""
        if self._server is None or self._task is None:
            self.stop_taking_acts()
            return
        cut_off = await self._draining.finish(grace, WIND_UP)
        if cut_off:
            log.warning(
                "acts still running when the grace ran out were cut off",
                acts=cut_off,
                grace=format_duration(grace),
            )
        self._server.should_exit = True
        await self._task
