"""Real Mercurial repositories for tests, served by `hg serve`, in front of which a pushlog answers
`json-pushes` as hg.mozilla.org documents it (version 2); everything else goes to hgweb as is.

hg.mozilla.org's pushlog is an extension of its own, which `hg serve` does not have: the test
records each push it makes (`HgRepository.push`), as the extension records one on `hg push`.
https://mozilla-version-control-tools.readthedocs.io/en/latest/hgmo/pushlog.html
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from tests.support.http_serving import QuietHandler, on_loopback
from tests.support.repos import write_files

# The hg that pip installed beside this Python (`mercurial` in the test dependencies).
_BESIDE_PYTHON = Path(sys.executable).with_name("hg")
HG = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else shutil.which("hg") or "hg"
_ENVIRONMENT = {
    **os.environ,
    "HGRCPATH": "",  # no system or user configuration
    "HGPLAIN": "1",
    "HGENCODING": "utf-8",
    "HGUSER": "Test <test@example.com>",
    "LC_ALL": "C",
    # hgweb answers requests in threads, and Mercurial's lazy imports race there (a module
    # half-loaded by one request is seen by another: HTTP 500s). Import everything up front.
    "HGDEMANDIMPORT": "disable",
}


@dataclass(frozen=True)
class Push:
    """One entry of the pushlog: its changesets in revlog order, when, and who pushed."""

    pushlog_id: int
    changesets: tuple[str, ...]
    date: int
    user: str


class HgRepository:
    """A Mercurial repository on disk; its changesets reach the pushlog when `push`ed."""

    def __init__(self, path: Path, files: Mapping[str, str | bytes] | None = None) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.hg("init")
        self.pushes: list[Push] = []
        self._unpushed: list[str] = []
        self.commit(files or {"README": "test repository\n"}, "initial")

    def hg(self, *arguments: str) -> str:
        return subprocess.run(
            [HG, *arguments],
            cwd=self.path,
            env=_ENVIRONMENT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def commit(
        self,
        files: Mapping[str, str | bytes | None],
        message: str = "change",
        *,
        branch: str | None = None,
    ) -> str:
        """Write (or, for None, delete) files and commit (on `branch`, a new named branch, if
        given); returns the new changeset."""
        write_files(self.path, files)
        if branch is not None:
            self.hg("branch", "--force", branch)
        self.hg("commit", "--addremove", "--quiet", "--message", message)
        node = self.hg("log", "--rev", ".", "--template", "{node}")
        self._unpushed.append(node)
        return node

    def update(self, revision: str) -> None:
        self.hg("update", "--quiet", "--clean", revision)

    def push(self, *, date: int, user: str = "pusher@example.com") -> Push:
        """Record the changesets committed since the last push as the next push."""
        push = Push(len(self.pushes) + 1, tuple(self._unpushed), date, user)
        self.pushes.append(push)
        self._unpushed = []
        return push


@dataclass
class Faults:
    """Answers the front gives instead of the real ones: `status` for the next `count` requests."""

    count: int = 0
    status: int = 503

    def take(self) -> int | None:
        if self.count <= 0:
            return None
        self.count -= 1
        return self.status


@contextmanager
def served(repository: HgRepository) -> Iterator[HgServer]:
    """`hg serve` of `repository` on a free loopback port, behind the pushlog front."""
    process = subprocess.Popen(
        [
            HG,
            "serve",
            "--address",
            "127.0.0.1",
            "--port",
            "0",
            "--print-url",
            "--accesslog",
            os.devnull,
            # hgweb's tracebacks (behind its HTTP 500s), beside the repository.
            "--errorlog",
            str(repository.path.parent / "hg-errors.log"),
        ],
        cwd=repository.path,
        env=_ENVIRONMENT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = process.stdout.readline().strip()
        port = urlsplit(printed).port
        assert port, f"hg serve printed no URL: {printed!r}"
        server = HgServer(repository, f"http://127.0.0.1:{port}")
        with server.running():
            yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


class HgServer:
    """The pushlog front of one `hg serve`: its `url` is the repository's URL."""

    def __init__(self, repository: HgRepository, upstream: str) -> None:
        self.repository = repository
        self.upstream = upstream
        self.faults = Faults()
        # The path (and query) of every request the front was sent, in order.
        self.requests: list[str] = []
        self.url = ""

    @contextmanager
    def running(self) -> Iterator[None]:
        front = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                front.requests.append(self.path)
                status = front.faults.take()
                if status is not None:
                    self.answer(status, b"the front is down for a moment")
                    return
                parts = urlsplit(self.path)
                if parts.path.rstrip("/") == "/json-pushes":
                    status, body = front.json_pushes(parse_qs(parts.query))
                    self.answer(status, body, {"Content-Type": "application/json"})
                    return
                self.answer(*front.from_hgweb(self.path))

        with on_loopback(Handler) as self.url:
            yield

    def from_hgweb(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.upstream + path, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json_pushes(self, query: Mapping[str, list[str]]) -> tuple[int, bytes]:
        """`json-pushes` as the pushlog extension answers it, for the parameters used here."""
        if query.get("version") != ["2"]:
            return 400, json.dumps("this pushlog answers version 2 only").encode()
        pushes = self.repository.pushes
        if "changeset" in query:
            [changeset] = query["changeset"]
            status, body = self.from_hgweb(f"/json-rev/{quote(changeset, safe='')}")
            if status != 200:
                return 404, json.dumps(f"unknown revision '{changeset}'").encode()
            node = json.loads(body)["node"]
            pushes = [push for push in pushes if node in push.changesets]
        tips_only = query.get("tipsonly") == ["1"]
        answer = {
            "lastpushid": len(self.repository.pushes),
            "pushes": {
                str(push.pushlog_id): {
                    "changesets": list(push.changesets[-1:] if tips_only else push.changesets),
                    "date": push.date,
                    "user": push.user,
                }
                for push in pushes
            },
        }
        return 200, json.dumps(answer).encode()
