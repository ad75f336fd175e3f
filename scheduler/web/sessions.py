"""Who is asking on the dashboard: the session cookie made at sign-in, else the Authorization
header, else anonymous; each session's CSRF token, the cookie's attributes, and how many failed
sign-ins a client may make.

The session id lives in the cookie only: the ledger keeps its hash, pages show a CSRF token
derived from it by HMAC (which says nothing of the id), and nothing logs it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response

from scheduler.config.model import ApiSettings
from scheduler.operations.acts import Operations
from scheduler.web.auth import Principal, authenticate

# Its name ends in "token" so that the log's masking (`token=...`) hides its value in any text.
COOKIE = "tcs_session_token"
# The hidden field of every form that acts (and of sign-out).
CSRF_FIELD = "csrf"
_CSRF_PURPOSE = b"tc-scheduler dashboard form"

# Failed sign-ins a client may make within the window before it is told to wait.
SIGN_IN_FAILURES = 10
SIGN_IN_WINDOW = timedelta(minutes=15)
# Clients remembered at most: a flood of addresses forgets the oldest, never fills memory.
SIGN_IN_CLIENTS = 10_000


@dataclass(frozen=True)
class Reader:
    """Who reads or acts: the principal, and the CSRF token of its session (None: no session,
    as for a reader known by its Authorization header, or anonymous)."""

    principal: Principal
    csrf: str | None = None

    @property
    def signed_in(self) -> bool:
        return self.csrf is not None

    @property
    def operator(self) -> bool:
        return self.principal.role == "operator"

    def shown(self) -> dict[str, Any]:
        """As the templates read it (`me`): never the session id."""
        return {
            "name": self.principal.name,
            "role": self.principal.role,
            "signed_in": self.signed_in,
            "operator": self.operator,
            # Forms act only with a session: an operator's header alone does not fill one in.
            "can_act": self.signed_in and self.operator,
            "csrf": self.csrf,
        }


def csrf_of(session_id: str) -> str:
    """The CSRF token of the session `session_id`: the same on every replica, for its life."""
    return hmac.new(session_id.encode(), _CSRF_PURPOSE, hashlib.sha256).hexdigest()


def same_csrf(reader: Reader, given: str | None) -> bool:
    """Whether `given` is the CSRF token of `reader`'s session (compared in constant time)."""
    if reader.csrf is None or not given:
        return False
    return hmac.compare_digest(reader.csrf.encode(), given.encode())


async def reader_of(request: Request) -> Reader:
    """Who asks: the session of the cookie, if it is live and its token still configured as
    it was; else the Authorization header's token (UnauthorizedError for one nobody knows);
    else anonymous."""
    settings: ApiSettings = request.app.state.settings
    operations: Operations = request.app.state.operations
    session_id = request.cookies.get(COOKIE)
    if session_id:
        signed = await operations.sessions.find(session_id, settings.tokens)
        if signed is not None:
            return Reader(Principal(signed.name, signed.role), csrf_of(session_id))
    return Reader(authenticate(settings, request.headers.get("authorization")))


def from_this_site(request: Request) -> bool:
    """Whether a form's post came from this site's own pages. Browsers say where a request
    comes from (`Sec-Fetch-Site`; older ones at least its `Origin`): a page of another site
    that submits a form here (to sign someone in as another, or out) is refused before
    anything else. A client that says neither (curl, say) is not a browser led astray."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    # Over plain HTTP, browsers say only the Origin: it must name this host, as the request
    # came (Host) or as a proxy that rewrote Host says it came (X-Forwarded-Host; no page of
    # another site can make a browser send that header).
    hosts = {request.headers.get("host"), request.headers.get("x-forwarded-host")} - {None}
    return origin != "null" and urlsplit(origin).netloc in hosts


def set_session_cookie(
    response: Response, request: Request, session_id: str, expires_at: datetime, now: datetime
) -> None:
    """Hand the browser its session: script cannot read it, no other site's request carries
    it, and it travels over TLS only when it came over TLS (uvicorn takes the scheme from
    X-Forwarded-Proto of the proxies FORWARDED_ALLOW_IPS names, loopback by default)."""
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=max(0, int((expires_at - now).total_seconds())),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


class SignInLimiter:
    """Failed sign-ins per client address, in this process: after SIGN_IN_FAILURES within
    SIGN_IN_WINDOW, the client waits for the oldest to leave the window. Guessing a 256-bit
    token is hopeless anyway; this keeps a script from filling the log and the CPU."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[datetime]] = {}

    def wait(self, client: str, now: datetime) -> timedelta | None:
        """How long `client` must wait before trying again (None: it may try now)."""
        failures = self._recent(client, now)
        if len(failures) < SIGN_IN_FAILURES:
            return None
        return failures[0] + SIGN_IN_WINDOW - now

    def failed(self, client: str, now: datetime) -> None:
        if client not in self._failures and len(self._failures) >= SIGN_IN_CLIENTS:
            del self._failures[next(iter(self._failures))]
        self._failures.setdefault(client, deque()).append(now)

    def _recent(self, client: str, now: datetime) -> deque[datetime]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - SIGN_IN_WINDOW:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
        return failures
