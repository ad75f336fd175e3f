"""What goes into git commands and what comes out: URLs, branches, revisions and paths checked
before they reach a command line, and the output of ls-remote, ls-tree and cat-file parsed. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from scheduler.common.redaction import redact
from scheduler.git.process import SourceError

_REVISION = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_BRANCH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
SYMLINK_MODE, SUBMODULE_MODE = "120000", "160000"


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    kind: str
    oid: str
    size: int | None


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


def check_url(url: str) -> None:
    if not url or url.startswith("-") or any(character in url for character in "\0\r\n"):
        raise SourceError(f"{redact(url)!r} is not a repository URL; check the project's URL")


def check_revision(revision: str) -> None:
    if not _REVISION.fullmatch(revision):
        raise SourceError(f"{revision!r} is not a full git revision (40 or 64 hex digits)")


def is_revision(text: str) -> bool:
    """A full git revision: 40 or 64 hex digits."""
    return _REVISION.fullmatch(text) is not None


def find_ref(listing: bytes, ref: str) -> str | None:
    """The revision of exactly `ref` in `git ls-remote` output (patterns also match tails)."""
    for line in listing.decode("utf-8", "replace").splitlines():
        revision, _, name = line.partition("\t")
        if name == ref and _REVISION.fullmatch(revision):
            return revision
    return None


def parse_tree(listing: bytes) -> dict[str, TreeEntry]:
    """`git ls-tree -z --long` output by path."""
    entries = {}
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        mode, kind, oid, size = meta.decode("ascii").split()
        entries[path.decode("utf-8", "surrogateescape")] = TreeEntry(
            mode=mode, kind=kind, oid=oid, size=None if size == "-" else int(size)
        )
    return entries


def parse_blobs(output: bytes, oids: Sequence[str]) -> dict[str, bytes]:
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


def entry_problem(entry: TreeEntry, limit: int) -> str | None:
    if entry.mode == SUBMODULE_MODE:
        return "is a submodule, not a file"
    if entry.mode == SYMLINK_MODE:
        return "is a symbolic link; commit the file itself"
    if entry.kind != "blob":
        return "is a directory, not a file"
    if entry.size is not None and entry.size > limit:
        return f"is {entry.size} bytes; tc-scheduler reads files of at most {limit} bytes"
    return None


def decode_text(data: bytes) -> tuple[str | None, str | None]:
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
