"""Repositories: the head revision of a branch and the files at a revision, read with real git.

Fetched revisions live in one shallow bare repository per URL, shared by every process given the
same cache directory; file contents are cached by revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import signal
import tempfile
import weakref
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, TypeVar
from urllib.parse import unquote, urlsplit

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from scheduler.redaction import redact, without_userinfo

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PATHS = (".cron.yml", ".taskcluster.yml")
# Far above any real `.cron.yml` or `.taskcluster.yml`; the YAML parser stops at 256 KiB itself.
MAX_FILE_SIZE = 1024 * 1024
# Fetched revisions stay reachable from these refs, so `git gc` keeps their objects and the next
# fetch can offer them to the server as a starting point.
KEEP_REFS = "refs/tc-scheduler"
# Revisions whose files are kept in memory, across all repositories: a few per project.
MEMORY_REVISIONS = 1024

_REVISION = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_BRANCH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
# Only these of the caller's GIT_* variables reach git: how to reach hosts (ssh, TLS, proxies).
# The rest could point git at another repository or config, or trace credentials to stderr.
_KEPT_GIT_VARIABLES = ("GIT_SSH", "GIT_SSL_", "GIT_HTTP_", "GIT_PROXY_")
# Options of every git command: no credential helper or askpass from anywhere, paths taken
# literally, and the same protocol for every host (v2 lets a client fetch a commit by its id).
_GIT_OPTIONS = (
    "--no-pager",
    "--literal-pathspecs",
    "-c",
    "protocol.version=2",
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
)
_STALE_LOCKS = ("*.lock", "gc.pid", "refs/**/*.lock", "objects/info/**/*.lock")
_SYMLINK_MODE, _SUBMODULE_MODE = "120000", "160000"
# What git says on failure fits in far less; more would only be trimmed away.
_STDERR_LIMIT = 64 * 1024


class SourceError(Exception):
    """A repository, branch, revision or file could not be read; the message says what to check.

    Messages never contain the credentials of a repository URL.
    """


@dataclass(frozen=True)
class Snapshot:
    """A branch's head revision and some of its files; a file missing at the revision is None."""

    url: str
    branch: str
    revision: str
    files: Mapping[str, str | None] = field(hash=False)

    def __repr__(self) -> str:
        return (
            f"Snapshot(url={redact(self.url)!r}, branch={self.branch!r}, "
            f"revision={self.revision!r}, files={sorted(self.files)!r})"
        )


class _RetryableGitError(Exception):
    """A git command that talks to a remote failed; worth another attempt."""


class _UnreadableError(Exception):
    """Objects of a revision are missing from the cache repository: a fetch by another process
    is still writing them (git writes the commit before its trees and files), or one that was
    stopped half-way left them out."""


@dataclass(frozen=True)
class _Completed:
    returncode: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class _TreeEntry:
    mode: str
    kind: str
    oid: str
    size: int | None


@dataclass
class _LoopState:
    """asyncio primitives belong to one event loop; an instance may be used from several."""

    processes: asyncio.Semaphore
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)


def _secrets_of(url: str) -> list[str]:
    """Credentials of `url` as they may appear in text, escaped or not."""
    parts = urlsplit(url)
    secret = parts.password
    if secret is None and parts.scheme in ("http", "https"):
        # Over HTTP a lone user name is a token (`https://<token>@host/...`).
        secret = parts.username
    if not secret:
        return []
    return sorted({secret, unquote(secret)}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` (from git, say) with no credentials of `url` left in it."""
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    return redact(text)


def cache_name(url: str) -> str:
    """The cache directory of `url`: readable tail, then a hash; never the URL itself.

    Credentials are left out of the hash, so rotating a token keeps the cache.
    """
    identity = without_userinfo(url)
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    tail = re.split(r"[/:]", urlsplit(identity).path.rstrip("/"))[-1].removesuffix(".git")
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", tail)[:40].strip(".-") or "repository"
    return f"{tail}-{digest}.git"


def git_environment(base: Mapping[str, str], cache_dir: Path) -> dict[str, str]:
    """The environment of every git command: C locale, no prompts, no system or user config."""
    environment = {
        name: value
        for name, value in base.items()
        if not name.startswith("GIT_") or name.startswith(_KEPT_GIT_VARIABLES)
    }
    environment.update(
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_PAGER="cat",
        PAGER="cat",
        # Commands without --git-dir run in the cache directory; never find a repository above.
        GIT_CEILING_DIRECTORIES=str(cache_dir.parent),
    )
    if "GIT_SSH" not in environment and "GIT_SSH_COMMAND" not in environment:
        environment["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return environment


def check_branch(branch: str) -> None:
    """Refuse what git would not take as a branch name, before it reaches a command line."""
    components = branch.split("/")
    if (
        not branch
        or branch.startswith("-")
        or branch.endswith((".", "/"))
        or branch == "@"
        or _BRANCH_FORBIDDEN.search(branch)
        or any(part.startswith(".") or part.endswith(".lock") for part in components)
    ):
        raise SourceError(f"{branch!r} is not a valid git branch name; check the project's branch")


def check_paths(paths: Sequence[str]) -> tuple[str, ...]:
    """Paths relative to the repository root, none inside another (`ls-tree` would list both)."""
    checked = tuple(dict.fromkeys(paths))
    for path in checked:
        parts = path.split("/")
        if "\0" in path or "\n" in path or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"{path!r} is not a path relative to the repository root")
        if any(other.startswith(path + "/") for other in checked):
            raise ValueError(f"{path!r} is a directory of another path read with it")
    return checked


def _check_url(url: str) -> None:
    if not url or url.startswith("-") or any(character in url for character in "\0\r\n"):
        raise SourceError(f"{redact(url)!r} is not a repository URL; check the project's URL")


def _check_revision(revision: str) -> None:
    if not _REVISION.fullmatch(revision):
        raise SourceError(f"{revision!r} is not a full git revision (40 or 64 hex digits)")


def _trimmed(stderr: bytes, url: str) -> str:
    """What git said, in a few lines, without hints or credentials."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    said = " ".join([line for line in lines if line and not line.startswith("hint:")][:4])
    said = said if len(said) <= 500 else said[:499] + "…"
    return scrub(said, url) or "nothing"


def _find_ref(listing: bytes, ref: str) -> str | None:
    """The revision of exactly `ref` in `git ls-remote` output (patterns also match tails)."""
    for line in listing.decode("utf-8", "replace").splitlines():
        revision, _, name = line.partition("\t")
        if name == ref and _REVISION.fullmatch(revision):
            return revision
    return None


def _parse_tree(listing: bytes) -> dict[str, _TreeEntry]:
    """`git ls-tree -z --long` output by path."""
    entries = {}
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode("ascii").split()
        entries[path.decode("utf-8", "surrogateescape")] = _TreeEntry(
            mode=mode, kind=kind, oid=oid, size=None if size == "-" else int(size)
        )
    return entries


def _parse_blobs(output: bytes, oids: Sequence[str]) -> dict[str, bytes]:
    """`git cat-file --batch` output: a header line, the object, a newline, for each id asked."""
    blobs, position = {}, 0
    for oid in oids:
        end = output.index(b"\n", position)
        header = output[position:end].decode("ascii").split()
        if len(header) != 3:
            raise ValueError(f"git cat-file could not read object {oid}: {' '.join(header)}")
        size = int(header[2])
        blobs[oid] = output[end + 1 : end + 1 + size]
        position = end + 1 + size + 1
    return blobs


def _entry_problem(entry: _TreeEntry, limit: int) -> str | None:
    if entry.mode == _SUBMODULE_MODE:
        return "is a submodule, not a file"
    if entry.mode == _SYMLINK_MODE:
        return "is a symbolic link; commit the file itself"
    if entry.kind != "blob":
        return "is a directory, not a file"
    if entry.size is not None and entry.size > limit:
        return f"is {entry.size} bytes; tc-scheduler reads files of at most {limit} bytes"
    return None


def _decode(data: bytes) -> tuple[str | None, str | None]:
    """The text of a file, or why it is not UTF-8 text."""
    if b"\0" in data:
        return None, "contains NUL bytes: it is binary, not text"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as error:
        return None, (
            f"is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "save it as UTF-8"
        )


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill git with whatever it started (remote helpers, ssh), and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def _keep_ref(branch: str | None) -> str:
    """The ref a fetch of `branch` (or of a bare revision) lands on in a cache repository.

    One level per branch, `/` escaped: branch `a` once and `a/b` later must not collide.
    """
    if branch is None:
        return f"{KEEP_REFS}/read"
    return f"{KEEP_REFS}/heads/{branch.replace('%', '%25').replace('/', '%2F')}"


def _read_back(output: IO[bytes], limit: int = -1) -> bytes:
    output.seek(0)
    return output.read(limit)


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
        self._git = git
        self._max_processes = max_processes
        self._environment = git_environment(os.environ, self.cache_dir)
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._files: OrderedDict[tuple[str, str], dict[str, str | None]] = OrderedDict()
        # Cache repositories whose remote refused a commit id but served the branch.
        self._fetch_branch_only: set[Path] = set()

    async def head(self, url: str, branch: str) -> str:
        """The revision `branch` points at now: one `git ls-remote`, retried if it fails."""
        _check_url(url)
        check_branch(branch)
        ref = f"refs/heads/{branch}"

        async def list_branch() -> str | None:
            result = await self._run("ls-remote", "--", url, ref)
            if result.returncode != 0:
                raise _RetryableGitError(self._said("ls-remote", result, url))
            return _find_ref(result.stdout, ref)

        revision = await self._retrying(
            list_branch,
            failure=f"could not list branch {branch!r} of {redact(url)}",
            advice="check the URL, that its host is reachable from here and the credentials",
        )
        if revision is None:
            raise SourceError(
                f"{redact(url)} has no branch {branch!r} (git ls-remote found no {ref}); "
                "check the project's branch, or whether it was renamed or deleted"
            )
        return revision

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
        """The head of `branch` and `paths` at it. An unchanged head costs one `git ls-remote`."""
        revision = await self.head(url, branch)
        # A branch that moves between listing and fetching gives the files of its new head, and
        # the snapshot says so: files and revision always agree.
        revision, files = await self._read(url, revision, paths, branch)
        return Snapshot(url=url, branch=branch, revision=revision, files=MappingProxyType(files))

    async def _read(
        self, url: str, revision: str, paths: Sequence[str], branch: str | None
    ) -> tuple[str, dict[str, str | None]]:
        _check_url(url)
        _check_revision(revision)
        if branch is not None:
            check_branch(branch)
        wanted = check_paths(paths)
        files = self._recall(url, revision, wanted)
        if files is not None:
            return revision, files
        repository = self.cache_dir / cache_name(url)
        try:
            revision = await self._ensure(url, repository, revision, branch)
            files = self._recall(url, revision, wanted)
            if files is None:
                revision, files = await self._read_whole(url, repository, revision, wanted, branch)
                self._remember(url, revision, files)
        except _RetryableGitError as error:
            # A local command that timed out: the disk or the machine is in trouble.
            raise SourceError(
                f"could not read revision {revision} of {redact(url)} from the cache "
                f"{repository}: {error}"
            ) from None
        return revision, files

    def _recall(
        self, url: str, revision: str, paths: Sequence[str]
    ) -> dict[str, str | None] | None:
        known = self._files.get((url, revision))
        if known is None or any(path not in known for path in paths):
            return None
        self._files.move_to_end((url, revision))
        return {path: known[path] for path in paths}

    def _remember(self, url: str, revision: str, files: Mapping[str, str | None]) -> None:
        self._files.setdefault((url, revision), {}).update(files)
        self._files.move_to_end((url, revision))
        while len(self._files) > MEMORY_REVISIONS:
            self._files.popitem(last=False)

    async def _read_whole(
        self, url: str, repository: Path, revision: str, paths: Sequence[str], branch: str | None
    ) -> tuple[str, dict[str, str | None]]:
        """`paths` at `revision` (or at the branch's new head, if fetching again moved it).

        Read without the cache's file lock while the revision's objects are all there. When some
        are not, the read is done again under the lock, once no other process is half-way
        through a fetch into the cache; objects still missing then were left out by a fetch that
        was stopped, and the revision is fetched again.
        """
        try:
            return revision, await self._read_files(url, repository, revision, paths)
        except _UnreadableError as error:
            logger.info(
                "revision %s of %s is not whole in the cache %s yet (%s); reading it under the "
                "cache's lock",
                revision,
                redact(url),
                repository,
                error,
            )
        async with self._file_lock(repository):
            try:
                return revision, await self._read_files(url, repository, revision, paths)
            except _UnreadableError as error:
                logger.warning(
                    "revision %s of %s lacks objects in the cache %s (%s), left by a fetch that "
                    "was stopped; fetching it again",
                    revision,
                    redact(url),
                    repository,
                    error,
                )
        revision = await self._ensure(url, repository, revision, branch, again=True)
        async with self._file_lock(repository):
            try:
                return revision, await self._read_files(url, repository, revision, paths)
            except _UnreadableError as error:
                raise SourceError(
                    f"could not read revision {revision} of {redact(url)} from the cache "
                    f"{repository}, even after fetching it again: {error}; delete that "
                    "directory to start its cache afresh"
                ) from None

    async def _ensure(
        self, url: str, repository: Path, revision: str, branch: str | None, *, again: bool = False
    ) -> str:
        """Have `revision` in the cache repository, or the branch's new head if it moved.

        `again`: fetch it even though its commit is there (some of its objects are not).
        """
        async with self._lock(repository):
            if not again and await self._has_commit(repository, revision):
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
        self, url: str, repository: Path, revision: str, branch: str | None, *, again: bool
    ) -> str:
        """One attempt: fetch the commit by id, else (with a branch) the branch's head."""
        async with self._file_lock(repository):
            await self._prepare(repository)
            # Another process sharing the cache may have fetched it while this one waited.
            if not again and await self._has_commit(repository, revision):
                return revision
            if again:
                await self._drop_refs_at(repository, revision)
            keep = _keep_ref(branch)
            if branch is None or repository not in self._fetch_branch_only:
                result = await self._fetch_refspec(repository, url, f"+{revision}:{keep}")
                if result.returncode == 0:
                    await self._collect_garbage(repository)
                    return revision
                if branch is None:
                    raise _RetryableGitError(self._said("fetch", result, url))
                logger.info(
                    "%s did not serve commit %s by id (%s); fetching branch %r instead",
                    redact(url),
                    revision,
                    self._said("fetch", result, url),
                    branch,
                )
            result = await self._fetch_refspec(repository, url, f"+refs/heads/{branch}:{keep}")
            if result.returncode != 0:
                raise _RetryableGitError(self._said("fetch", result, url))
            self._fetch_branch_only.add(repository)
            fetched = await self._resolve(repository, keep, url)
            await self._collect_garbage(repository)
            return fetched

    async def _fetch_refspec(self, repository: Path, url: str, refspec: str) -> _Completed:
        return await self._run(
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-recurse-submodules",
            "--no-write-fetch-head",
            "--depth=1",
            "--",
            url,
            refspec,
            repository=repository,
            # Garbage collection runs after the fetch, under the lock (see _collect_garbage).
            config=("gc.auto=0", "maintenance.auto=false"),
        )

    async def _collect_garbage(self, repository: Path) -> None:
        """`git gc --auto` in the foreground: a detached one could outlive the file lock.

        Its failure costs disk space, not this read, so it is only logged.
        """
        try:
            result = await self._run(
                "gc",
                "--auto",
                "--quiet",
                repository=repository,
                config=("gc.autoDetach=false", "maintenance.autoDetach=false"),
            )
        except _RetryableGitError as error:
            logger.warning("git gc in %s: %s", repository, error)
            return
        if result.returncode != 0:
            logger.warning("git gc in %s failed: %s", repository, _trimmed(result.stderr, ""))

    async def _resolve(self, repository: Path, ref: str, url: str) -> str:
        result = await self._run(
            "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", repository=repository
        )
        revision = result.stdout.decode("ascii", "replace").strip()
        if result.returncode != 0 or not _REVISION.fullmatch(revision):
            raise SourceError(
                f"git fetched {redact(url)} but the cache repository {repository} has no {ref}; "
                "delete that directory to start its cache afresh"
            )
        return revision

    async def _drop_refs_at(self, repository: Path, revision: str) -> None:
        """Delete the cache's refs at `revision`, whose objects are not all there: a fetch
        tells the server what its refs point at, and would then be sent none of them."""
        listing = await self._run(
            "for-each-ref",
            "--format=%(refname)",
            f"--points-at={revision}",
            KEEP_REFS,
            repository=repository,
        )
        for ref in listing.stdout.decode("utf-8", "replace").split():
            dropped = await self._run("update-ref", "-d", ref, repository=repository)
            if dropped.returncode != 0:
                logger.warning("git update-ref -d %s in %s failed", ref, repository)

    async def _has_commit(self, repository: Path, revision: str) -> bool:
        """Whether the commit object is there; its trees and files may not all be yet."""
        if not (repository / "HEAD").exists():
            return False
        result = await self._run(
            "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", repository=repository
        )
        return result.returncode == 0

    async def _prepare(self, repository: Path) -> None:
        """Create the cache repository, or clear locks left by a git that was killed in it.

        Called under the file lock: no other git works in this repository meanwhile.
        """
        if not (repository / "HEAD").exists():
            result = await self._run("init", "--bare", "--quiet", "--template=", str(repository))
            if result.returncode != 0:
                raise SourceError(
                    f"could not create the cache repository {repository}: "
                    f"{_trimmed(result.stderr, '')}; check that {self.cache_dir} is writable"
                )
            return
        for pattern in _STALE_LOCKS:
            for stale in repository.glob(pattern):
                logger.warning("removing %s, left by a git command that was stopped", stale)
                stale.unlink(missing_ok=True)

    async def _read_files(
        self, url: str, repository: Path, revision: str, paths: Sequence[str]
    ) -> dict[str, str | None]:
        """The files at `revision`; _UnreadableError if a tree or file on the way is missing
        (git ls-tree fails on a missing tree, and gives a missing file's size as `BAD`)."""
        listing = await self._run(
            "ls-tree", "-z", "--long", revision, "--", *paths, repository=repository
        )
        if listing.returncode != 0:
            raise _UnreadableError(self._said("ls-tree", listing, url))
        try:
            entries = _parse_tree(listing.stdout)
        except ValueError as error:
            raise _UnreadableError(
                f"git ls-tree listed it in a form not understood: {error}"
            ) from None
        oids: dict[str, str] = {}
        for path in paths:
            entry = entries.get(path)
            if entry is None:
                continue
            problem = _entry_problem(entry, self.max_file_size)
            if problem is not None:
                raise SourceError(f"{path} at revision {revision} of {redact(url)} {problem}")
            oids[path] = entry.oid
        blobs = await self._read_blobs(url, repository, sorted(set(oids.values())))
        files: dict[str, str | None] = {}
        for path in paths:
            if path not in oids:
                files[path] = None
                continue
            text, problem = _decode(blobs[oids[path]])
            if problem is not None:
                raise SourceError(f"{path} at revision {revision} of {redact(url)} {problem}")
            files[path] = text
        return files

    async def _read_blobs(
        self, url: str, repository: Path, oids: Sequence[str]
    ) -> dict[str, bytes]:
        if not oids:
            return {}
        request = "".join(f"{oid}\n" for oid in oids).encode("ascii")
        result = await self._run("cat-file", "--batch", repository=repository, stdin=request)
        try:
            if result.returncode != 0:
                raise ValueError(self._said("cat-file", result, url))
            return _parse_blobs(result.stdout, oids)
        except ValueError as error:
            raise _UnreadableError(str(error)) from None

    async def _retrying(
        self, operation: Callable[[], Awaitable[T]], *, failure: str, advice: str
    ) -> T:
        """`operation` with up to `attempts` tries, waiting exponentially longer with jitter."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=1, max=self.max_wait),
            retry=retry_if_exception_type(_RetryableGitError),
            before_sleep=self._log_retry(failure),
            reraise=True,
        )
        try:
            return await retrying(operation)
        except _RetryableGitError as error:
            tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
            raise SourceError(f"{failure} ({tries}): {error}; {advice}") from None

    def _log_retry(self, failure: str) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            wait = state.next_action.sleep if state.next_action is not None else 0.0
            logger.warning(
                "%s (attempt %d of %d), retrying in %.1f s: %s",
                failure,
                state.attempt_number,
                self.attempts,
                wait,
                error,
            )

        return log

    def _said(self, command: str, result: _Completed, url: str) -> str:
        return f"git {command} exited with {result.returncode}: {_trimmed(result.stderr, url)}"

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopState(asyncio.Semaphore(self._max_processes))
        return state

    def _lock(self, repository: Path) -> asyncio.Lock:
        """One fetch at a time per cache repository within this process."""
        return self._state().locks.setdefault(repository.name, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _file_lock(self, repository: Path) -> AsyncIterator[None]:
        """Exclusive use of a cache repository among processes (and instances) sharing it.

        Polled rather than blocking, so the event loop keeps running and cancellation is clean.
        """
        descriptor = os.open(
            repository.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 3 * self.timeout
            pause = 0.005
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if loop.time() > deadline:
                        raise SourceError(
                            f"the cache repository {repository} stayed locked by another "
                            f"process for {3 * self.timeout:.0f} s; check for a stuck git"
                        ) from None
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    async def _run(
        self,
        command: str,
        *arguments: str,
        repository: Path | None = None,
        config: Sequence[str] = (),
        stdin: bytes | None = None,
    ) -> _Completed:
        """Run one git command (never through a shell) within the timeout, killing it after.

        A timeout counts as a failure worth retrying; other exits are for the caller to judge.
        """
        argv = [self._git, *_GIT_OPTIONS]
        for setting in config:
            argv += ["-c", setting]
        if repository is not None:
            argv.append(f"--git-dir={repository}")
        argv += [command, *arguments]
        self.commands[command] += 1
        # Files rather than pipes: CPython 3.11 can wait forever for a process whose start or
        # `communicate` was cancelled, on pipes nobody reads. Without pipes, killing git always
        # ends the wait.
        with (
            # In the cache directory, which is writable where /tmp may not be.
            tempfile.TemporaryFile(dir=self.cache_dir) as request,
            tempfile.TemporaryFile(dir=self.cache_dir) as stdout,
            tempfile.TemporaryFile(dir=self.cache_dir) as stderr,
        ):
            if stdin is not None:
                request.write(stdin)
                request.seek(0)
            async with self._state().processes:
                try:
                    process = await asyncio.create_subprocess_exec(
                        *argv,
                        stdin=request if stdin is not None else asyncio.subprocess.DEVNULL,
                        stdout=stdout,
                        stderr=stderr,
                        cwd=self.cache_dir,
                        env=self._environment,
                        # Its own process group, so stopping git stops the helpers it started.
                        start_new_session=True,
                    )
                except OSError as error:
                    raise SourceError(
                        f"could not run {self._git!r}: {error}; is git installed?"
                    ) from None
                try:
                    async with asyncio.timeout(self.timeout):
                        returncode = await process.wait()
                except TimeoutError:
                    await _stop(process)
                    raise _RetryableGitError(
                        f"git {command} did not finish within {self.timeout:g} s and was stopped"
                    ) from None
                except BaseException:
                    await _stop(process)  # cancelled: leave no git running
                    raise
            return _Completed(returncode, _read_back(stdout), _read_back(stderr, _STDERR_LIMIT))
