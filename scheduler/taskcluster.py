"""Taskcluster for the service: the one client factory, per-project scopes, the retry policy,
bounded waits and the mapping of failures to messages a person can act on.

The retry policy is the client library's own (5xx and connection errors, exponential backoff),
except for `hooks.triggerHook` (`hooks_once`): a trigger is not idempotent, so
actions/triggering.py decides when to send one again. Every call is bounded (`CallBounds`): an
attempt that receives nothing for the call timeout is abandoned and retried, and a call still
going on at its deadline is abandoned, its outcome unknown (`TaskclusterError.timed_out`).
Every request can be observed (`taskcluster_calls`, told by `taskcluster_session`), for the
service's metrics.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import taskcluster.aio
import taskcluster.aio.download

from scheduler.common.deadlines import Bounded, within
from scheduler.config.model import CallBounds, Config, Project
from scheduler.taskcluster_calls import CallObserver
from scheduler.taskcluster_failures import Restriction, TaskclusterError, explain
from scheduler.taskcluster_session import for_the_library

# The client library's retries for 5xx and connection errors: attempts after the first one.
MAX_RETRIES = 5
# The states of a task the queue has not resolved yet.
UNRESOLVED_TASK_STATES = ("unscheduled", "pending", "running")
SERVICES = {
    "queue": taskcluster.aio.Queue,
    "index": taskcluster.aio.Index,
    "hooks": taskcluster.aio.Hooks,
    "auth": taskcluster.aio.Auth,
}
# Calls that must not be repeated by the client library: a trigger makes a new task each time.
ONCE_SERVICES = {"hooks_once": taskcluster.aio.Hooks}

# The bounds of a client made without the service's configuration (tests, one-off tools).
DEFAULT_BOUNDS = CallBounds()


@dataclass
class _Waits:
    """What one set of clients (and their restricted forms) met: whether a call timed out."""

    timed_out: bool = False


@dataclass(frozen=True)
class Clients:
    """The Taskcluster services the scheduler calls, sharing one HTTP session.

    `restricted(...)` gives the same services with every call limited to some scopes
    (Taskcluster's authorizedScopes), so that Taskcluster itself refuses anything beyond them.
    """

    root_url: str
    queue: Any
    index: Any
    hooks: Any
    auth: Any
    hooks_once: Any  # hooks without the client library's retries: for triggerHook
    restriction: Restriction | None = None
    bounds: CallBounds = DEFAULT_BOUNDS
    _options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _session: aiohttp.ClientSession | None = field(default=None, repr=False, compare=False)
    _observe: CallObserver | None = field(default=None, repr=False, compare=False)
    _restricted: dict[Restriction, Clients] = field(default_factory=dict, repr=False, compare=False)
    _waits: _Waits = field(default_factory=_Waits, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        options: dict[str, Any],
        session: aiohttp.ClientSession,
        bounds: CallBounds,
        restriction: Restriction | None = None,
        waits: _Waits | None = None,
        *,
        root_url: str | None = None,
        observe: CallObserver | None = None,
    ) -> Clients:
        """The services at `options["rootUrl"]`; `root_url`: the deployment's, when that is
        the proxy's (links name the deployment); every request told to `observe` if given."""
        # authorizedScopes travel in the signature: a call the proxy signs carries the task's
        # scopes, whatever it asks (the library would drop them unsigned).
        if restriction is not None and "credentials" in options:
            options = {**options, "authorizedScopes": list(restriction.scopes)}
        # The clients send unsigned, and their session signs (taskcluster_signing says why)
        # and sees each request (taskcluster_session).
        library_session, unsigned = for_the_library(session, options, observe)
        services: dict[str, Any] = {
            name: Bounded(name, make(dict(unsigned), session=library_session), bounds.deadline)
            for name, make in SERVICES.items()
        }
        # One attempt, so the call's deadline is the attempt's: a trigger is on its way no
        # longer than the call timeout (which actions/triggering.py's SETTLE outlasts).
        once = {**unsigned, "maxRetries": 0}
        services |= {
            name: Bounded("hooks", make(once, session=library_session), bounds.timeout)
            for name, make in ONCE_SERVICES.items()
        }
        return cls(
            root_url or options["rootUrl"],
            **services,
            restriction=restriction,
            bounds=bounds,
            _options=options,
            _session=session,
            _observe=observe,
            _waits=waits or _Waits(),
        )

    def restricted(self, acting_for: str, scopes: Sequence[str]) -> Clients:
        """These services, each call carrying only `scopes` (and the anonymous role's)."""
        assert self._session is not None
        restriction = Restriction(acting_for, tuple(scopes))
        if restriction not in self._restricted:
            base = {k: v for k, v in self._options.items() if k != "authorizedScopes"}
            self._restricted[restriction] = Clients.create(
                base,
                self._session,
                self.bounds,
                restriction,
                self._waits,
                root_url=self.root_url,
                observe=self._observe,
            )
        return self._restricted[restriction]

    def for_project(self, project: Project, job: str | None = None) -> Clients:
        """The clients every call made for `project` (for its `job`) goes through: limited to
        its scopes, so that Taskcluster refuses what the project may not do."""
        acting_for = f"project {project.name}" if job is None else f"{project.name}/{job}"
        return self.restricted(acting_for, project.authorized_scopes)

    @property
    def timed_out(self) -> bool:
        """Whether a call of these clients, or of their restricted forms, was explained as
        timed out: Taskcluster may be stalled, and another call would most likely wait as long."""
        return self._waits.timed_out

    def explain(
        self, error: BaseException, doing: str, *, retries: int = MAX_RETRIES
    ) -> TaskclusterError:
        """`explain`, with where to grant a scope these clients' calls lacked."""
        explained = explain(error, doing, self.restriction, retries=retries)
        if explained.timed_out:
            self._waits.timed_out = True
        return explained

    async def download_json(self, task_id: str, name: str) -> Any:
        """A task's latest artifact, parsed as JSON (any storage type the queue uses); the
        download is bounded as a call is (the library downloads in a session of its own)."""
        content, _ = await within(
            self.bounds.deadline,
            f"fetching {name} of {task_id}",
            taskcluster.aio.download.downloadArtifactToBuf(
                taskId=task_id, name=name, queueService=self.queue, maxRetries=MAX_RETRIES
            ),
        )
        try:
            return json.loads(bytes(content))
        except ValueError:
            raise TaskclusterError(f"artifact {name} of task {task_id} is not JSON") from None


@asynccontextmanager
async def connect(
    root_url: str,
    credentials: dict[str, str] | None,
    *,
    connections: int = 100,
    bounds: CallBounds = DEFAULT_BOUNDS,
    observe: CallObserver | None = None,
    proxy_url: str | None = None,
) -> AsyncIterator[Clients]:
    """The service's clients for one run: one session, the library's retry policy, every
    call within `bounds`; every request it sends, each retry included, is told to `observe`
    if given. With `proxy_url` (a task's taskcluster-proxy), every call goes to the proxy
    unsigned, as the client library supports (its rootUrl, no credentials), and the proxy
    signs it with the task's credentials; `root_url` still names the deployment in links."""
    # Connecting, or waiting for the next bytes of an answer, longer than the call timeout
    # fails the attempt with an aiohttp.ClientError, which the library retries.
    per_attempt = bounds.timeout.total_seconds()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=per_attempt, sock_read=per_attempt)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        options: dict[str, Any] = {"rootUrl": proxy_url or root_url, "maxRetries": MAX_RETRIES}
        if credentials and proxy_url is None:
            options["credentials"] = dict(credentials)
        yield Clients.create(options, session, bounds, root_url=root_url, observe=observe)


def connect_service(
    config: Config, *, observe: CallObserver | None = None
) -> AbstractAsyncContextManager[Clients]:
    """The clients of the service `config` describes: its root URL, its credentials (none: the
    anonymous role's) or the task's proxy, as many connections as its fires and expiry scans
    need, its bounds."""
    credentials = config.credentials.as_options() if config.credentials else None
    return connect(
        config.root_url,
        credentials,
        connections=config.connections,
        bounds=config.calls,
        observe=observe,
        proxy_url=config.proxy_url,
    )
