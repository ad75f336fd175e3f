"""The dashboard's sessions in the ledger, on SQLite and PostgreSQL: kept by the hash of their id
only, found until they expire, ended by signing out, shared by replicas, pruned once expired; and
the operations over them (a removed or changed token ends its sessions)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from scheduler.config.model import ApiToken, Retention
from scheduler.ledger import AsyncLedger, Cutoffs, Ledger, Pruned, SignIn
from scheduler.operations.ledgered import LedgerOperations
from scheduler.operations.sessions import SESSION_LIFETIME, SessionOperations

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TOKEN = ApiToken("sheriffs", "operator", hashlib.sha256(b"the-token").hexdigest())


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def sign_in(*, at: datetime = NOW, hours: int = 12) -> SignIn:
    return SignIn(TOKEN.name, TOKEN.role, TOKEN.sha256, at, at + timedelta(hours=hours))


def test_a_session_is_found_by_its_hash_until_it_expires(ledger: Ledger) -> None:
    ledger.start_session(sha("one"), sign_in())

    found = ledger.session_of(sha("one"), now=NOW + timedelta(hours=11))
    assert found == sign_in()
    assert ledger.session_of(sha("one"), now=NOW + timedelta(hours=12)) is None
    assert ledger.session_of(sha("two"), now=NOW) is None


def test_signing_out_ends_the_session_once(ledger: Ledger) -> None:
    ledger.start_session(sha("one"), sign_in())
    ledger.start_session(sha("two"), sign_in())

    assert ledger.end_session(sha("one"))
    assert not ledger.end_session(sha("one"))
    assert ledger.session_of(sha("one"), now=NOW) is None
    assert ledger.session_of(sha("two"), now=NOW) is not None


def test_only_hashes_are_kept(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        ledger.start_session("a-session-id-in-clear", sign_in())
    with pytest.raises(ValueError, match="expire after"):
        ledger.start_session(sha("x"), sign_in(hours=0))
    ledger.start_session(sha("x"), sign_in())
    with pytest.raises(IntegrityError):
        ledger.start_session(sha("x"), sign_in())


def test_replicas_share_sessions(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as one, Ledger.open(ledger_url) as other:
        one.start_session(sha("one"), sign_in())
        assert other.session_of(sha("one"), now=NOW) == sign_in()
        assert other.end_session(sha("one"))
        assert one.session_of(sha("one"), now=NOW) is None


def test_expired_sessions_are_pruned_and_live_ones_kept(ledger: Ledger) -> None:
    ledger.start_session(sha("old"), sign_in(at=NOW - timedelta(hours=13)))
    ledger.start_session(sha("live"), sign_in(at=NOW - timedelta(hours=1)))
    cutoffs = Cutoffs(fires=NOW, letters=NOW, audit=NOW - timedelta(days=365), sessions=NOW)

    assert ledger.prunable(cutoffs) == Pruned(sessions=1)
    assert ledger.prune(cutoffs) == Pruned(sessions=1)
    assert ledger.session_of(sha("live"), now=NOW) is not None
    # Without a sessions cutoff, no session is pruned.
    later = NOW + timedelta(days=1)
    assert ledger.prune(Cutoffs(fires=NOW, letters=NOW, audit=NOW)) == Pruned()
    # The operation prunes what expired by its clock.
    pruned = asyncio.run(
        LedgerOperations(AsyncLedger(ledger), lambda: later).prune("t", Retention())
    )
    assert pruned.sessions == 1


def test_the_operations_sign_in_find_and_sign_out(ledger_url: str) -> None:
    clock = [NOW]
    kept: list[str] = []

    async def scenario() -> None:
        with Ledger.open(ledger_url) as ledger:
            sessions = SessionOperations(AsyncLedger(ledger), lambda: clock[0])
            session_id, who = await sessions.sign_in(TOKEN)
            assert len(session_id) >= 43  # 256 random bits
            assert (who.name, who.role, who.expires_at) == (
                "sheriffs",
                "operator",
                NOW + SESSION_LIFETIME,
            )
            assert await sessions.find(session_id, [TOKEN]) == who
            assert await sessions.find(session_id + "x", [TOKEN]) is None
            # The token removed from the configuration, or its role changed: no session.
            assert await sessions.find(session_id, []) is None
            demoted = ApiToken(TOKEN.name, "viewer", TOKEN.sha256)
            assert await sessions.find(session_id, [demoted]) is None
            renamed = ApiToken("someone", TOKEN.role, TOKEN.sha256)
            assert await sessions.find(session_id, [renamed]) is None
            clock[0] = NOW + SESSION_LIFETIME
            assert await sessions.find(session_id, [TOKEN]) is None
            clock[0] = NOW
            assert await sessions.sign_out(session_id)
            assert await sessions.find(session_id, [TOKEN]) is None
            kept.append((await sessions.sign_in(TOKEN))[0])

    asyncio.run(scenario())
    # The ledger holds no session id, only its hash.
    engine = create_engine(ledger_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM sessions")).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    assert not [value for value in rows[0] if kept[0] in str(value)]
    assert sha(kept[0]) in rows[0]
