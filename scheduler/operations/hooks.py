"""The hooks folder against the Hooks service: what differs (`hook_plans`), and applying it
(`apply_hooks`, audited). Firing one hook is an act of `Operations`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from scheduler.clock import Clock
from scheduler.common.wording import counted
from scheduler.config.model import Config
from scheduler.hooks.changes import ABSENT, FieldChange, HookPlan, plan
from scheduler.hooks.definitions import HookFolder, HookKey
from scheduler.hooks.service import Applied, apply_plan, deployed_hooks
from scheduler.ledger import open_async_ledger
from scheduler.operations.audit import ActKind, audited, make_act
from scheduler.operations.models import HookAppliedOut, HookPlanOut
from scheduler.taskcluster import connect_service


async def hook_plans(config: Config, folder: HookFolder) -> list[HookPlan]:
    """How each hook of the folder (and of its groups) differs from what is deployed."""
    async with connect_service(config) as clients:
        deployed: dict[HookKey, Any] = await deployed_hooks(clients, folder.groups)
    return plan(folder, deployed)


async def apply_hooks(
    config: Config,
    clock: Clock,
    actor: str,
    folder: HookFolder,
    where: str,
    *,
    prune: bool,
    dry_run: bool,
    would: Callable[[HookPlan], str],
) -> list[Applied]:
    """Create and update hooks until the Hooks service matches `folder` (found at `where`),
    removing undeclared ones with `prune`; in a dry run, `would` says what each would be.
    Audited; raises TaskclusterError when reading the deployed hooks fails."""
    act = make_act(actor, ActKind.HOOKS_APPLY, where, {"prune": prune, "dry_run": dry_run})

    async def apply() -> list[Applied]:
        async with connect_service(config) as clients:
            plans = plan(folder, await deployed_hooks(clients, folder.groups))
            if dry_run:
                return [Applied(p, would(p)) for p in plans]
            return await apply_plan(clients, plans, prune=prune)

    async with open_async_ledger(config.ledger_url) as ledger:
        return await audited(ledger, clock, act, apply, applied_outcome)


def applied_outcome(results: list[Applied]) -> tuple[bool, str]:
    """Whether every hook was applied, and how many had each outcome."""
    failed = sum(applied.error is not None for applied in results)
    counts = Counter(applied.outcome for applied in results if applied.error is None)
    said = ", ".join(f"{outcome} {count}" for outcome, count in sorted(counts.items()))
    if failed:
        said += f"; {counted(failed, 'hook')} failed"
    return not failed, said or "nothing"


def plan_out(planned: HookPlan) -> HookPlanOut:
    """A hook's plan as the commands' `--json` show it."""
    return HookPlanOut(
        hook=str(planned.key),
        hook_group_id=planned.key.group_id,
        hook_id=planned.key.hook_id,
        change=str(planned.change),
        file=planned.declared.path if planned.declared else None,
        fields=[_change_json(change) for change in planned.fields],
    )


def applied_out(applied: Applied) -> HookAppliedOut:
    """What applying did to a hook, as `hooks apply --json` shows it."""
    shown = plan_out(applied.plan).model_dump()
    return HookAppliedOut(**shown, outcome=applied.outcome, error=applied.error)


def _change_json(change: FieldChange) -> dict[str, Any]:
    shown: dict[str, Any] = {"path": change.where}
    if change.old is not ABSENT:
        shown["old"] = change.old
    if change.new is not ABSENT:
        shown["new"] = change.new
    return shown
