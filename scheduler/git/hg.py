"""Mercurial repositories read over HTTP(S) as hg.mozilla.org serves them: a branch's head and
its push (pushlog id, date, pusher) from `json-pushes`, files from `raw-file/<revision>/<path>`.

No Mercurial runs here: hgweb answers both, and the pushlog is an extension of hg.mozilla.org's
(https://mozilla-version-control-tools.readthedocs.io/en/latest/hgmo/pushlog.html).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from yarl import URL

from scheduler.common.redaction import redact
from scheduler.git.parsing import check_paths, check_url, decode_text
from scheduler.git.process import SourceError
from scheduler.git.remote_http import RemoteHttp, said_by
from scheduler.git.source import DEFAULT_PATHS, MAX_FILE_SIZE, FileMemory, Pushed, Snapshot

_NODE = re.compile(r"[0-9a-f]{40}")
# hgweb's answer to raw-file of a path the revision's manifest lacks (a revision it does not
# know is a 404 too, which must not pass for a missing file).
_NOT_IN_MANIFEST = b"not found in manifest"


class HgSource:
    """Branch heads, their pushes and files of Mercurial repositories served by hgweb.

    Its requests go through `http`, the engine's one session for remote reads, and are retried
    as every remote read is (`RemoteHttp.request`); any other answer is final.
    """

    def __init__(self, http: RemoteHttp, *, max_file_size: int = MAX_FILE_SIZE) -> None:
        self.http = http
        self.max_file_size = max_file_size
        self._files = FileMemory()

    async def head(self, url: str, branch: str) -> tuple[str, Pushed]:
        """The revision `branch` points at and its push: one `json-pushes` request.

        As build-decision asks it: the push that introduced the branch's head
        (`changeset=<branch>`, which hgweb resolves), its tip-most changeset (`tipsonly=1`).
        """
        check_url(url)
        if not branch or any(character in branch for character in "\0\r\n"):
            raise SourceError(f"{branch!r} is not a Mercurial branch name; check the project's")
        where = f"{_base(url)}/json-pushes"
        query = {"version": "2", "tipsonly": "1", "changeset": branch}
        status, body = await self._get(
            "json-pushes",
            URL(where).with_query(query),
            failure=f"could not read the pushlog of {redact(url)} (branch {branch!r})",
        )
        if status == 404:
            raise SourceError(
                f"{redact(url)} has no branch {branch!r}, or keeps no pushlog (json-pushes "
                f"answered 404: {said_by(body, url)}); check the project's repository and branch "
                "(Mercurial's main branch is `default`)"
            )
        if status != 200:
            raise SourceError(
                f"the pushlog of {redact(url)} could not be read (json-pushes answered HTTP "
                f"{status}: {said_by(body, url)}); check the URL and its credentials"
            )
        try:
            return latest_push(body)
        except ValueError as error:
            raise SourceError(
                f"the pushlog of {redact(url)} for branch {branch!r} is not what hg.mozilla.org's "
                f"json-pushes (version 2) answers: {error}"
            ) from None

    async def read(
        self, url: str, revision: str, paths: Sequence[str] = DEFAULT_PATHS
    ) -> dict[str, str | None]:
        """The text of each of `paths` at `revision`, None for those missing there."""
        check_url(url)
        if not _NODE.fullmatch(revision):
            raise SourceError(f"{revision!r} is not a full Mercurial revision (40 hex digits)")
        wanted = check_paths(paths)
        files = self._files.recall(url, revision, wanted)
        if files is None:
            # The files at once; the first that fails stops the others (their answers would
            # be thrown away) and is what the caller hears.
            try:
                async with asyncio.TaskGroup() as group:
                    reads = [group.create_task(self._read_file(url, revision, p)) for p in wanted]
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None
            files = {path: read.result() for path, read in zip(wanted, reads, strict=True)}
            self._files.remember(url, revision, files)
        return files

    async def snapshot(
        self, url: str, branch: str, paths: Sequence[str] = DEFAULT_PATHS
    ) -> Snapshot:
        """The head of `branch`, its push, and `paths` at it. An unchanged head costs one
        request: its files are remembered by revision."""
        revision, push = await self.head(url, branch)
        files = await self.read(url, revision, paths)
        return Snapshot(
            url=url, branch=branch, revision=revision, files=MappingProxyType(files), push=push
        )

    async def _read_file(self, url: str, revision: str, path: str) -> str | None:
        where = f"{path} at revision {revision} of {redact(url)}"
        address = URL(f"{_base(url)}/raw-file/{revision}/{quote(path)}", encoded=True)
        status, body = await self._get("raw-file", address, failure=f"could not read {where}")
        if status == 404 and _NOT_IN_MANIFEST in body:
            return None
        if status != 200:
            raise SourceError(
                f"could not read {where}: raw-file answered HTTP {status}: {said_by(body, url)}; "
                "check that the revision exists there and the URL's credentials"
            )
        if len(body) > self.max_file_size:
            raise SourceError(
                f"{where} is more than {self.max_file_size} bytes; tc-scheduler reads files of "
                f"at most {self.max_file_size} bytes"
            )
        text, problem = decode_text(body)
        if problem is not None:
            raise SourceError(f"{where} {problem}")
        return text

    async def _get(self, kind: str, address: URL, *, failure: str) -> tuple[int, bytes]:
        """GET `address`, retried while it fails in a way that may pass: its status and body
        (at most one byte more than the largest file read)."""
        answer = await self.http.request(
            kind, str(address), address, failure=failure, limit=self.max_file_size + 1
        )
        return answer.status, answer.body


def latest_push(body: bytes) -> tuple[str, Pushed]:
    """The tip-most changeset and the push of the latest push in a json-pushes (version 2,
    `tipsonly`) answer; ValueError says what is wrong with it. Pure."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON ({error})") from None
    pushes = data.get("pushes") if isinstance(data, dict) else None
    if not isinstance(pushes, dict):
        raise ValueError("no `pushes` object")
    if not pushes:
        raise ValueError("no push introduced the branch's head")
    if not all(isinstance(key, str) and key.isdigit() for key in pushes):
        raise ValueError(f"push ids that are not numbers: {sorted(pushes)[:3]}")
    # A changeset can be in several pushes of a headless repository; the latest one counts.
    pushlog_id = max(pushes, key=int)
    return _tip(pushlog_id, pushes[pushlog_id]), _pushed(pushlog_id, pushes[pushlog_id])


def _tip(pushlog_id: str, push: Any) -> str:
    changesets = push.get("changesets") if isinstance(push, Mapping) else None
    if not isinstance(changesets, list) or not changesets:
        raise ValueError(f"push {pushlog_id} lists no changesets")
    tip = changesets[-1]  # in revlog order, tip-most last
    if isinstance(tip, Mapping):  # `full` answers objects
        tip = tip.get("node")
    if not isinstance(tip, str) or not _NODE.fullmatch(tip):
        raise ValueError(f"push {pushlog_id} names {tip!r}, not a 40-digit changeset")
    return tip


def _pushed(pushlog_id: str, push: Mapping[str, Any]) -> Pushed:
    date, user = push.get("date"), push.get("user")
    if isinstance(date, bool) or not isinstance(date, int | float) or date < 0:
        raise ValueError(f"push {pushlog_id} has no date in seconds since the epoch: {date!r}")
    if not isinstance(user, str):
        raise ValueError(f"push {pushlog_id} names no user: {user!r}")
    return Pushed(pushlog_id=pushlog_id, pushdate=int(date), user=user)


def _base(url: str) -> str:
    return url.rstrip("/")
