"""A real smart-HTTP git server for tests and benchmarks: `git http-backend` (the CGI program of
the git installation) behind a threaded HTTP server on a free loopback port.

It serves every repository under `root` at `<url>/<path below root>`; it can require basic
auth, answer a status instead for the next few requests, and speak only protocol v0/v1 (by not
passing the client's `Git-Protocol` header on to git, as an old server would not).
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.hg import Faults
from tests.support.http_serving import QuietHandler, on_loopback

_EXEC_PATH = subprocess.run(
    ["git", "--exec-path"], check=True, capture_output=True, text=True
).stdout.strip()
HTTP_BACKEND = str(Path(_EXEC_PATH) / "git-http-backend")


@dataclass
class GitHttpServer:
    """What the server does and was asked: `requests` holds (method, path with query) of each,
    `protocols`, `authorizations` and `agents` the headers each came with."""

    root: Path
    url: str = ""
    protocol_v2: bool = True
    # False: a dumb server, answering files under `root` as they are (after update-server-info).
    smart: bool = True
    credentials: tuple[str, str] | None = None
    # Seconds every answer is held back, as a distant server's round trip would (benchmarks).
    latency: float = 0.0
    # At most this many `git http-backend` processes at once (None: one per request), as a
    # server's pool of workers runs them (benchmarks: a remote host's git processes do not take
    # the run queue of the machine the service runs on, as fifty at once would here).
    backends: int | None = None
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str]] = field(default_factory=list)
    protocols: list[str | None] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    agents: list[str | None] = field(default_factory=list)

    def repository_url(self, name: str, *, user: str | None = None) -> str:
        """The URL of the repository at `root/name`, with `user` (`name:password`) in it."""
        host = urlsplit(self.url).netloc
        return f"http://{user + '@' if user else ''}{host}/{name}"


@contextmanager
def serving(root: Path, **settings: Any) -> Iterator[GitHttpServer]:
    """`git http-backend` serving the repositories under `root` until the block ends."""
    front = GitHttpServer(root.resolve(), **settings)
    pool = (
        threading.BoundedSemaphore(front.backends) if front.backends else contextlib.nullcontext()
    )

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            self._serve(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _serve(self, body: bytes) -> None:
            front.requests.append((self.command, self.path))
            front.protocols.append(self.headers.get("Git-Protocol"))
            front.authorizations.append(self.headers.get("Authorization"))
            front.agents.append(self.headers.get("User-Agent"))
            if front.latency:
                time.sleep(front.latency)
            status = front.faults.take()
            if status is not None:
                self.answer(status, b"down for a moment")
                return
            if front.credentials is not None and not self._authorized():
                self.answer(401, b"who are you?", {"WWW-Authenticate": 'Basic realm="git"'})
                return
            status, headers, content = self._backend(body) if front.smart else self._file()
            self.answer(status, content, headers)

        def _file(self) -> tuple[int, dict[str, str], bytes]:
            path = (front.root / urlsplit(self.path).path.lstrip("/")).resolve()
            if not path.is_file() or not path.is_relative_to(front.root):
                return 404, {"Content-Type": "text/plain"}, b"no such file"
            return 200, {"Content-Type": "text/plain"}, path.read_bytes()

        def _authorized(self) -> bool:
            assert front.credentials is not None
            expected = base64.b64encode(":".join(front.credentials).encode()).decode()
            return self.headers.get("Authorization") == f"Basic {expected}"

        def _backend(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
            parts = urlsplit(self.path)
            environment = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(front.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "HOME": str(front.root),
                "REQUEST_METHOD": self.command,
                "PATH_INFO": parts.path,
                "QUERY_STRING": parts.query,
                "CONTENT_TYPE": self.headers.get("Content-Type") or "",
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
            if front.protocol_v2 and self.headers.get("Git-Protocol"):
                environment["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            if front.credentials is not None:
                environment["REMOTE_USER"] = front.credentials[0]
            with pool:
                result = subprocess.run(
                    [HTTP_BACKEND], input=body, env=environment, capture_output=True, check=False
                )
            head, _, content = result.stdout.partition(b"\r\n\r\n")
            status, headers = 200, {}
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers[name] = value.strip()
            return status, headers, content

    with on_loopback(Handler) as front.url:
        yield front
