"""One cache repository: the shallow bare repository on disk that holds a URL's fetched
revisions, shared by every process given the same cache directory.

It is named after its URL, created on first use, locked among processes while it changes,
fetched into, and read from; `source.py` decides when to fetch and what to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from scheduler.common.redaction import redact, without_userinfo
from scheduler.git.parsing import (
    decode_text,
    entry_problem,
    is_revision,
    parse_blobs,
    parse_tree,
)
from scheduler.git.process import Completed, GitRunner, RetryableSourceError, SourceError, trimmed

logger = logging.getLogger(__name__)

# Fetched revisions stay reachable from these refs, so `git gc` keeps their objects and the next
# fetch can offer them to the server as a starting point.
KEEP_REFS = "refs/tc-scheduler"
_STALE_LOCKS = ("*.lock", "gc.pid", "refs/**/*.lock", "objects/info/**/*.lock")


class UnreadableError(Exception):
    """Objects of a revision are missing from the cache repository: a fetch by another process
    is still writing them (git writes the commit before its trees and files), or one that was
    stopped half-way left them out."""


def cache_name(url: str) -> str:
    """The cache directory of `url`: readable tail, then a hash; never the URL itself.

    Credentials are left out of the hash, so rotating a token keeps the cache.
    """
    identity = without_userinfo(url)
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    tail = re.split(r"[/:]", urlsplit(identity).path.rstrip("/"))[-1].removesuffix(".git")
    tail = re.sub(r"[^A-Za-z0-9._-]+", "-", tail)[:40].strip(".-") or "repository"
    return f"{tail}-{digest}.git"


def keep_ref(branch: str | None) -> str:
    """The ref a fetch of `branch` (or of a bare revision) lands on in a cache repository.

    One level per branch, `/` escaped: branch `a` once and `a/b` later must not collide.
    """
    if branch is None:
        return f"{KEEP_REFS}/read"
    return f"{KEEP_REFS}/heads/{branch.replace('%', '%25').replace('/', '%2F')}"


class CacheRepository:
    """The cache repository at `path`, worked on through `runner`."""

    def __init__(self, path: Path, runner: GitRunner) -> None:
        self.path = path
        self._runner = runner

    async def _run(
        self, command: str, *arguments: str, config: Sequence[str] = (), stdin: bytes | None = None
    ) -> Completed:
        return await self._runner.run(
            command, *arguments, repository=self.path, config=config, stdin=stdin
        )

    async def prepare(self) -> None:
        """Create the repository, or clear locks left by a git that was killed in it.

        Called under the file lock: no other git works in this repository meanwhile.
        """
        if not (self.path / "HEAD").exists():
            result = await self._runner.run(
                "init", "--bare", "--quiet", "--template=", str(self.path)
            )
            if result.returncode != 0:
                raise SourceError(
                    f"could not create the cache repository {self.path}: "
                    f"{trimmed(result.stderr, '')}; check that {self._runner.cache_dir} is "
                    "writable"
                )
            return
        for pattern in _STALE_LOCKS:
            for stale in self.path.glob(pattern):
                logger.warning("removing %s, left by a git command that was stopped", stale)
                stale.unlink(missing_ok=True)

    async def has_commit(self, revision: str) -> bool:
        """Whether the commit object is there; its trees and files may not all be yet."""
        if not (self.path / "HEAD").exists():
            return False
        result = await self._run("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
        return result.returncode == 0

    async def fetch_refspec(self, url: str, refspec: str) -> Completed:
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
            # Garbage collection runs after the fetch, under the lock (see collect_garbage).
            config=("gc.auto=0", "maintenance.auto=false"),
        )

    async def collect_garbage(self) -> None:
        """`git gc --auto` in the foreground: a detached one could outlive the file lock.

        Its failure costs disk space, not this read, so it is only logged.
        """
        try:
            result = await self._run(
                "gc",
                "--auto",
                "--quiet",
                config=("gc.autoDetach=false", "maintenance.autoDetach=false"),
            )
        except RetryableSourceError as error:
            logger.warning("git gc in %s: %s", self.path, error)
            return
        if result.returncode != 0:
            logger.warning("git gc in %s failed: %s", self.path, trimmed(result.stderr, ""))

    async def resolve(self, ref: str, url: str) -> str:
        result = await self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        revision = result.stdout.decode("ascii", "replace").strip()
        if result.returncode != 0 or not is_revision(revision):
            raise SourceError(
                f"git fetched {redact(url)} but the cache repository {self.path} has no {ref}; "
                "delete that directory to start its cache afresh"
            )
        return revision

    async def drop_refs_at(self, revision: str) -> None:
        """Delete the refs at `revision`, whose objects are not all there: a fetch tells the
        server what its refs point at, and would then be sent none of them."""
        listing = await self._run(
            "for-each-ref", "--format=%(refname)", f"--points-at={revision}", KEEP_REFS
        )
        for ref in listing.stdout.decode("utf-8", "replace").split():
            dropped = await self._run("update-ref", "-d", ref)
            if dropped.returncode != 0:
                logger.warning("git update-ref -d %s in %s failed", ref, self.path)

    async def read_files(
        self, url: str, revision: str, paths: Sequence[str], *, max_file_size: int
    ) -> dict[str, str | None]:
        """The files at `revision`; UnreadableError if a tree or file on the way is missing
        (git ls-tree fails on a missing tree, and gives a missing file's size as `BAD`)."""
        listing = await self._run("ls-tree", "-z", "--long", revision, "--", *paths)
        if listing.returncode != 0:
            raise UnreadableError(listing.said("ls-tree", url))
        try:
            entries = parse_tree(listing.stdout)
        except ValueError as error:
            raise UnreadableError(
                f"git ls-tree listed it in a form not understood: {error}"
            ) from None
        oids: dict[str, str] = {}
        for path in paths:
            entry = entries.get(path)
            if entry is None:
                continue
            problem = entry_problem(entry, max_file_size)
            if problem is not None:
                raise SourceError(f"{path} at revision {revision} of {redact(url)} {problem}")
            oids[path] = entry.oid
        blobs = await self._read_blobs(url, sorted(set(oids.values())))
        files: dict[str, str | None] = {}
        for path in paths:
            if path not in oids:
                files[path] = None
                continue
            text, problem = decode_text(blobs[oids[path]])
            if problem is not None:
                raise SourceError(f"{path} at revision {revision} of {redact(url)} {problem}")
            files[path] = text
        return files

    async def _read_blobs(self, url: str, oids: Sequence[str]) -> dict[str, bytes]:
        if not oids:
            return {}
        request = "".join(f"{oid}\n" for oid in oids).encode("ascii")
        result = await self._run("cat-file", "--batch", stdin=request)
        try:
            if result.returncode != 0:
                raise ValueError(result.said("cat-file", url))
            return parse_blobs(result.stdout, oids)
        except ValueError as error:
            raise UnreadableError(str(error)) from None

    @contextlib.asynccontextmanager
    async def file_lock(self) -> AsyncIterator[None]:
        """Exclusive use of the repository among processes (and instances) sharing it.

        Polled rather than blocking, so the event loop keeps running and cancellation is clean.
        """
        descriptor = os.open(
            self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        patience = 3 * self._runner.timeout
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + patience
            pause = 0.005
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if loop.time() > deadline:
                        raise SourceError(
                            f"the cache repository {self.path} stayed locked by another "
                            f"process for {patience:.0f} s; check for a stuck git"
                        ) from None
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.1)
            yield
        finally:
            os.close(descriptor)  # releases the lock
