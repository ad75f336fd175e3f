"""Who is asking: bearer tokens known by their SHA-256, compared in constant time, and roles.

Pure: the API's routes ask `authenticate` for the principal and `require` for the role; the
dashboard's sign-in asks `token_of`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from scheduler.common.hosts import is_loopback
from scheduler.config.model import ApiRole, ApiSettings, ApiToken
from scheduler.errors import Category, SchedulerError

# Who reads without a token, when the configuration makes reads public.
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    name: str
    role: ApiRole | None  # None: anonymous, allowed to read only if reads are public


class UnauthorizedError(SchedulerError, category=Category.UNAUTHORIZED, code="unauthorized"):
    """No token, or one nobody knows: 401."""


class ForbiddenError(SchedulerError, category=Category.FORBIDDEN, code="forbidden"):
    """A known token whose role does not allow this: 403."""


def hash_token(token: str) -> str:
    """What the configuration keeps of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(settings: ApiSettings, authorization: str | None) -> Principal:
    """The principal of an `Authorization` header (None: no header)."""
    if not authorization:
        return Principal(ANONYMOUS, None)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("use Authorization: Bearer <token>")
    found = token_of(settings, token)
    if found is None:
        raise UnauthorizedError("the token is not known to this deployment")
    return Principal(found.name, found.role)


def token_of(settings: ApiSettings, token: str) -> ApiToken | None:
    """The configured token `token` is (None: none), found by its SHA-256."""
    presented = hash_token(token).encode()
    found = None
    # Every configured token is compared, so the time taken says nothing about which matched.
    for known in settings.tokens:
        if hmac.compare_digest(presented, known.sha256.encode()):
            found = known
    return found


def require(settings: ApiSettings, principal: Principal, *, acting: bool) -> None:
    """Raise unless `principal` may read (or, `acting`, act)."""
    if principal.role is None:
        if acting or not settings.public_reads:
            raise UnauthorizedError("this needs a token: Authorization: Bearer <token>")
        return
    if acting and principal.role != "operator":
        raise ForbiddenError(
            f"token {principal.name!r} is a viewer; acting needs an operator token"
        )


def pages_public(settings: ApiSettings, host: str | None) -> bool:
    """Whether the dashboard's pages are shown without a token: with `public-reads`, or when
    no token is configured and the API listens on a loopback address only (`make run`'s
    embedded default: only this machine reaches it, and nobody could sign in anyway) and the
    request names a loopback host (`host`: its Host header), so that a page of another site
    whose name was made to resolve here (DNS rebinding) reads nothing."""
    if settings.public_reads:
        return True
    if settings.tokens or not is_loopback(settings.host) or not host:
        return False
    try:
        named = urlsplit(f"//{host}").hostname
    except ValueError:  # a Host header no browser sends
        return False
    return named is not None and is_loopback(named)
