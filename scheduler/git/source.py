"""Repositories: the head revision of a branch and the files at a revision, read with real git
(heads of http(s) repositories over the engine's HTTP session instead, `smart_http.py`).

Fetched revisions live in one shallow bare repository per URL (`repository.py`), shared by every
process given the same cache directory; file contents are also kept in memory by revision.
`Snapshot` (with its `Pushed`) and that memory serve Mercurial's source (`hg.py`) as well.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar
from urllib.parse import urlsplit

from scheduler.common.redaction import redact
from scheduler.git.parsing import check_branch, check_paths, check_revision, check_url, find_ref
from scheduler.git.process import GitRunner, RetryableSourceError, SourceError, retrying
from scheduler.git.remote_http import RemoteHttp
from scheduler.git.repository import CacheRepository, UnreadableError, cache_name, keep_ref
from scheduler.git.smart_http import NotSmartError, SmartHttpHeads

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PATHS = (".cron.yml", ".taskcluster.yml")
# Far above any real `.cron.yml` or `.taskcluster.yml`; the YAML parser stops at 256 KiB itself.
MAX_FILE_SIZE = 1024 * 1024
# Revisions whose files are kept in memory, across all repositories: a few per project.
MEMORY_REVISIONS = 1024
# Schemes whose heads are read over the engine's HTTP session rather than by a git process.
_HTTP_SCHEMES = ("https", "http")


@dataclass(frozen=True)
class Pushed:
    """The push that brought a revision, as a Mercurial pushlog records it: its id, when (seconds
    since the epoch), and who pushed."""

    pushlog_id: str
    pushdate: int
    user: str


@dataclass(frozen=True)
class Snapshot:
    """A branch's head revision and some of its files; a file missing at the revision is None.

    `push`: the push of the revision, for repositories that keep a pushlog (Mercurial's).
    """

    url: str
    branch: str
    revision: str
    files: Mapping[str, str | None] = field(hash=False)
    push: Pushed | None = None

    def __repr__(self) -> str:
        return (
            f"Snapshot(url={redact(self.url)!r}, branch={self.branch!r}, "
            f"revision={self.revision!r}, files={sorted(self.files)!r}, push={self.push!r})"
        )


class FileMemory:
    """Files already read, by repository URL and revision: a revision's files never change."""

    def __init__(self, revisions: int = MEMORY_REVISIONS) -> None:
        self._revisions = revisions
        self._files: OrderedDict[tuple[str, str], dict[str, str | None]] = OrderedDict()

    def recall(self, url: str, revision: str, paths: Sequence[str]) -> dict[str, str | None] | None:
        """`paths` at `revision` if all were read before, else None."""
        known = self._files.get((url, revision))
        if known is None or any(path not in known for path in paths):
            return None
        self._files.move_to_end((url, revision))
        return {path: known[path] for path in paths}

    def remember(self, url: str, revision: str, files: Mapping[str, str | None]) -> None:
        self._files.setdefault((url, revision), {}).update(files)
        self._files.move_to_end((url, revision))
        while len(self._files) > self._revisions:
            self._files.popitem(last=False)


class GitSource:
    """Branch heads and files of git repositories at any URL git can fetch, `file://` included.

    One instance serves any number of repositories concurrently. Several instances, in threads or
    processes, may share `cache_dir`: changes to a cache repository happen under a file lock, and
    a read that finds a revision's objects incomplete is done again under it (`_read_whole`).
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        attempts: int = 4,
        max_wait: float = 10.0,
        git: str = "git",
        timeout: float = 60.0,
        max_processes: int = 32,
        max_file_size: int = MAX_FILE_SIZE,
        http: RemoteHttp | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.cache_dir = Path(cache_dir).absolute()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.attempts = attempts
        self.max_wait = max_wait
        self.timeout = timeout
        self.max_file_size = max_file_size
        # How many git commands of each kind this instance ran: `ls-remote`, `fetch`, ...
        self.commands: Counter[str] = Counter()
        self._runner = GitRunner(
            self.cache_dir,
            git=git,
            timeout=timeout,
            max_processes=max_processes,
            commands=self.commands,
        )
        # One fetch at a time per cache repository within this process; asyncio locks belong
        # to one event loop, and an instance may be used from several.
        self._locks: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, asyncio.Lock]
        ] = weakref.WeakKeyDictionary()
        self._files = FileMemory()
        # Cache repositories whose remote refused a commit id but served the branch.
        self._fetch_branch_only: set[Path] = set()
        # With the engine's HTTP session, heads of http(s) repositories are read without git.
        self._smart_http = SmartHttpHeads(http) if http is not None else None

    async def head(self, url: str, branch: str) -> str:
        """The revision `branch` points at now, retried if reading it fails: over HTTP(S) with
        the engine's session, git's `ls-refs` (protocol v2) or the refs a v0/v1 server
        advertises; elsewhere (`file://`, ssh, a dumb HTTP server) one `git ls-remote`."""
        check_url(url)
        check_branch(branch)
        ref = f"refs/heads/{branch}"
        failure = f"could not list branch {branch!r} of {redact(url)}"
        revision: str | None = None
        listed_by = "git ls-remote"
        if self._smart_http is not None and urlsplit(url).scheme in _HTTP_SCHEMES:
            try:
                revision = await self._smart_http.head(url, ref, failure=failure)
                listed_by = "the server"
            except NotSmartError as error:
                logger.info(
                    "%s is not read over smart HTTP here (%s); asking git", redact(url), error
                )
                revision = await self._ls_remote(url, ref, failure=failure)
        else:
            revision = await self._ls_remote(url, ref, failure=failure)
        if revision is None:
            raise SourceError(
                f"{redact(url)} has no branch {branch!r} ({listed_by} listed no {ref}); "
                "check the project's branch, or whether it was renamed or deleted"
            )
        return revision

    async def _ls_remote(self, url: str, ref: str, *, failure: str) -> str | None:
        async def list_branch() -> str | None:
            result = await self._runner.run("ls-remote", "--", url, ref)
            if result.returncode != 0:
                raise RetryableSourceError(result.said("ls-remote", url))
            return find_ref(result.stdout, ref)

        return await self._retrying(
            list_branch,
            failure=failure,
            advice="check the URL, that its host is reachable from here and the credentials",
        )

    async def read(
        self,
        url: str,
        revision: str,
        paths: Sequence[str] = DEFAULT_PATHS,
        *,
        branch: str | None = None,
    ) -> dict[str, str | None]:
        """The text of each of `paths` at `revision`, None for those missing there.

        Fetches the revision when the cache does not have it. With `branch`, a remote that will
        not serve a commit by id is asked for the branch instead.
        """
        found, files = await self._read(url, revision, paths, branch)
        if found != revision:
            raise SourceError(
                f"revision {revision} of {redact(url)} is no longer available: branch "
                f"{branch!r} now points at {found}"
            )
        return files

    async def snapshot(
        self, url: str, branch: str, paths: Sequence[str] = DEFAULT_PATHS
    ) -> Snapshot:
        """The head of `branch` and `paths` at it. An unchanged head costs one `ls-refs` request
        over HTTP(S), one `git ls-remote` elsewhere: the files of a revision are read once."""
        revision = await self.head(url, branch)
        # A branch that moves between listing and fetching gives the files of its new head, and
        # the snapshot says so: files and revision always agree.
        revision, files = await self._read(url, revision, paths, branch)
        return Snapshot(url=url, branch=branch, revision=revision, files=MappingProxyType(files))

    async def _read(
        self, url: str, revision: str, paths: Sequence[str], branch: str | None
    ) -> tuple[str, dict[str, str | None]]:
        check_url(url)
        check_revision(revision)
        if branch is not None:
            check_branch(branch)
        wanted = check_paths(paths)
        files = self._files.recall(url, revision, wanted)
        if files is not None:
            return revision, files
        repository = CacheRepository(self.cache_dir / cache_name(url), self._runner)
        try:
            revision = await self._ensure(url, repository, revision, branch)
            files = self._files.recall(url, revision, wanted)
            if files is None:
                revision, files = await self._read_whole(url, repository, revision, wanted, branch)
                self._files.remember(url, revision, files)
        except RetryableSourceError as error:
            # A local command that timed out: the disk or the machine is in trouble.
            raise SourceError(
                f"could not read revision {revision} of {redact(url)} from the cache "
                f"{repository.path}: {error}"
            ) from None
        return revision, files

    async def _read_whole(
        self,
        url: str,
        repository: CacheRepository,
        revision: str,
        paths: Sequence[str],
        branch: str | None,
    ) -> tuple[str, dict[str, str | None]]:
        """`paths` at `revision` (or at the branch's new head, if fetching again moved it).

        Read without the cache's file lock while the revision's objects are all there. When some
        are not, the read is done again under the lock, once no other process is half-way
        through a fetch into the cache; objects still missing then were left out by a fetch that
        was stopped, and the revision is fetched again.
        """

        async def read(at: str) -> dict[str, str | None]:
            return await repository.read_files(url, at, paths, max_file_size=self.max_file_size)

        where = f"revision {revision} of {redact(url)} in the cache {repository.path}"
        try:
            return revision, await read(revision)
        except UnreadableError as error:
            logger.info("%s is not whole yet (%s); reading it under the cache's lock", where, error)
        try:
            async with repository.file_lock():
                return revision, await read(revision)
        except UnreadableError as error:
            logger.warning(
                "%s lacks objects (%s), left by a fetch that was stopped; fetching it again",
                where,
                error,
            )
        revision = await self._ensure(url, repository, revision, branch, again=True)
        try:
            async with repository.file_lock():
                return revision, await read(revision)
        except UnreadableError as error:
            raise SourceError(
                f"could not read revision {revision} of {redact(url)} from the cache "
                f"{repository.path}, even after fetching it again: {error}; delete that "
                "directory to start its cache afresh"
            ) from None

    async def _ensure(
        self,
        url: str,
        repository: CacheRepository,
        revision: str,
        branch: str | None,
        *,
        again: bool = False,
    ) -> str:
        """Have `revision` in the cache repository, or the branch's new head if it moved.

        `again`: fetch it even though its commit is there (some of its objects are not).
        """
        async with self._lock(repository):
            if not again and await repository.has_commit(revision):
                return revision

            async def fetch() -> str:
                return await self._fetch(url, repository, revision, branch, again=again)

            where = f" (branch {branch!r})" if branch is not None else ""
            return await self._retrying(
                fetch,
                failure=f"could not fetch revision {revision} of {redact(url)}{where}",
                advice="check that its host is reachable from here and the revision still exists",
            )

    async def _fetch(
        self,
        url: str,
        repository: CacheRepository,
        revision: str,
        branch: str | None,
        *,
        again: bool,
    ) -> str:
        """One attempt: fetch the commit by id, else (with a branch) the branch's head."""
        async with repository.file_lock():
            await repository.prepare()
            # Another process sharing the cache may have fetched it while this one waited.
            if not again and await repository.has_commit(revision):
                return revision
            if again:
                await repository.drop_refs_at(revision)
            keep = keep_ref(branch)
            if branch is None or repository.path not in self._fetch_branch_only:
                result = await repository.fetch_refspec(url, f"+{revision}:{keep}")
                if result.returncode == 0:
                    await repository.collect_garbage()
                    return revision
                if branch is None:
                    raise RetryableSourceError(result.said("fetch", url))
                logger.info(
                    "%s did not serve commit %s by id (%s); fetching branch %r instead",
                    redact(url),
                    revision,
                    result.said("fetch", url),
                    branch,
                )
            result = await repository.fetch_refspec(url, f"+refs/heads/{branch}:{keep}")
            if result.returncode != 0:
                raise RetryableSourceError(result.said("fetch", url))
            self._fetch_branch_only.add(repository.path)
            fetched = await repository.resolve(keep, url)
            await repository.collect_garbage()
            return fetched

    async def _retrying(
        self, operation: Callable[[], Awaitable[T]], *, failure: str, advice: str
    ) -> T:
        """`operation` with up to `attempts` tries, waiting exponentially longer with jitter."""
        return await retrying(
            operation,
            attempts=self.attempts,
            max_wait=self.max_wait,
            failure=failure,
            advice=advice,
        )

    def _lock(self, repository: CacheRepository) -> asyncio.Lock:
        """One fetch at a time per cache repository within this process."""
        locks = self._locks.setdefault(asyncio.get_running_loop(), {})
        return locks.setdefault(repository.path.name, asyncio.Lock())
