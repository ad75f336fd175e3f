"""A request handler served on a free loopback port in a thread of its own, for the local
servers the tests write (an hgweb front, git's http-backend, a task's proxy)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that answers in one call and logs nothing (a test reads what it
    records instead)."""

    def answer(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Send `body` with `status` and `headers` (text/plain unless they say otherwise)."""
        self.send_response(status)
        for name, value in {"Content-Type": "text/plain", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # A reader that gave up (its other read failed) has hung up: nothing to say.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # socketserver's backlog of 5 drops the connections a client opens at once beyond it (a
    # service reading a hundred heads), which then wait a second to try again; a real server's
    # backlog is larger.
    request_queue_size = 128


@contextmanager
def on_loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` until the block ends; yields the server's `http://127.0.0.1:PORT`."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=30)
