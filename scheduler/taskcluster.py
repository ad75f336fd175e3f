"""Taskcluster for the service: the one client factory, retry policy and error mapping.

The retry policy is the client library's own (5xx and connection errors, exponential backoff);
nothing else retries Taskcluster calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import taskcluster.aio
import taskcluster.aio.download
from taskcluster.exceptions import (
    TaskclusterArtifactError,
    TaskclusterAuthFailure,
    TaskclusterConnectionError,
    TaskclusterFailure,
    TaskclusterRestFailure,
)

# The client library's retries for 5xx and connection errors: attempts after the first one.
MAX_RETRIES = 5
# A stalled connection is given up and retried after this long without a byte.
READ_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Clients:
    """The Taskcluster services the scheduler calls, sharing one HTTP session."""

    root_url: str
    queue: Any
    index: Any
    hooks: Any

    async def download_json(self, task_id: str, name: str) -> Any:
        """A task's latest artifact, parsed as JSON (any storage type the queue uses)."""
        content, _ = await taskcluster.aio.download.downloadArtifactToBuf(
            taskId=task_id, name=name, queueService=self.queue, maxRetries=MAX_RETRIES
        )
        try:
            return json.loads(bytes(content))
        except ValueError:
            raise TaskclusterError(f"artifact {name} of task {task_id} is not JSON") from None


@asynccontextmanager
async def connect(
    root_url: str, credentials: dict[str, str] | None, *, connections: int = 100
) -> AsyncIterator[Clients]:
    """The service's clients for one run: one session, the library's retry policy."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=READ_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        options: dict[str, Any] = {"rootUrl": root_url, "maxRetries": MAX_RETRIES}
        if credentials:
            options["credentials"] = dict(credentials)
        yield Clients(
            root_url=root_url,
            queue=taskcluster.aio.Queue(options, session=session),
            index=taskcluster.aio.Index(options, session=session),
            hooks=taskcluster.aio.Hooks(options, session=session),
        )


class TaskclusterError(Exception):
    """A Taskcluster call failed; `status` and `code` are the service's, when it answered."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def explain(error: BaseException, doing: str) -> TaskclusterError:
    """A TaskclusterError saying what failed while `doing`, in words a person can act on.

    Only the first paragraph of the service's message is kept: the rest repeats the request,
    which may be large. Credentials never appear in either.
    """
    if isinstance(error, TaskclusterError):
        return error
    if isinstance(error, TaskclusterRestFailure | TaskclusterAuthFailure):
        body = error.body if isinstance(error.body, dict) else {}
        code = body.get("code") if isinstance(body.get("code"), str) else None
        message = str(body.get("message") or error).split("\n---\n")[0].strip()
        status = error.status_code
        hint = _HINTS.get(status or 0, "")
        return TaskclusterError(
            f"{doing} failed: {status} {code or ''} {message}{hint}".replace("  ", " "),
            status=status,
            code=code,
        )
    if isinstance(error, TaskclusterConnectionError | aiohttp.ClientError | asyncio.TimeoutError):
        return TaskclusterError(
            f"{doing} failed: could not reach Taskcluster after {MAX_RETRIES} retries "
            f"({type(error).__name__}); check the root URL and the network"
        )
    if isinstance(error, TaskclusterArtifactError):
        return TaskclusterError(f"{doing} failed: the artifact is an error artifact: {error}")
    if isinstance(error, TaskclusterFailure):
        return TaskclusterError(f"{doing} failed: {error}")
    raise error


_HINTS = {
    401: " (check TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN)",
    403: " (grant the scheduler's client the missing scopes)",
}
