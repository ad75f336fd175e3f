"""How a Taskcluster call failed, in words a person can act on: `TaskclusterError` and
`explain`, the scopes a 403 lacked and where to grant them, and the 5xx an attempt met.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
from taskcluster.exceptions import (
    TaskclusterArtifactError,
    TaskclusterAuthFailure,
    TaskclusterConnectionError,
    TaskclusterFailure,
    TaskclusterRestFailure,
)
from yarl import URL

from scheduler.common.deadlines import DeadlineExceededError
from scheduler.common.wording import plural
from scheduler.durations import format_duration
from scheduler.errors import Category, SchedulerError
from scheduler.scopes import where_to_grant

# How many missing scopes an error names (a template can lack dozens of routes at once).
MISSING_SHOWN = 5


@dataclass(frozen=True)
class Restriction:
    """Whose calls these are and the scopes they are limited to (authorizedScopes)."""

    acting_for: str  # "project mozilla-central", "fenix/nightly", "the hook fire of g/id"
    scopes: tuple[str, ...]


class TaskclusterError(SchedulerError):
    """A Taskcluster call failed; `status` and `code` are the service's, when it answered.

    `missing_scopes`: for a 403 InsufficientScopes, the scopes the caller lacked.
    `transient`: the failure may pass (no answer, a 5xx, 429): trying again later may work.
    `uncertain`: the call may have taken effect all the same (no answer, or a 5xx).
    `timed_out`: no answer came in time (an attempt's timeout, or the call's deadline): asking
    the same service again at once would most likely wait as long.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        missing_scopes: tuple[str, ...] = (),
        answered: bool = True,
        timed_out: bool = False,
    ):
        super().__init__(message)
        self.answered = answered
        self.timed_out = timed_out
        self.message = message
        self.status = status
        self.code = code
        self.missing_scopes = missing_scopes

    @property
    def category(self) -> Category:  # type: ignore[override]
        return Category.NOT_FOUND if self.status == 404 else Category.REFUSED_UPSTREAM

    @property
    def error_code(self) -> str:  # type: ignore[override]
        return "not-found" if self.status == 404 else "taskcluster-error"

    @property
    def transient(self) -> bool:
        return self.uncertain or self.status == 429

    @property
    def uncertain(self) -> bool:
        return not self.answered or (self.status is not None and self.status >= 500)


def explain(
    error: BaseException,
    doing: str,
    restriction: Restriction | None = None,
    *,
    retries: int,
) -> TaskclusterError:
    """A TaskclusterError saying what failed while `doing`, in words a person can act on:
    the service's answer (status, code, message) when it answered, the artifact store's HTTP
    status when that failed, and "could not reach" only when no answer came at all. A missing
    scope is named with where to grant it: the role the `restriction` assumes, or the client.

    Only the first paragraph of the service's message is kept: the rest repeats the request,
    which may be large. Credentials never appear in either. `retries`: how many times the
    client retried the call (none for `hooks_once`).
    """
    if isinstance(error, TaskclusterError):
        return error
    if isinstance(error, DeadlineExceededError):
        answered = _forget_answer()
        what = "" if error.call in doing else f" {error.call}"
        last = f"; its last answer was {answered.status} {answered.reason}" if answered else ""
        return TaskclusterError(
            f"{doing} failed: timed out after {format_duration(error.after)}: Taskcluster did "
            f"not answer{what}{last}",
            answered=False,
            timed_out=True,
        )
    if isinstance(error, TaskclusterRestFailure | TaskclusterAuthFailure):
        body = error.body if isinstance(error.body, dict) else {}
        code = body.get("code") if isinstance(body.get("code"), str) else None
        message = str(body.get("message") or error).split("\n---\n")[0].strip()
        status = error.status_code
        missing = missing_scopes(message) if code == "InsufficientScopes" else ()
        if missing:
            message = _missing_advice(missing, restriction)
        elif status == 401 and restriction is not None and "authorizedScopes" in message:
            message = _overstep_advice(restriction)
        elif status == 401:
            message += " (check TASKCLUSTER_CLIENT_ID and TASKCLUSTER_ACCESS_TOKEN)"
        return TaskclusterError(
            f"{doing} failed: {status} {code or ''} {message}".replace("  ", " "),
            status=status,
            code=code,
            missing_scopes=missing,
        )
    if isinstance(error, aiohttp.ClientResponseError):
        # The client library raises these for a 5xx it gave up retrying, and downloads raise
        # them for what the artifact store answers.
        _forget_answer()
        url = error.request_info.real_url if error.request_info else None
        retried = f", still after {retries} retries" if error.status >= 500 and retries else ""
        return TaskclusterError(
            f"{doing} failed: {_who(url)} answered {error.status} {error.message}{retried}",
            status=error.status,
        )
    if isinstance(error, TaskclusterConnectionError | aiohttp.ClientError | asyncio.TimeoutError):
        answered = _forget_answer()
        if answered is not None:
            # An earlier attempt had an answer: the service is reachable, and failing.
            return TaskclusterError(
                f"{doing} failed: {_who(answered.url)} answered {answered.status} "
                f"{answered.reason}, still after {retries} retries (the last one: "
                f"{_connection_failure(error)})",
                status=answered.status,
            )
        if _timed_out(error):
            return TaskclusterError(
                f"{doing} failed: timed out: Taskcluster did not answer within "
                "taskcluster.call-timeout"
                + (f", at any of {retries + 1} attempts" if retries else ""),
                answered=False,
                timed_out=True,
            )
        return TaskclusterError(
            f"{doing} failed: could not reach Taskcluster"
            f"{f' after {retries} retries' if retries else ''} ({_connection_failure(error)}); "
            "check the root URL and the network",
            answered=False,
        )
    if isinstance(error, TaskclusterArtifactError):
        return TaskclusterError(f"{doing} failed: the artifact is an error artifact: {error}")
    if isinstance(error, TaskclusterFailure):
        return TaskclusterError(f"{doing} failed: {error}")
    raise error


def _who(url: URL | None) -> str:
    """Who answered a request to `url`: Taskcluster's API, or where an artifact is stored."""
    if url is not None and url.path.startswith("/api/"):
        return "Taskcluster"
    return f"{url.host if url else 'the artifact store'} (where the artifact is stored)"


@dataclass(frozen=True)
class _Answer:
    """A 5xx answered to the request being retried in this task."""

    method: str
    url: URL
    status: int
    reason: str


# The client library keeps only the last attempt's failure; when that is a lost connection,
# the 5xx an earlier attempt was answered is what says the service is up and failing.
_LAST_ANSWER: ContextVar[_Answer | None] = ContextVar("tc_scheduler_last_answer", default=None)

# The session the client library is given (taskcluster_session) tells these two of each
# request, in the request's own asyncio task: the note they keep, per task, of the 5xx of a
# request whose retries are still going on is seen by `explain` when the call fails in that
# task. `explain`, or a request to another URL, ends it.


def request_started(method: str, url: URL) -> None:
    """A request to `url` is being sent: a 5xx noted for another request is forgotten."""
    answer = _LAST_ANSWER.get()
    if answer is not None and (answer.url != url or answer.method != method):
        _LAST_ANSWER.set(None)


def request_answered(method: str, url: URL, status: int, reason: str | None) -> None:
    """The request to `url` was answered `status` (its headers; the body may follow)."""
    # Headers below 500 may still be followed by a lost body, which is retried: the note of an
    # earlier 5xx stays until the call is explained or another request starts.
    if status >= 500:
        _LAST_ANSWER.set(_Answer(method, url, status, reason or ""))


def _forget_answer() -> _Answer | None:
    """The 5xx noted for the request that just failed in this task, forgotten once read."""
    answer = _LAST_ANSWER.get()
    _LAST_ANSWER.set(None)
    return answer


def _timed_out(error: BaseException) -> bool:
    """Whether what went wrong on the wire was waiting too long (to connect, or for bytes)."""
    return isinstance(getattr(error, "superExc", None) or error, TimeoutError)


def _connection_failure(error: BaseException) -> str:
    """What went wrong on the wire, as far as the library kept it."""
    if _timed_out(error):
        return "timed out"
    cause = getattr(error, "superExc", None) or error
    if isinstance(cause, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "the connection was reset"
    if isinstance(cause, aiohttp.ClientPayloadError):
        return "the connection was reset in the middle of the answer"
    if isinstance(cause, aiohttp.ClientConnectorError):
        return "the connection was refused or the host is unknown"
    return f"{type(cause).__name__}: {cause}".rstrip(": ")


_MISSING = re.compile(r"missing the following scopes:\s*```\s*(.*?)\s*```", re.DOTALL)


def missing_scopes(message: str) -> tuple[str, ...]:
    """The scopes a 403 InsufficientScopes message says the caller lacked (the service
    renders them as a scope expression: a scope, or AllOf/AnyOf of them)."""
    found = _MISSING.search(message)
    if found is None:
        return ()
    try:
        expression = json.loads(found.group(1))
    except ValueError:
        return (found.group(1),)
    return tuple(_scopes_in(expression))


def _scopes_in(expression: Any) -> list[str]:
    if isinstance(expression, str):
        return [expression]
    if isinstance(expression, dict):
        operands = expression.get("AllOf") or expression.get("AnyOf") or []
        if "AnyOf" in expression and operands:
            return _scopes_in(operands[0])  # any one of them would do; name the first
        return [scope for operand in operands for scope in _scopes_in(operand)]
    return []


def _missing_advice(missing: tuple[str, ...], restriction: Restriction | None) -> str:
    shown = ", ".join(missing[:MISSING_SHOWN])
    if len(missing) > MISSING_SHOWN:
        shown += f" and {len(missing) - MISSING_SHOWN} more"
    named = f"missing {plural(len(missing), 'scope')} {shown}"
    them = "them" if len(missing) > 1 else "it"
    if restriction is None:
        return f"{named}; grant {them} to the service's client"
    grant = where_to_grant(restriction.scopes, how_many=len(missing))
    return f"{named}: {restriction.acting_for} may not use {them}; {grant} if it should"


def _overstep_advice(restriction: Restriction) -> str:
    return (
        f"the service's client does not hold the scopes of {restriction.acting_for} "
        f"({', '.join(restriction.scopes)}), so it cannot act for it; grant them to the client"
    )
