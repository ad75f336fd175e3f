"""The session the client library's clients are given, the one place that sees each request
they send (each attempt of a call): signed when there are credentials (taskcluster_signing), its
answer or loss told to whoever observes the calls (taskcluster_calls), and a 5xx noted for
explaining the call if it fails (taskcluster_failures).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from scheduler.taskcluster_calls import NO_ANSWER, CallObserver, timed
from scheduler.taskcluster_failures import request_answered, request_started
from scheduler.taskcluster_signing import Signer


# Why not aiohttp's trace configs: each one makes a Trace per request and awaits a dozen signals
# on it, whether anyone listens or not (the service's two cost about 30 us a createTask, when
# hundreds start at once); this sees the three moments they were for (sent, answered, lost).
class LibrarySession:
    """The one aiohttp session as a client of the library sees it (it calls `request` only,
    as `async with session.request(...) as response`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        signer: Signer | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        self._session = session
        self._signer = signer
        self._observe = observe

    def request(
        self,
        method: str,
        url: URL,
        *,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> _Request:
        """`aiohttp.ClientSession.request`, signed if there are credentials, and seen."""
        if self._signer is not None:
            headers = self._signer.signed(method, url, data, headers)
        sending = self._session.request(method, url, data=data, headers=headers, **options)
        return _Request(sending, method, url, self._observe)


class _Request:
    """One request being sent: the response once its headers came (its body is read after,
    in the `async with` block), with its answer or loss told, in the request's own task."""

    __slots__ = ("_method", "_observe", "_sending", "_url")

    def __init__(
        self,
        sending: Any,  # aiohttp's _RequestContextManager
        method: str,
        url: URL,
        observe: CallObserver | None,
    ) -> None:
        self._sending = sending
        self._method = method
        self._url = url
        self._observe = observe

    async def __aenter__(self) -> aiohttp.ClientResponse:
        method, url, observe = self._method, self._url, self._observe
        request_started(method, url)
        started = time.monotonic()
        try:
            response: aiohttp.ClientResponse = await self._sending.__aenter__()
        except BaseException:
            # Lost before its headers came: refused, reset, timed out, or the call abandoned.
            if observe is not None:
                observe(timed(method, url, NO_ANSWER, started))
            raise
        try:
            request_answered(method, url, response.status, response.reason)
            if observe is not None:
                observe(timed(method, url, str(response.status), started))
        except BaseException:
            # The response is released as the `async with` block would have, had it begun.
            await self._sending.__aexit__(*sys.exc_info())
            raise
        return response

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._sending.__aexit__(kind, error, traceback)


def for_the_library(
    session: aiohttp.ClientSession,
    options: Mapping[str, Any],
    observe: CallObserver | None = None,
) -> tuple[LibrarySession, dict[str, Any]]:
    """The session and options to make a client of the library with, from the options it would
    be given (`credentials`, `authorizedScopes`): a session that signs with the credentials, if
    any, and options without them; every request it sends is told to `observe` if given."""
    if "credentials" not in options:
        return LibrarySession(session, None, observe), dict(options)
    signer = Signer(options["credentials"], options.get("authorizedScopes"))
    unsigned = {k: v for k, v in options.items() if k not in ("credentials", "authorizedScopes")}
    return LibrarySession(session, signer, observe), unsigned
