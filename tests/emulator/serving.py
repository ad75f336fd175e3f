"""Serving an ASGI app on 127.0.0.1 from a background thread, for tests and benchmarks.

One helper for every local fake (Taskcluster, Slack, Sentry): bind, start, report the URL, stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self

import uvicorn

STARTUP_TIMEOUT = 10.0


@dataclass
class Served:
    """A running server: its base URL and a way to stop it."""

    url: str
    port: int
    server: _Server
    thread: threading.Thread | None

    def stop(self, *, wait: bool = False) -> None:
        """Stop serving; the thread winds down on its own (uvicorn idles 100 ms) unless `wait`."""
        self.server.exit_soon()
        if wait and self.thread is not None:
            self.thread.join(timeout=STARTUP_TIMEOUT)


def bind(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without
    # it a response's header and body writes wait on the client's delayed ACK (40 ms a call).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, woken at once by `exit_soon` instead of polling every 100 ms."""

    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=1.0)

    def exit_soon(self) -> None:
        # Idle keep-alive connections would otherwise hold shutdown for 100 ms polls.
        self.force_exit = True
        self.should_exit = True
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)


def _server(app: Any) -> _Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        # The fakes must accept the large bodies the rules reject themselves.
        h11_max_incomplete_event_size=16 * 1024 * 1024,
    )
    return _Server(config)


def start(app: Any, port: int = 0) -> Served:
    """Serve `app` in a daemon thread; returns once it accepts connections."""
    sock = bind(port)
    server = _server(app)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True, name="fake-http"
    )
    thread.start()
    ready = threading.Event()
    while not server.started and thread.is_alive():
        ready.wait(0.005)
    if not server.started:
        raise RuntimeError("the local server did not start")
    actual_port = sock.getsockname()[1]
    return Served(f"http://127.0.0.1:{actual_port}", actual_port, server, thread)


@contextmanager
def serving(app: Any, port: int = 0) -> Iterator[Served]:
    served = start(app, port)
    try:
        yield served
    finally:
        served.stop()


class LocalServer:
    """Base of the local fakes: `start`, `stop`, `url`, `port`, and `running()` to use one in a
    `with` block. Subclasses set `app` (ASGI) and call `super().__init__()`."""

    app: Any

    def __init__(self) -> None:
        self._served: Served | None = None

    @classmethod
    @contextmanager
    def running(cls, *args: Any, **kwargs: Any) -> Iterator[Self]:
        fake = cls(*args, **kwargs).start()
        try:
            yield fake
        finally:
            fake.stop()

    def start(self) -> Self:
        self._served = start(self.app)
        return self

    def stop(self) -> None:
        if self._served is not None:
            self._served.stop()
            self._served = None

    @property
    def url(self) -> str:
        return self._running().url

    @property
    def port(self) -> int:
        return self._running().port

    def _running(self) -> Served:
        if self._served is None:
            name = type(self).__name__
            raise RuntimeError(f"the {name} is not running; use {name}.running() or start()")
        return self._served


def serve_forever(app: Any, sock: socket.socket) -> None:
    """Serve in the calling thread until interrupted (the standalone entry points)."""
    server = _server(app)
    asyncio.run(server.serve(sockets=[sock]))
