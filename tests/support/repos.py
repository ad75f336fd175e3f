"""Real git repositories for tests: create one with files, commit more, serve it by file:// URL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

_ENVIRONMENT = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}


def write_files(root: Path, files: Mapping[str, str | bytes | None]) -> None:
    """Write each of `files` under `root` (its folders made), or delete it for None."""
    for name, content in files.items():
        target = root / name
        if content is None:
            target.unlink(missing_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


class Repository:
    """A git repository on disk with a `main` branch."""

    def __init__(
        self,
        path: Path,
        files: Mapping[str, str | bytes] | None = None,
        *,
        object_format: str = "sha1",
    ) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main", f"--object-format={object_format}")
        self.commit(files or {"README": "test repository\n"}, "initial")

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    def git(self, *arguments: str) -> str:
        return subprocess.run(
            ["git", *arguments],
            cwd=self.path,
            env=_ENVIRONMENT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def commit(self, files: Mapping[str, str | bytes | None], message: str = "change") -> str:
        """Write (or, for None, delete) files and commit; returns the new head revision."""
        write_files(self.path, files)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.head

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")
