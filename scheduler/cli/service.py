"""The commands that run the service or check its setup: `run`, `tick`, `preflight`,
`config check`, `notify test` and `api new-token`.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click

from scheduler import rounds, service
from scheduler.cli.output import echo, echo_json, echo_model, echo_yaml, json_option, time_option
from scheduler.cli.setup import (
    carry_out,
    clock,
    config_option,
    fail,
    known_project,
    load,
    start_logging,
)
from scheduler.cli.tables import print_fires
from scheduler.common.wording import counted
from scheduler.config.model import Config, Project
from scheduler.cron import format_slot
from scheduler.findings import Finding, findings_of, has_errors, summary_lines
from scheduler.ledger import LetterState
from scheduler.operations.models import NotifyTestOut, SlotOut
from scheduler.operations.notify_check import send_test
from scheduler.outcomes import SlotResult
from scheduler.preflight import preflight
from scheduler.web.auth import hash_token


@click.group("config")
def config_group() -> None:
    """Inspect the service configuration."""


@config_group.command("check")
@config_option
@json_option("Print the resolved configuration as JSON.")
@click.option(
    "--no-preflight",
    is_flag=True,
    help="Do not preflight the projects (which happens when credentials are set).",
)
def config_check(config_path: Path | None, as_json: bool, no_preflight: bool) -> None:
    """Validate the configuration and print it resolved, with secrets masked; with
    Taskcluster credentials (or in a task, through its proxy), also preflight every project
    (exit 1 on what it would refuse)."""
    config = load(config_path)
    masked = config.masked()
    if as_json:
        echo_json(masked)
    else:
        echo_yaml(masked)
    count = len(config.projects)
    echo(f"{config.source}: OK ({counted(count, 'project')})", err=True)
    if config.proxy_note is not None:
        echo(f"note: {config.proxy_note}", err=True)
    if not config.signs_calls or no_preflight:
        return
    findings = _preflight(config, config.projects)
    for line in summary_lines(findings):
        echo(line, err=True)
    echo(_preflight_summary(config.projects, findings), err=True)
    sys.exit(1 if has_errors(findings) else 0)


@click.command("preflight")
@config_option
@click.option("--project", "project_names", multiple=True, help="Only these projects.")
@json_option("Print the findings as a JSON list.")
def preflight_command(
    config_path: Path | None, project_names: tuple[str, ...], as_json: bool
) -> None:
    """Check every job's next task against what Taskcluster enforces, before it fires: the
    queue's rules, and the project's scopes as the deployment expands them (exit 1 on an
    error; warnings say what could not be checked)."""
    config = load(config_path)
    projects = [known_project(config, name) for name in project_names] or list(config.projects)
    findings = _preflight(config, projects)
    if as_json:
        echo_json([finding.to_json() for finding in findings])
    else:
        for line in summary_lines(findings):
            echo(line)
    echo(_preflight_summary(projects, findings), err=True)
    sys.exit(1 if has_errors(findings) else 0)


def _preflight(config: Config, projects: Sequence[Project]) -> list[Finding]:
    start_logging("error")

    async def check() -> list[Finding]:
        async with service.open_engine(config, clock=clock()) as engine:
            return findings_of(await preflight(engine, projects))

    return carry_out(check())


def _preflight_summary(projects: Sequence[Project], findings: list[Finding]) -> str:
    errors = sum(finding.is_error for finding in findings)
    warnings = len(findings) - errors
    checked = f"{counted(len(projects), 'project')} preflighted"
    return f"{checked}: {counted(errors, 'error')}, {counted(warnings, 'warning')}"


@click.command()
@config_option
def run(config_path: Path | None) -> None:
    """Run the service: tick every 15 minutes (UTC), catching up after gaps, until SIGTERM."""
    # Logging first: a configuration that cannot be used, a ledger that never answered or one a
    # newer release upgraded is one more line of the log (JSON off a terminal), exit 1.
    start_logging()
    config = load(config_path)
    carry_out(service.run(config, clock=clock()))


@click.command()
@config_option
@time_option("--at", required=True, help="A time in the slot, not later than now")
@json_option("Print the results as JSON.")
def tick(config_path: Path | None, at: datetime, as_json: bool) -> None:
    """Evaluate one slot now, exactly as the ticker would, then exit (1 if anything failed)."""
    config = load(config_path)
    now = clock()
    if at > now():
        fail(
            f"--at {at:%Y-%m-%dT%H:%M:%SZ} is later than now ({now():%Y-%m-%dT%H:%M:%SZ}): a "
            "slot is evaluated once it has begun, so nothing was fired or recorded; to run a "
            "job now, use `tc-scheduler fire PROJECT JOB`",
            2,
        )
    start_logging()

    async def evaluate() -> list[SlotResult]:
        async with service.open_service(config, clock=now) as running:
            return await rounds.tick_and_report(running.engine, running.notifier, at)

    results = carry_out(evaluate())
    slots = [SlotOut.model_validate(result) for result in results]
    if as_json:
        echo_model(slots)
    else:
        for slot in slots:
            if slot.error:
                echo(f"{slot.project} {format_slot(slot.slot)}: {slot.error}", err=True)
        fires = [
            f
            for slot in slots
            for f in (*slot.fires, *slot.skipped, *slot.paused, *slot.overlapping)
        ]
        print_fires(fires, f"Slot {format_slot(results[0].slot) if results else at}")
    sys.exit(0 if all(result.ok for result in results) else 1)


@click.group("notify")
def notify_group() -> None:
    """Check the notification setup."""


@notify_group.command("test")
@config_option
@click.option(
    "--channel",
    metavar="CHANNEL",
    help="Post to this Slack channel (like '#releng' or C0123) instead of the routed one.",
)
@json_option("Print where each message went as JSON.")
def notify_test(config_path: Path | None, channel: str | None, as_json: bool) -> None:
    """Send a test message through the real path (outbox, then Slack), and a Sentry event."""
    config = load(config_path)
    slack, sentry_settings = config.notify.slack, config.notify.sentry
    if slack is None and sentry_settings is None:
        fail("nothing to test: configure notify.slack or notify.sentry", 2)
    if channel is not None and (slack is None or slack.webhook_url is not None):
        fail("--channel needs a Slack bot token: an incoming webhook posts to one channel", 2)
    start_logging("warning")

    async def send() -> NotifyTestOut:
        async with service.open_service(config, clock=clock()) as running:
            return await send_test(running.engine, running.ledger, running.notifier, channel)

    sent = carry_out(send())
    if as_json:
        echo_model(sent)
    failed = False
    for letter in sent.slack:
        failed = failed or letter.state != LetterState.SENT
        if as_json:
            continue
        if letter.state == LetterState.SENT:
            echo(f"sent to {letter.destination}")
        elif letter.state == LetterState.FAILED:
            echo(f"not sent to {letter.destination}: {letter.error}", err=True)
        else:
            reason = letter.error or "it waits behind earlier undelivered messages"
            echo(f"not sent to {letter.destination} yet (queued, will retry): {reason}", err=True)
    if slack is not None and not sent.slack:
        failed = True
        echo("no Slack channel takes test messages: set notify.slack.channel", err=True)
    if sentry_settings is not None and not as_json:
        echo(f"sent a test event to Sentry (event id {sent.sentry_event_id})")
    sys.exit(1 if failed else 0)


@click.group("api")
def api_group() -> None:
    """The HTTP API's tokens."""


@api_group.command("new-token")
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["viewer", "operator"]), default="viewer", show_default=True
)
def api_new_token(name: str, role: str) -> None:
    """Make a token for NAME: print it once, and the entry for api.tokens (which keeps only its
    SHA-256, so the configuration holds no secret)."""
    if not name.strip():
        raise click.BadParameter(
            "give the token a name (the audit log says it for every act), like sheriffs",
            param_hint="NAME",
        )
    token = secrets.token_urlsafe(32)
    entry = {"name": name, "role": role, "sha256": hash_token(token)}
    # The one secret a command shows on purpose, once: the token it has just made.
    click.echo(f"token (give it to {name}; it is not shown again): {token}", err=True)  # noqa: TID251
    echo_yaml({"api": {"tokens": [entry]}})
