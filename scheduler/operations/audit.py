"""The audit log's one writer: every operator act, with who did it, its input and its outcome,
written once, whether it worked or failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from scheduler.clock import Clock
from scheduler.errors import SchedulerError
from scheduler.ledger import Act, AsyncLedger, OperationsLedger

T = TypeVar("T")

CUT_OFF = "cut off before it finished (the service was stopping, or the command interrupted)"


class ActKind(enum.StrEnum):
    """Every kind of act the audit log keeps, as its `action` names it: the one list the
    operations record acts by and `tc-scheduler audit --help` names."""

    FIRE = "fire"
    BACKFILL = "backfill"
    ACTION = "action"
    HOOK_FIRE = "hook-fire"
    HOOKS_APPLY = "hooks-apply"
    PAUSE = "pause"
    RESUME = "resume"
    EXPIRY_REMEDIATE = "expiry-remediate"
    LEDGER_PRUNE = "ledger-prune"
    LEDGER_UPGRADE = "ledger-upgrade"


def make_act(actor: str, kind: ActKind, target: str, given: dict[str, Any] | None) -> Act:
    """The act `actor` does of `kind` on `target` with the input `given`, to audit. Its
    action is the kind's plain text: a database driver writes an enum by its member's name."""
    return Act(actor, kind.value, target, given)


def target_of(project: str, job: str | None) -> str:
    """What an act on a project (or one of its jobs) names as its target."""
    return project if job is None else f"{project}/{job}"


async def audited(
    ledger: AsyncLedger[OperationsLedger],
    clock: Clock,
    act: Act,
    run: Callable[[], Awaitable[T]],
    outcome: Callable[[T], tuple[bool, str]],
) -> T:
    """Carry out `act` by awaiting `run`, then write it to the audit log: with `outcome` of its
    result (whether it worked, and what came of it), or with the error it raised (raised on),
    or as cut off when it is cancelled (cancelled on)."""
    try:
        result = await run()
    except SchedulerError as error:
        await record(ledger, clock, act, ok=False, result=error.describe())
        raise
    except asyncio.CancelledError:
        # Written if the ledger lets it: nothing may hold the cancellation up.
        with contextlib.suppress(Exception):
            await record(ledger, clock, act, ok=False, result=CUT_OFF)
        raise
    ok, said = outcome(result)
    await record(ledger, clock, act, ok=ok, result=said)
    return result


async def record(
    ledger: AsyncLedger[OperationsLedger], clock: Clock, act: Act, *, ok: bool, result: str
) -> None:
    """Write `act` and its outcome to the audit log."""
    now = clock()
    await ledger.run(lambda port: port.record_act(act, ok=ok, result=result, now=now))
