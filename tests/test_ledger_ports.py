"""The ledger's ports and its async boundary: `Ledger` is each consumer's port, a port offers
only its consumer's stores, and `AsyncLedger` runs ledger work off the event loop, on both
backends."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.ledger import (
    AsyncLedger,
    EngineLedger,
    ExpiryLedger,
    Fire,
    FireKind,
    FireState,
    Ledger,
    MonitorLedger,
    NotifierLedger,
    OperationsLedger,
    OutboxLedger,
    Pause,
    Watch,
    WatcherLedger,
    open_async_ledger,
)
from scheduler.ledger.mapping import to_record
from scheduler.ledger.models import FireRow, PauseRow, WatchRow

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
PORTS = (
    EngineLedger,
    WatcherLedger,
    NotifierLedger,
    OutboxLedger,
    ExpiryLedger,
    OperationsLedger,
    MonitorLedger,
)


def port_methods(port: type) -> set[str]:
    """The public methods a port offers: those of the stores it is made of."""
    return {
        name
        for base in port.__mro__
        for name, member in vars(base).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }


@pytest.mark.parametrize("port", PORTS, ids=lambda port: port.__name__)
def test_the_facade_is_every_port(port: type) -> None:
    assert issubclass(Ledger, port)
    assert port_methods(port), f"{port.__name__} offers no method"


def test_a_port_is_narrower_than_the_facade() -> None:
    offered = port_methods(Ledger)
    for port in PORTS:
        assert port_methods(port) < offered
    # Each consumer works on its own aggregates: the engine never settles letters, the
    # postman never claims a fire, the watcher never pauses.
    assert port_methods(EngineLedger).isdisjoint(port_methods(OutboxLedger))
    assert "claim_many" not in port_methods(OperationsLedger)
    assert "pause" not in port_methods(WatcherLedger)
    assert port_methods(ExpiryLedger) < port_methods(EngineLedger)


def run(coroutine: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine())


def test_the_boundary_runs_work_on_the_port_in_a_worker_thread(ledger: Ledger) -> None:
    threads: list[int] = []

    def claim_and_note(port: EngineLedger) -> list[Any]:
        threads.append(threading.get_ident())
        return port.claim_many(
            "p", [("nightly", T, FireKind.SCHEDULED)], replica="r", now=T, lease=LEASE
        )

    async def main() -> tuple[list[Any], list[Fire], datetime | None]:
        boundary: AsyncLedger[EngineLedger] = AsyncLedger(ledger)
        claimed = await boundary.run(claim_and_note)
        last = await boundary.run(lambda port: port.last_evaluated_slot("p"))
        # The one boundary of the composition root fits every consumer's port.
        operations: AsyncLedger[OperationsLedger] = AsyncLedger(ledger)
        fires = await operations.run(lambda port: port.fires(project="p"))
        return claimed, fires, last

    claimed, fires, last = run(main)
    assert [claim.job for claim in claimed] == ["nightly"]
    assert [(fire.job, fire.state) for fire in fires] == [("nightly", FireState.CLAIMED)]
    assert last is None
    assert len(threads) == 1
    assert threads[0] != threading.get_ident(), "ran on the event loop's thread"


def test_the_loop_runs_on_while_ledger_work_waits(ledger: Ledger) -> None:
    """The work waits for an event only the loop sets: it finishes only if the loop is free."""
    loop_ran = threading.Event()

    def wait_for_the_loop(port: NotifierLedger) -> list[str]:
        assert loop_ran.wait(timeout=30), "the event loop was blocked"
        return port.report([], now=T)

    async def main() -> list[str]:
        work = asyncio.create_task(AsyncLedger(ledger).run(wait_for_the_loop))
        await asyncio.sleep(0)  # the work starts in its thread
        loop_ran.set()
        return await work

    assert run(main) == []


def test_the_boundary_carries_context_and_raises_what_the_ledger_raises(ledger: Ledger) -> None:
    request = contextvars.ContextVar[str]("request")

    def read_context(_port: EngineLedger) -> str:
        return request.get()

    async def main() -> str:
        request.set("tick 7")
        boundary = AsyncLedger(ledger)
        with pytest.raises(ValueError, match="timezone-aware"):
            await boundary.run(lambda port: port.open_fires(due_at=datetime(2026, 3, 1)))
        return await boundary.run(read_context)

    assert run(main) == "tick 7"
    assert "Ledger" in repr(AsyncLedger(ledger))


# The one row-to-record mapping


def test_records_take_columns_by_name_convert_enumerations_and_keep_defaults() -> None:
    row = FireRow(
        id=7,
        project="p",
        job="nightly",
        slot=T,
        kind="catch-up",
        state="created",
        attempt=1,
        replica="r",
        revision=None,
        task_id="abc",
        error=None,
        details=None,
        claimed_at=T,
        lease_until=None,
        finished_at=T,
    )
    fire = to_record(Fire, row)
    assert (fire.id, fire.kind, fire.state, fire.sent_at) == (
        7,
        FireKind.CATCH_UP,
        FireState.CREATED,
        None,
    )
    assert to_record(Fire, row, state="failed", error="given wins").state is FireState.FAILED


def test_a_record_field_no_row_has_and_nobody_gives_is_an_error() -> None:
    row = PauseRow(id=1, project="p", job="", reason="r", paused_by="a", paused_at=T)
    assert to_record(Pause, row, job=None).job is None
    watch = WatchRow(fire_id=7, project="p", job="nightly", phase="task", created_at=T)
    with pytest.raises(TypeError, match=r"Watch\.slot"):
        to_record(Watch, watch, fire_state="created")


def test_the_opened_boundary_migrates_and_closes_the_ledger_off_the_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'ledger.db'}"
    closed_in: list[int] = []
    close = Ledger.close

    def noting_close(self: Ledger) -> None:
        closed_in.append(threading.get_ident())
        close(self)

    monkeypatch.setattr(Ledger, "close", noting_close)

    async def main() -> list[Any]:
        async with open_async_ledger(url) as boundary:
            return await boundary.run(
                lambda port: port.claim_many(
                    "p", [("nightly", T, FireKind.SCHEDULED)], replica="r", now=T, lease=LEASE
                )
            )

    claimed = run(main)
    assert [claim.job for claim in claimed] == ["nightly"]
    assert len(closed_in) == 1
    assert closed_in[0] != threading.get_ident(), "closed on the event loop's thread"
    with Ledger.open(url) as reopened:
        assert [fire.job for fire in reopened.fires()] == ["nightly"]
