"""Branch heads read over git's smart HTTP without a process (protocol v2 `ls-refs`, or a v0/v1
advertisement), against a real `git http-backend`; and the whole engine on such a repository."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader

from scheduler.git.pkt_line import (
    ls_refs_request,
    packet,
    parse_advertisement,
    parse_ls_refs,
)
from scheduler.git.process import SourceError
from scheduler.git.remote_http import RemoteHttp, read_body
from scheduler.git.smart_http import ADVERTISEMENT_TYPE, RESULT_TYPE
from scheduler.git.source import GitSource
from scheduler.ledger import FireState
from tests.emulator import Emulator
from tests.support.engine import fires, tick
from tests.support.git_http import GitHttpServer, serving
from tests.support.http_serving import QuietHandler, on_loopback
from tests.support.projects import DAY, HOURLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository

T = TypeVar("T")
CRON = "jobs:\n  - name: nightly\n    job: {type: decision-task, treeherder-symbol: N}\n"
UPLOAD_PACK = ("POST", "/proj/git-upload-pack")
INFO_REFS = ("GET", "/proj/info/refs?service=git-upload-pack")


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "served" / "proj", {".cron.yml": CRON})


@pytest.fixture
def server(repository: Repository) -> Iterator[GitHttpServer]:
    with serving(repository.path.parent) as server:
        yield server


def with_source(
    tmp_path: Path, work: Callable[[GitSource, RemoteHttp], Awaitable[T]], *, attempts: int = 2
) -> T:
    async def main() -> T:
        # No waiting between attempts: the retries are counted, not timed.
        async with RemoteHttp(attempts=attempts, max_wait=0.0) as http:
            source = GitSource(tmp_path / "cache", attempts=attempts, max_wait=0.0, http=http)
            return await work(source, http)

    return asyncio.run(main())


def ls_remote(url: str, ref: str) -> str:
    listed = subprocess.run(
        ["git", "ls-remote", "--", url, ref], check=True, capture_output=True, text=True
    ).stdout
    [line] = listed.splitlines()
    return line.split("\t")[0]


def test_the_head_read_over_protocol_v2_is_what_git_ls_remote_reads(
    tmp_path: Path, repository: Repository, server: GitHttpServer
) -> None:
    repository.git("branch", "releases/v1")
    moved = repository.commit({".cron.yml": CRON + "# moved\n"})
    url = server.repository_url("proj")

    async def heads(source: GitSource, http: RemoteHttp) -> list[str]:
        return [await source.head(url, "main"), await source.head(url, "releases/v1")]

    main, release = with_source(tmp_path, heads)

    assert main == moved == ls_remote(url, "refs/heads/main")
    assert release == ls_remote(url, "refs/heads/releases/v1") != main
    # The capabilities once, then one ls-refs per head; all in protocol v2, and no git ran.
    assert server.requests[:3] == [INFO_REFS, UPLOAD_PACK, UPLOAD_PACK]
    assert server.protocols[:3] == ["version=2"] * 3
    assert set(server.agents[:3]) == {"tc-scheduler"}


def test_an_unchanged_head_over_http_reads_no_files(
    tmp_path: Path, repository: Repository, server: GitHttpServer
) -> None:
    url = server.repository_url("proj")

    async def snapshots(source: GitSource, http: RemoteHttp) -> list[Any]:
        first = await source.snapshot(url, "main")
        fetched = source.commands["fetch"]
        source.commands.clear()
        second = await source.snapshot(url, "main")
        unchanged = Counter(source.commands)
        repository.commit({".cron.yml": "jobs: []\n"})
        third = await source.snapshot(url, "main")
        return [first, fetched, second, unchanged, third, source.commands["fetch"]]

    first, fetched, second, unchanged, third, fetched_again = with_source(tmp_path, snapshots)

    assert first == second
    assert fetched == 1
    assert first.files[".cron.yml"] == CRON
    assert unchanged == Counter()  # no git process at all: one request only
    assert third.revision == repository.head
    assert third.files[".cron.yml"] == "jobs: []\n"
    assert fetched_again == 1


def test_a_missing_branch_is_reported_as_git_reports_it(
    tmp_path: Path, repository: Repository, server: GitHttpServer
) -> None:
    # `ref-prefix refs/heads/main` also lists this branch; it is not `main`.
    repository.git("branch", "--quiet", "-m", "main", "main-old")
    url = server.repository_url("proj")

    for branch in ("releases/v9", "main"):

        async def read(source: GitSource, http: RemoteHttp, branch: str = branch) -> str:
            return await source.head(url, branch)

        with pytest.raises(SourceError, match=f"no branch '{branch}'") as raised:
            with_source(tmp_path, read)
        assert f"refs/heads/{branch}" in str(raised.value)
        assert url in str(raised.value)
    # The server answered: a missing branch is not worth another attempt.
    assert server.requests == [INFO_REFS, UPLOAD_PACK] * 2
    assert set(server.agents) == {"tc-scheduler"}


def test_a_server_speaking_only_protocol_v1_is_read_from_its_advertisement(
    tmp_path: Path, repository: Repository
) -> None:
    with serving(repository.path.parent, protocol_v2=False) as server:
        url = server.repository_url("proj")
        head = with_source(tmp_path, lambda source, http: source.head(url, "main"))
        with pytest.raises(SourceError, match="no branch 'other'"):
            with_source(tmp_path, lambda source, http: source.head(url, "other"))

    assert head == repository.head == ls_remote(repository.url, "refs/heads/main")
    assert server.requests == [INFO_REFS, INFO_REFS]
    assert set(server.agents) == {"tc-scheduler"}


def test_a_dumb_http_server_is_left_to_git(tmp_path: Path, repository: Repository) -> None:
    repository.git("update-server-info")
    with serving(repository.path.parent, smart=False) as server:
        url = server.repository_url("proj/.git")

        async def read(source: GitSource, http: RemoteHttp) -> tuple[str, Counter[str]]:
            return await source.head(url, "main"), source.commands

        head, commands = with_source(tmp_path, read)

    assert head == repository.head
    assert commands == Counter({"ls-remote": 1})


def test_a_server_error_once_is_retried(
    tmp_path: Path, repository: Repository, server: GitHttpServer
) -> None:
    server.faults.count = 1
    url = server.repository_url("proj")

    head = with_source(tmp_path, lambda source, http: source.head(url, "main"))

    assert head == repository.head
    assert server.requests == [INFO_REFS, INFO_REFS, UPLOAD_PACK]
    assert set(server.agents) == {"tc-scheduler"}


def test_a_server_error_that_lasts_fails_after_every_attempt(
    tmp_path: Path, server: GitHttpServer
) -> None:
    server.faults.count = 10
    url = server.repository_url("proj")

    with pytest.raises(SourceError) as raised:
        with_source(tmp_path, lambda source, http: source.head(url, "main"), attempts=3)

    message = str(raised.value)
    assert f"could not list branch 'main' of {url} (3 attempts)" in message
    assert "info/refs answered HTTP 503" in message
    assert len(server.requests) == 3


def test_basic_auth_credentials_work_and_never_reach_messages_or_logs(
    tmp_path: Path, repository: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cret-password"
    caplog.set_level(logging.DEBUG)
    with serving(repository.path.parent, credentials=("robot", secret)) as server:
        good = server.repository_url("proj", user=f"robot:{secret}")
        bad = server.repository_url("proj", user="robot:wrong-s3cret")
        snapshot = with_source(tmp_path, lambda source, http: source.snapshot(good, "main"))
        with pytest.raises(SourceError) as raised:
            with_source(tmp_path / "other", lambda source, http: source.head(bad, "main"))

    assert snapshot.revision == repository.head
    assert snapshot.files[".cron.yml"] == CRON
    message = str(raised.value)
    assert "info/refs answered HTTP 401" in message
    assert server.repository_url("proj", user="***") in message
    assert "wrong-s3cret" not in message
    # A refusal is final: one request, not one per attempt.
    assert server.requests[-1:] == [INFO_REFS]
    assert server.authorizations[-1]
    assert secret not in caplog.text
    assert "wrong-s3cret" not in caplog.text
    assert secret not in repr(snapshot)


def test_the_engine_ticks_a_project_served_over_http(
    tmp_path: Path, emulator: Emulator, repository: Repository, server: GitHttpServer
) -> None:
    repository.commit({".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE})
    served = project("proj", repository, fetch_from=server.repository_url("proj"))
    config = make_config(emulator, tmp_path, served)

    [result] = tick(config, emulator, DAY.replace(hour=10))
    [again] = tick(config, emulator, DAY.replace(hour=11))

    assert result.error is None
    assert again.error is None
    assert [f.state for f in result.fires + again.fires] == [FireState.CREATED] * 2
    assert {record.revision for record in fires(config)} == {repository.head}
    # Heads by ls-refs from the service; files fetched by git itself from the same server.
    assert server.agents.count("tc-scheduler") == 4
    assert any(agent and agent.startswith("git/") for agent in server.agents)


def test_a_sha256_repository_is_asked_in_its_object_format(tmp_path: Path) -> None:
    served = tmp_path / "served"
    repository = Repository(served / "proj", {".cron.yml": CRON}, object_format="sha256")
    head = repository.head
    with serving(served) as server:
        url = server.repository_url("proj")
        read = with_source(tmp_path, lambda source, http: source.head(url, "main"))

    assert len(head) == 64
    assert read == head
    assert server.agents == ["tc-scheduler", "tc-scheduler"]


def test_a_url_that_is_none_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"is not a URL \(Port out of range"):
        with_source(tmp_path, lambda source, http: source.head("https://h:99999/r", "main"))


# -- pkt-lines, as gitprotocol-common and gitprotocol-v2 write them -----------------------------


def test_an_ls_refs_request_is_framed_as_git_frames_it() -> None:
    sha1 = frozenset({"ls-refs=unborn", "object-format=sha1"})
    assert ls_refs_request(["refs/heads/main"], sha1) == (
        b"0014command=ls-refs\n0001001fref-prefix refs/heads/main\n0000"
    )
    sha256 = ls_refs_request(["refs/heads/a"], frozenset({"object-format=sha256"}))
    assert b"0019object-format=sha256\n0001" in sha256


def test_answers_that_are_not_git_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="the server said: access denied"):
        parse_ls_refs(b"0016ERR access denied\n")
    with pytest.raises(ValueError, match="past the end"):
        parse_ls_refs(b"0040" + b"0" * 40)
    with pytest.raises(ValueError, match="no pkt-line length"):
        parse_advertisement(b"<html>")
    with pytest.raises(ValueError, match="without a flush"):
        parse_ls_refs(f"003a{'a' * 40} refs/heads/x\n".encode())
    empty_v1 = parse_advertisement(
        b"001e# service=git-upload-pack\n0000"
        + f"0047{'0' * 40} capabilities^{{}}\0ofs-delta\n".encode()
        + b"0000"
    )
    assert empty_v1.version == 0
    assert empty_v1.refs == {}


def test_a_v1_advertisement_longer_than_one_read_is_read_whole(
    tmp_path: Path, repository: Repository
) -> None:
    # Thousands of refs (a big repository's tags and branches): the advertisement arrives in
    # many TCP segments, and a branch listed late in it must still be found.
    packed = "".join(f"{repository.head} refs/tags/t{n:05}\n" for n in range(6000))
    (repository.path / ".git" / "packed-refs").write_text(packed)
    repository.git("branch", "zz-late")
    with serving(repository.path.parent, protocol_v2=False) as server:
        url = server.repository_url("proj")
        head = with_source(tmp_path, lambda source, http: source.head(url, "zz-late"))

    assert head == repository.head


def test_a_body_arriving_in_pieces_is_read_to_its_end_or_the_limit() -> None:
    async def main() -> tuple[bytes, bytes]:
        loop = asyncio.get_running_loop()
        protocol = BaseProtocol(loop)
        # A connected socket under the reader (a reader without one takes its end as lost).
        ours, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, ours)
        pieces = [b"first ", b"second ", b"third"]

        async def arriving(stream: StreamReader) -> None:
            for piece in pieces:
                # Each piece reaches the reader only once it waits for more.
                await asyncio.sleep(0)
                stream.feed_data(piece)
            stream.feed_eof()

        whole = StreamReader(protocol, 2**16, loop=loop)
        feeding = asyncio.create_task(arriving(whole))
        read = await read_body(whole, 1024)
        await feeding
        capped = StreamReader(protocol, 2**16, loop=loop)
        feeding = asyncio.create_task(arriving(capped))
        limited = await read_body(capped, 10)
        await feeding
        transport.close()
        theirs.close()
        return read, limited

    whole, limited = asyncio.run(main())
    assert whole == b"first second third"
    assert limited == b"first seco"


def test_an_advertisement_cut_short_is_not_taken_for_the_list_of_refs() -> None:
    line = packet(f"{'a' * 40} refs/heads/main\0ofs-delta")
    assert parse_advertisement(line + b"0000").refs == {"refs/heads/main": "a" * 40}
    with pytest.raises(ValueError, match="without a flush"):
        parse_advertisement(line)
    capabilities = packet("version 2") + packet("agent=git/2") + packet("ls-refs=unborn")
    assert "ls-refs=unborn" in parse_advertisement(capabilities + b"0000").capabilities
    with pytest.raises(ValueError, match="without a flush"):
        parse_advertisement(capabilities)


@contextmanager
def moved_to(target: str) -> Iterator[str]:
    """A server answering every request with a 301 to the same path under `target` (a
    repository moved to another host): its own base URL while the block runs."""

    class Moved(QuietHandler):
        def do_GET(self) -> None:
            self.answer(301, b"", {"Location": target + self.path})

        def do_POST(self) -> None:
            self.do_GET()

    with on_loopback(Moved) as moved:
        yield moved


def test_a_repository_redirected_to_another_host_is_read_as_git_reads_it(
    tmp_path: Path, repository: Repository, server: GitHttpServer
) -> None:
    # The same server under another host name: another origin, as a repository moved to
    # another host is. Its head is what git reads there, credentials or not.
    elsewhere = server.url.replace("127.0.0.1", "localhost")
    with moved_to(elsewhere) as old_host:
        url = f"{old_host}/proj"
        head = with_source(tmp_path, lambda source, http: source.head(url, "main"))
        assert head == repository.head == ls_remote(url, "refs/heads/main")


def test_what_a_server_says_in_an_err_packet_is_told_without_the_credentials(
    tmp_path: Path,
) -> None:
    secret = "s3cret-token"

    class Echoing(QuietHandler):
        # A v2 server whose ls-refs answer is an ERR quoting the credentials it was sent.
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            advertised = packet("version 2") + packet("ls-refs") + b"0000"
            self.answer(200, advertised, {"Content-Type": ADVERTISEMENT_TYPE})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            said = f"ERR no access for robot:{secret}"
            self.answer(200, packet(said), {"Content-Type": RESULT_TYPE})

    with on_loopback(Echoing) as echoing:
        url = echoing.replace("http://", f"http://robot:{secret}@") + "/proj"
        with pytest.raises(SourceError) as raised:
            with_source(tmp_path, lambda source, http: source.head(url, "main"))

    message = str(raised.value)
    assert "the server said: no access for robot:***" in message
    assert secret not in message
