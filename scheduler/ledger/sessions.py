"""Dashboard sessions: a sign-in kept under the SHA-256 of its id (the id itself never reaches the
ledger), found while it has not expired, ended by signing out; pruned once expired.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import SessionRow
from scheduler.ledger.records import SignIn
from scheduler.ledger.store import Store, aware

SHA256_HEX = 64


class SessionStore(Store):
    """Sessions of the dashboard's sign-in, shared by every replica on the ledger."""

    def start_session(self, id_sha256: str, sign_in: SignIn) -> None:
        """Keep `sign_in` under `id_sha256`, the hash of the session's id."""
        _check_hash("id_sha256", id_sha256)
        _check_hash("token_sha256", sign_in.token_sha256)
        created = aware("created_at", sign_in.created_at)
        expires = aware("expires_at", sign_in.expires_at)
        if expires <= created:
            raise ValueError("a session must expire after it starts")
        with self._transaction(writing=True) as session:
            session.add(
                SessionRow(
                    id_sha256=id_sha256,
                    name=sign_in.name,
                    role=sign_in.role,
                    token_sha256=sign_in.token_sha256,
                    created_at=created,
                    expires_at=expires,
                )
            )

    def session_of(self, id_sha256: str, *, now: datetime) -> SignIn | None:
        """The sign-in kept under `id_sha256`, unless it has expired by `now` (or never was)."""
        query = select(SessionRow).where(
            SessionRow.id_sha256 == id_sha256, SessionRow.expires_at > aware("now", now)
        )
        with self._transaction(writing=False) as session:
            row = session.scalars(query).one_or_none()
            return None if row is None else to_record(SignIn, row)

    def end_session(self, id_sha256: str) -> bool:
        """Forget the session kept under `id_sha256`; whether there was one."""
        with self._transaction(writing=True) as session:
            removed = session.scalars(
                delete(SessionRow)
                .where(SessionRow.id_sha256 == id_sha256)
                .returning(SessionRow.id)
                .execution_options(synchronize_session=False)
            ).all()
        return bool(removed)


def _check_hash(name: str, value: str) -> None:
    # Only a hash is ever kept: anything else here is a session id or a token by mistake.
    if len(value) != SHA256_HEX or not all(c in "0123456789abcdef" for c in value):
        raise ValueError(f"{name} must be a SHA-256 in lowercase hex")
