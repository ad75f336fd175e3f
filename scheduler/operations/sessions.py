"""Signing in to the dashboard: a session made from an API token the deployment knows, kept in the
ledger under the hash of its random id, found again while its token is configured as it was.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.clock import Clock
from scheduler.config.model import ApiRole, ApiToken
from scheduler.ledger import AsyncLedger, OperationsLedger, SignIn

# A session ends this long after sign-in, however busy: whoever keeps working signs in again.
SESSION_LIFETIME = timedelta(hours=12)
# 256 random bits: the session id a cookie carries.
SESSION_ID_BYTES = 32


@dataclass(frozen=True)
class SignedIn:
    """Who a session is: the token's name and role, until when."""

    name: str
    role: ApiRole
    expires_at: datetime


def _id_hash(session_id: str) -> str:
    # The ledger keeps this only: a session id read from a copy of the ledger opens nothing.
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class SessionOperations:
    """Sign-ins of the dashboard on the ledger every replica shares, on the service's clock."""

    ledger: AsyncLedger[OperationsLedger]
    clock: Clock

    async def sign_in(self, token: ApiToken) -> tuple[str, SignedIn]:
        """A new session for `token` (one the configuration has): its id, to hand to the
        browser and to nobody else, and who it is."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        now = self.clock()
        kept = SignIn(token.name, token.role, token.sha256, now, now + SESSION_LIFETIME)
        await self.ledger.run(lambda ledger: ledger.start_session(_id_hash(session_id), kept))
        return session_id, SignedIn(token.name, token.role, kept.expires_at)

    async def find(self, session_id: str, tokens: Sequence[ApiToken]) -> SignedIn | None:
        """Who the session `session_id` is, if it has not expired and the token it was made
        from is still among `tokens` under the same name and role (None otherwise): removing
        a token from the configuration, or changing its role, ends its sessions."""
        now = self.clock()
        found = await self.ledger.run(
            lambda ledger: ledger.session_of(_id_hash(session_id), now=now)
        )
        if found is None:
            return None
        for token in tokens:
            if (token.sha256, token.name, token.role) == (
                found.token_sha256,
                found.name,
                found.role,
            ):
                return SignedIn(token.name, token.role, found.expires_at)
        return None

    async def sign_out(self, session_id: str) -> bool:
        """End the session `session_id`; whether there was one."""
        return await self.ledger.run(lambda ledger: ledger.end_session(_id_hash(session_id)))
