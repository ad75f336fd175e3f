"""The one HTTP session of remote reads (Mercurial's hgweb in `hg.py`, git's smart HTTP in
`smart_http.py`) for an engine's lifetime, and the one retry policy of its requests.

A request is retried on a lost connection, a timeout, a 5xx or a status that says it may pass,
as git's process reads are (`process.retrying`); any other answer is the caller's to judge.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import unquote

import aiohttp
from yarl import URL

from scheduler.git.process import RetryableSourceError, retrying, scrub

# Statuses that say the server, or a proxy before it, may answer the next attempt.
_PASSING_STATUSES = frozenset({408, 425, 429})
# What a server said, in the few words a message has room for.
_SAID_LIMIT = 200


@dataclass(frozen=True)
class Answer:
    """A server's final answer: status, content type, body (up to the limit asked) and the URL
    it came from after redirects."""

    status: int
    content_type: str
    body: bytes
    url: URL


class RemoteHttp:
    """An aiohttp session, open as long as `async with RemoteHttp() as http:`, in one event loop.

    `requests` counts what was sent by kind (`json-pushes`, `info/refs`, ...), retries included.
    """

    def __init__(
        self,
        *,
        attempts: int = 4,
        max_wait: float = 10.0,
        timeout: float = 60.0,
        connections: int = 32,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.max_wait = max_wait
        self.timeout = timeout
        self.connections = connections
        self.requests: Counter[str] = Counter()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=self.connections),
            headers={"User-Agent": "tc-scheduler"},
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        kind: str,
        url: str,
        address: URL,
        *,
        failure: str,
        limit: int,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """GET `address` (POST `data`, if given), retried while it fails in a way that may pass;
        the body is read up to `limit` bytes. `url` is the repository's, whose credentials (in
        `address` or not) are sent as HTTP basic auth and never appear in messages."""
        session = self._session
        if session is None:
            raise RuntimeError("RemoteHttp is used outside `async with`")
        auth = _basic_auth(address)
        plain = address.with_user(None) if auth is not None else address
        sent = {**(headers or {}), **({"Authorization": auth} if auth is not None else {})}

        async def attempt() -> Answer:
            self.requests[kind] += 1
            method = "GET" if data is None else "POST"
            try:
                async with session.request(
                    method, plain, data=data, headers=sent, allow_redirects=True
                ) as response:
                    answer = Answer(
                        status=response.status,
                        content_type=response.content_type,
                        body=await read_body(response.content, limit),
                        url=response.url,
                    )
            except (aiohttp.ClientError, TimeoutError) as error:
                said = scrub(str(error) or type(error).__name__, url)
                raise RetryableSourceError(f"{kind}: {said}") from None
            if answer.status >= 500 or answer.status in _PASSING_STATUSES:
                raise RetryableSourceError(
                    f"{kind} answered HTTP {answer.status}: {said_by(answer.body, url)}"
                )
            return answer

        return await retrying(
            attempt,
            attempts=self.attempts,
            max_wait=self.max_wait,
            failure=failure,
            advice="check that its host is reachable from here and answers",
        )


async def read_body(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The body up to its end or `limit` bytes, whichever comes first. One `read(limit)` is
    not that: it answers what has arrived so far, the first TCP segments of a long answer."""
    pieces: list[bytes] = []
    left = limit
    while left > 0:
        piece = await content.read(left)
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def _basic_auth(address: URL) -> str | None:
    """The URL's credentials as a basic `Authorization` header; a lone user name over HTTP is
    a token, sent as the user name with an empty password."""
    if address.raw_user is None:
        return None
    login, password = unquote(address.raw_user), unquote(address.raw_password or "")
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


def said_by(body: bytes, url: str) -> str:
    """What a server answered, in a line, without the credentials of `url`."""
    text = " ".join(body[: _SAID_LIMIT * 2].decode("utf-8", "replace").split())
    text = text if len(text) <= _SAID_LIMIT else text[: _SAID_LIMIT - 1] + "…"
    return scrub(text, url) or "nothing"
