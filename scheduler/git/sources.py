"""Every kind of repository behind one call: git's (`source.GitSource`) and Mercurial's
(`hg.HgSource`), chosen by the project's repository type; both answer a `Snapshot`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from scheduler.git.hg import HgSource
from scheduler.git.source import DEFAULT_PATHS, GitSource, Snapshot

RepositoryType = Literal["git", "hg"]


@dataclass(frozen=True)
class Sources:
    """The engine's one way to a branch's head and its files, whatever the repository."""

    git: GitSource
    hg: HgSource

    async def snapshot(
        self,
        url: str,
        branch: str,
        repository_type: RepositoryType = "git",
        paths: Sequence[str] = DEFAULT_PATHS,
    ) -> Snapshot:
        """The head of `branch` and `paths` at it (with its push, for Mercurial). Raises
        SourceError."""
        if repository_type == "hg":
            return await self.hg.snapshot(url, branch, paths)
        return await self.git.snapshot(url, branch, paths)
