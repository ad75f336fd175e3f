"""Serving the API with uvicorn inside the service's own event loop, beside the scheduler.

A port that cannot be bound is logged and left: scheduling never depends on the API.
"""

from __future__ import annotations

import asyncio
import socket

import structlog
import uvicorn

from scheduler.config.model import ApiSettings
from scheduler.operations.acts import Operations
from scheduler.web.app import Monitoring, create_app

log = structlog.get_logger("tc_scheduler.web")


class ApiServer:
    def __init__(self, operations: Operations, settings: ApiSettings, monitor: Monitoring) -> None:
        self._operations = operations
        self._settings = settings
        self._monitor = monitor
        self._server: uvicorn.Server | None = None
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
            create_app(self._operations, settings, self._monitor),
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        log.info("serving the API", url=self.url, public_reads=settings.public_reads)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
