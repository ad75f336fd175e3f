"""The ledger's upkeep: `ledger prune` removes what is past retention, `ledger upgrade` brings
its schema up to date. Both need the ledger settings alone (no Taskcluster, Slack or Sentry).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from scheduler.cli.output import duration, echo, echo_model, json_option
from scheduler.cli.setup import (
    actor,
    carry_out,
    clock,
    config_option,
    ledger_settings,
    start_logging,
)
from scheduler.durations import format_duration
from scheduler.operations.ledgered import open_ledger_operations, upgrade_ledger
from scheduler.operations.models import LedgerUpgradedOut, PrunedOut


@click.group("ledger")
def ledger_group() -> None:
    """Keep the ledger: prune its history, upgrade its schema."""


@ledger_group.command("prune")
@config_option
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@json_option()
def prune(config_path: Path | None, dry_run: bool, as_json: bool) -> None:
    """Remove what is past the configured retention (fires and slots 90d, delivered letters
    30d, audit 365d by default), keeping what is still needed: open or watched fires, each
    project's latest slot, open incidents, pending letters and what they reply to. The
    service does this once a day."""
    settings = ledger_settings(config_path)

    async def remove() -> PrunedOut:
        async with open_ledger_operations(settings.url, clock()) as ops:
            return await ops.prune(actor(), settings.retention, dry_run=dry_run)

    pruned = carry_out(remove())
    if as_json:
        echo_model(pruned)
        return
    retention = settings.retention
    kept = {
        "fires": retention.fires,
        "watches": retention.fires,
        "slots": retention.fires,
        "incidents": retention.fires,
        "letters": retention.letters,
        "audit": retention.audit,
    }
    verb = "would remove" if dry_run else "removed"
    for kind, kept_for in kept.items():
        echo(f"{kind}: {verb} {getattr(pruned, kind)} (kept {format_duration(kept_for)})")
    echo(f"sessions: {verb} {pruned.sessions} (kept until they expire)")


@ledger_group.command("upgrade")
@config_option
@click.option(
    "--wait",
    metavar="DURATION",
    callback=duration,
    help="Wait this long for a ledger that does not answer (default: ledger-wait, 10m unless "
    "configured; 0s: do not wait).",
)
@json_option()
def upgrade(config_path: Path | None, wait: timedelta | None, as_json: bool) -> None:
    """Bring the ledger's schema up to the newest this release knows (run before the new
    release's replicas; they upgrade it too when they start), waiting for a ledger that does not
    answer yet as `run` does. Refused on a ledger a newer release has upgraded. Audited when it
    applied migrations."""
    start_logging("warning")  # each attempt at a ledger that does not answer
    settings = ledger_settings(config_path)
    patience = settings.wait if wait is None else wait
    upgraded: LedgerUpgradedOut = carry_out(
        upgrade_ledger(settings.url, clock(), actor(), wait=patience)
    )
    if as_json:
        echo_model(upgraded)
    elif upgraded.upgraded:
        echo(
            f"ledger upgraded from {upgraded.from_revision or 'nothing'} to {upgraded.to_revision}"
        )
    else:
        echo(f"ledger up to date (revision {upgraded.to_revision})")
