"""The service's commands: `run`, `tick`, `fire`, `history`, `expiry` and `config check`.

They share one way to find the configuration: --config, $TC_SCHEDULER_CONFIG, or the
embedded default that schedules the git repository around the current directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.progress import Progress, TaskID
from rich.table import Table

from scheduler import acts, logs, service
from scheduler.cli_support import console, echo, echo_json, echo_yaml, instant, json_object
from scheduler.commands import actor, clock, config_option, fail, load
from scheduler.config import Config, Project, UnknownProjectError
from scheduler.cron import format_slot
from scheduler.engine import UNCONFIRMED, FireError, FireResult, ProjectOverview, SlotResult
from scheduler.expiry import Event, ExpiryReport, Scanner, report_json
from scheduler.hooks_cli import hooks_group
from scheduler.ledger import AuditEntry, Fire, FireState, Ledger, Letter, LetterState
from scheduler.notify import sentry
from scheduler.notify.routing import SLACK_PREFIX, channel_of
from scheduler.preflight import Finding, findings_of, has_errors, preflight, summary_lines
from scheduler.taskcluster import TaskclusterError, connect
from scheduler.triggering import Triggered, TriggerError
from scheduler.web.auth import hash_token


@click.group("config")
def config_group() -> None:
    """Inspect the service configuration."""


@config_group.command("check")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the resolved configuration as JSON.")
@click.option(
    "--no-preflight",
    is_flag=True,
    help="Do not preflight the projects (which happens when credentials are set).",
)
def config_check(config_path: Path | None, as_json: bool, no_preflight: bool) -> None:
    """Validate the configuration and print it resolved, with secrets masked; with
    Taskcluster credentials, also preflight every project (exit 1 on what it would refuse)."""
    config = load(config_path)
    masked = config.masked()
    if as_json:
        echo_json(masked)
    else:
        echo_yaml(masked)
    count = len(config.projects)
    echo(f"{config.source}: OK ({count} project{'' if count == 1 else 's'})", err=True)
    if config.credentials is None or no_preflight:
        return
    findings = _preflight(config, config.projects)
    for line in summary_lines(findings):
        echo(line, err=True)
    echo(_preflight_summary(config.projects, findings), err=True)
    sys.exit(1 if has_errors(findings) else 0)


@click.command("preflight")
@config_option
@click.option("--project", "project_names", multiple=True, help="Only these projects.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON list.")
def preflight_command(
    config_path: Path | None, project_names: tuple[str, ...], as_json: bool
) -> None:
    """Check every job's next task against what Taskcluster enforces, before it fires: the
    queue's rules, and the project's scopes as the deployment expands them (exit 1 on an
    error; warnings say what could not be checked)."""
    config = load(config_path)
    projects = [_known(config, name) for name in project_names] or list(config.projects)
    findings = _preflight(config, projects)
    if as_json:
        echo_json([finding.to_json() for finding in findings])
    else:
        for line in summary_lines(findings):
            echo(line)
    echo(_preflight_summary(projects, findings), err=True)
    sys.exit(1 if has_errors(findings) else 0)


def _preflight(config: Config, projects: Sequence[Project]) -> list[Finding]:
    logs.configure(level="error")

    async def check() -> list[Finding]:
        async with service.open_engine(config, clock=clock()) as engine:
            return findings_of(await preflight(engine, projects))

    return asyncio.run(check())


def _preflight_summary(projects: Sequence[Project], findings: list[Finding]) -> str:
    errors = sum(finding.is_error for finding in findings)
    warnings = len(findings) - errors
    checked = f"{len(projects)} project{'' if len(projects) == 1 else 's'} preflighted"
    return f"{checked}: {errors} error{'' if errors == 1 else 's'}, " + (
        f"{warnings} warning{'' if warnings == 1 else 's'}"
    )


@click.command()
@config_option
def run(config_path: Path | None) -> None:
    """Run the service: tick every 15 minutes (UTC), catching up after gaps, until SIGTERM."""
    config = load(config_path)
    logs.configure()
    asyncio.run(service.run(config, clock=clock()))


@click.command()
@config_option
@click.option(
    "--at",
    required=True,
    metavar="ISO8601",
    callback=instant,
    help="A time in the slot (not later than now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
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
    logs.configure()

    async def evaluate() -> list[SlotResult]:
        async with service.open_service(config, clock=now) as (engine, notifier):
            return await service.tick_and_report(engine, notifier, at)

    results = asyncio.run(evaluate())
    fires = [f for result in results for f in (*result.fires, *result.skipped, *result.paused)]
    if as_json:
        echo_json([_slot_json(result) for result in results])
    else:
        for result in results:
            if result.error:
                echo(f"{result.project} {format_slot(result.slot)}: {result.error}", err=True)
        _print_fires(fires, f"Slot {format_slot(results[0].slot) if results else at}")
    sys.exit(0 if all(result.ok for result in results) else 1)


@click.command()
@config_option
@click.argument("project")
@click.argument("job")
@click.option(
    "--input",
    "cron_input",
    metavar="JSON",
    callback=json_object,
    help="The cron input, a JSON object.",
)
@click.option("--dry-run", is_flag=True, help="Render and record, but create nothing.")
def fire(
    config_path: Path | None,
    project: str,
    job: str,
    cron_input: dict[str, Any] | None,
    dry_run: bool,
) -> None:
    """Run a job now, whatever its schedule says (recorded as a manual fire)."""
    config = load(config_path)
    logs.configure()

    async def fire_now() -> FireResult:
        async with service.open_service(config, clock=clock()) as (engine, notifier):
            result = await acts.fire_job(engine, actor(), project, job, cron_input, dry_run=dry_run)
            await notifier.round()
            return result

    try:
        result = asyncio.run(fire_now())
    except FireError as error:
        fail(str(error))
    _print_fires([result], f"Manual fire of {project}/{job}")
    if result.state is FireState.FAILED:
        sys.exit(1)


@click.command()
@config_option
@click.option("--project")
@click.option("--job")
@click.option(
    "--since",
    metavar="ISO8601",
    callback=instant,
    help="Only fires of slots at or after this time.",
)
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def history(
    config_path: Path | None,
    project: str | None,
    job: str | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """What the service fired, newest first."""
    config = load(config_path)
    ledger = Ledger.open(config.ledger_url)
    try:
        fires = ledger.fires(project=project, job=job, since=since, limit=limit)
    finally:
        ledger.close()
    if as_json:
        echo_json([_fire_json(f) for f in fires])
        return
    table = _table(
        "Fires, newest first", "slot", "project", "job", "kind", "state", "task", "error"
    )
    for record in fires:
        table.add_row(
            format_slot(record.slot),
            record.project,
            record.job,
            str(record.kind),
            _state_text(record.state, record.error),
            record.task_id or "",
            (record.error or "").splitlines()[0] if record.error else "",
        )
    console().print(table)


@click.command()
@config_option
@click.argument("project_name", metavar="PROJECT")
@click.option(
    "--upcoming",
    type=click.IntRange(min=0, max=100),
    default=3,
    show_default=True,
    help="How many next fires to show per job.",
)
@click.option("--json", "as_json", is_flag=True)
def jobs(config_path: Path | None, project_name: str, upcoming: int, as_json: bool) -> None:
    """PROJECT's jobs at its branch head: when each fires, the next fires, the last fire, and
    the pause holding it (the same as the API's /projects/PROJECT/jobs)."""
    config = load(config_path)
    _known(config, project_name)
    logs.configure(level="warning")

    async def read() -> ProjectOverview:
        async with service.open_engine(config, clock=clock()) as engine:
            return await engine.overview(project_name, upcoming=upcoming)

    try:
        overview = asyncio.run(read())
    except FireError as error:
        fail(str(error))
    if as_json:
        echo_json(_overview_json(overview))
        return
    title = f"{overview.project.name} at {overview.revision[:12]}"
    if overview.pause is not None:
        title += f" (project {overview.pause.describe()})"
    table = _table(title, "job", "schedule (UTC)", "next", "last fire", "paused")
    for job in overview.jobs:
        last = job.last_fire
        table.add_row(
            job.job.name,
            job.schedule if job.problem is None else f"{job.schedule}: {job.problem}",
            "\n".join(format_slot(slot) for slot in job.next_fires),
            f"{format_slot(last.slot)} {last.kind} {last.state}" if last else "",
            job.pause.reason if job.pause else "",
        )
    console().print(table)
    for problem in overview.problems:
        echo(problem, err=True)


def _overview_json(overview: ProjectOverview) -> dict[str, Any]:
    return {
        "project": overview.project.name,
        "revision": overview.revision,
        "paused": overview.pause.describe() if overview.pause else None,
        "jobs": [
            {
                "name": job.job.name,
                "schedule": job.schedule,
                "crontab": job.crontab,
                "problem": job.problem,
                "nextFires": [format_slot(slot) for slot in job.next_fires],
                "lastFire": _fire_json(job.last_fire) if job.last_fire else None,
                "paused": job.pause.describe() if job.pause else None,
            }
            for job in overview.jobs
        ],
        "problems": list(overview.problems),
    }


@click.command()
@config_option
@click.argument("project_name", metavar="PROJECT")
@click.argument("action_name", metavar="NAME")
@click.option(
    "--input", "action_input", metavar="JSON", callback=json_object, help="The action's input."
)
@click.option(
    "--revision",
    metavar="SHA",
    help="Use the decision task of this revision (default: the project's latest one).",
)
@click.option(
    "--dry-run", is_flag=True, help="Render the hook payload and print it; trigger nothing."
)
def action(
    config_path: Path | None,
    project_name: str,
    action_name: str,
    action_input: dict[str, Any] | None,
    revision: str | None,
    dry_run: bool,
) -> None:
    """Trigger the action NAME of PROJECT's decision task, as Treeherder's action menu does.

    The action comes from the decision task's public/actions.json; its hook is triggered with
    the rendered payload. Each call triggers it once more: an action has no slot to dedupe on.
    """
    config = load(config_path)
    _known(config, project_name)
    logs.configure(level="warning")

    async def trigger() -> Triggered:
        async with service.open_engine(config, clock=clock()) as engine:
            return await acts.run_action(
                engine,
                actor(),
                project_name,
                action_name,
                action_input,
                revision=revision,
                dry_run=dry_run,
            )

    try:
        triggered = asyncio.run(trigger())
    except (FireError, TriggerError) as error:
        fail(str(error))
    hook = f"{triggered.trigger.hook_group_id}/{triggered.trigger.hook_id}"
    if triggered.dry_run:
        echo(f"dry run: would trigger hook {hook} with:")
        echo_json(triggered.trigger.payload)
        return
    echo(f"triggered {hook}: task {triggered.task_id}")
    if triggered.task_id:
        echo(f"{config.root_url}/tasks/{triggered.task_id}")


@click.command()
@config_option
@click.argument("project")
@click.argument("job", required=False)
@click.option("--reason", required=True, help="Why: shown in history, and to whoever resumes it.")
@click.option(
    "--until",
    metavar="ISO8601",
    callback=instant,
    help="Lift the pause by itself at this time (default: until resumed).",
)
def pause(
    config_path: Path | None,
    project: str,
    job: str | None,
    reason: str,
    until: datetime | None,
) -> None:
    """Stop JOB of PROJECT (or the whole project) from firing, without a commit.

    The service sees the pause at its next slot, whichever replica runs it; the paused slots
    are recorded as skipped, with the reason.
    """
    config = load(config_path)
    _known(config, project, job)
    if not reason.strip():
        fail("--reason must say why", 2)
    with Ledger.open(config.ledger_url) as ledger:
        try:
            paused = ledger.pause(
                project, job, reason=reason, until=until, actor=actor(), now=clock()()
            )
        except ValueError as error:
            fail(str(error), 2)
    echo(f"{_target(project, job)}: {paused.describe()}")


@click.command()
@config_option
@click.argument("project")
@click.argument("job", required=False)
def resume(config_path: Path | None, project: str, job: str | None) -> None:
    """Let JOB of PROJECT (or the whole project) fire again from its next slot."""
    config = load(config_path)
    _known(config, project, job)
    now = clock()()
    with Ledger.open(config.ledger_url) as ledger:
        resumed = ledger.resume(project, job, actor=actor(), now=now)
        still = [p for p in ledger.pauses(project=project, at=now) if job is None or p.covers(job)]
    if resumed is None:
        echo(f"{_target(project, job)} was not paused", err=True)
    else:
        echo(f"{_target(project, job)}: resumed (paused by {resumed.paused_by}: {resumed.reason})")
    for pause in still:
        echo(f"note: {_target(pause.project, pause.job)} is still {pause.describe()}", err=True)
    sys.exit(0 if resumed is not None else 1)


@click.command()
@config_option
@click.option("--since", metavar="ISO8601", callback=instant, help="Only acts at or after this.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def audit(config_path: Path | None, since: datetime | None, limit: int, as_json: bool) -> None:
    """Who did what, newest first: pauses, resumes and manual fires."""
    config = load(config_path)
    with Ledger.open(config.ledger_url) as ledger:
        entries = ledger.audit_log(since=since, limit=limit)
    if as_json:
        echo_json([_audit_json(e) for e in entries])
        return
    table = _table("Audit log, newest first", "at", "actor", "action", "target", "ok", "result")
    for entry in entries:
        table.add_row(
            entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            entry.actor,
            entry.action,
            entry.target,
            "yes" if entry.ok else "no",
            entry.result,
        )
    console().print(table)


def _known(config: Config, project: str, job: str | None = None) -> Project:
    """The project, or exit 2 (jobs are not checked: the file may change until the fire)."""
    try:
        found = config.require_project(project)
    except UnknownProjectError as error:
        fail(str(error), 2)
    if job is not None and not job.strip():
        fail("the job name is empty", 2)
    return found


def _target(project: str, job: str | None) -> str:
    return project if job is None else f"{project}/{job}"


def _audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "input": entry.input,
        "ok": entry.ok,
        "result": entry.result,
    }


@click.group("expiry")
def expiry_group() -> None:
    """Watch cached tasks (toolchains, docker images, fetches) for coming expiry."""


@expiry_group.command("report")
@config_option
@click.option("--project", "project_names", multiple=True, help="Only these projects.")
@click.option(
    "--within",
    type=click.FloatRange(min=0),
    metavar="DAYS",
    help="Report what expires within DAYS (default: each project's threshold).",
)
@click.option("--json", "as_json", is_flag=True)
def expiry_report(
    config_path: Path | None, project_names: tuple[str, ...], within: float | None, as_json: bool
) -> None:
    """The cached tasks that have expired or expire soon, soonest first (exit 1 if any)."""
    config = load(config_path)
    projects = [p for p in config.projects if not project_names or p.name in project_names]
    unknown = set(project_names) - {p.name for p in projects}
    if unknown:
        fail(f"no such project: {', '.join(sorted(unknown))}", 2)
    logs.configure(level="warning")
    errors = console(stderr=True)

    now = clock()()

    async def scan() -> list[ExpiryReport]:
        credentials = config.credentials.as_options() if config.credentials else None
        async with connect(config.root_url, credentials, connections=config.connections) as clients:
            reports = []
            with Progress(console=errors, transient=True, disable=not errors.is_terminal) as bar:
                for project in projects:
                    step = bar.add_task(f"{project.name}: index entries", total=None)
                    scanner = Scanner(
                        clients.for_project(project),
                        concurrency=project.expiry.concurrency,
                        progress=functools.partial(_advance, bar, step),
                    )
                    watch = project.expiry
                    if within is not None:
                        watch = dataclasses.replace(watch, threshold=timedelta(days=within))
                    reports.append(await scanner.report(project, watch, now))
            return reports

    try:
        reports = asyncio.run(scan())
    except TaskclusterError as error:
        fail(error.message)
    rows = [row for report in reports for row in report_json(report)]
    if as_json:
        echo_json(rows)
    else:
        table = _table(
            "Cached tasks at risk, soonest first",
            "project",
            "where",
            "task",
            "kind",
            "expires",
            "days left",
            "why",
        )
        for row in rows:
            table.add_row(
                row["project"],
                row["where"],
                row["taskId"],
                row["kind"] or "",
                row["expires"],
                f"{row['daysLeft']:.1f}",
                row["because"],
            )
        console().print(table)
    scanned = sum(report.scanned for report in reports)
    echo(f"{scanned} cached tasks scanned, {len(rows)} at risk", err=True)
    sys.exit(1 if rows else 0)


@expiry_group.command("remediate")
@config_option
@click.argument("project_name", metavar="PROJECT")
@click.option("--dry-run", is_flag=True, help="Say what would be triggered; trigger nothing.")
def expiry_remediate(config_path: Path | None, project_name: str, dry_run: bool) -> None:
    """Scan PROJECT now and rebuild what is expiring (or follow the rebuild that runs)."""
    config = load(config_path)
    _known(config, project_name)
    logs.configure(level="warning")

    async def remediate() -> list[Event]:
        async with service.open_service(config, clock=clock()) as (engine, notifier):
            return await acts.remediate(engine, notifier, actor(), project_name, dry_run=dry_run)

    try:
        events = asyncio.run(remediate())
    except TaskclusterError as error:  # the scan failed: reported and audited
        fail(error.message)
    if not events:
        echo(f"{project_name}: nothing at risk, no rebuild running")
    for event in events:
        echo(f"{project_name}: {event.kind}: {event.message}")
    sys.exit(1 if any(event.failed for event in events) else 0)


def _advance(bar: Progress, step: TaskID, seen: int) -> None:
    bar.update(step, completed=seen)


def _fire_result_json(result: FireResult) -> dict[str, Any]:
    return {
        "project": result.project,
        "job": result.job,
        "slot": format_slot(result.slot),
        "kind": str(result.kind),
        "state": str(result.state) if result.state else "claimed-elsewhere",
        "taskId": result.task_id,
        "error": result.error,
    }


def _slot_json(result: SlotResult) -> dict[str, Any]:
    return {
        "project": result.project,
        "slot": format_slot(result.slot),
        "revision": result.revision,
        "error": result.error,
        "fires": [_fire_result_json(f) for f in result.fires],
        "skipped": [_fire_result_json(f) for f in result.skipped],
    }


def _fire_json(record: Fire) -> dict[str, Any]:
    return {
        "project": record.project,
        "job": record.job,
        "slot": format_slot(record.slot),
        "kind": str(record.kind),
        "state": str(record.state),
        "taskId": record.task_id,
        "revision": record.revision,
        "error": record.error,
        "replica": record.replica,
        "claimedAt": record.claimed_at.isoformat() if record.claimed_at else None,
        "finishedAt": record.finished_at.isoformat() if record.finished_at else None,
    }


def _print_fires(fires: list[FireResult], heading: str) -> None:
    table = _table(heading, "project", "job", "slot", "kind", "state", "task", "error")
    for result in fires:
        row = _fire_result_json(result)
        table.add_row(
            row["project"],
            row["job"],
            row["slot"],
            row["kind"],
            _state_text(result.state, result.error),
            row["taskId"] or "",
            row["error"] or "",
        )
    console().print(table)


def _state_text(state: FireState | None, error: str | None) -> str:
    """A fire's state as people read it: an already-fired fire not read back says so."""
    if state is FireState.ALREADY_FIRED and error and error.startswith(UNCONFIRMED):
        return f"{state} ({UNCONFIRMED})"
    return str(state) if state is not None else "claimed-elsewhere"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, box=box.SIMPLE, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


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
def notify_test(config_path: Path | None, channel: str | None) -> None:
    """Send a test message through the real path (outbox, then Slack), and a Sentry event."""
    config = load(config_path)
    slack, sentry_settings = config.notify.slack, config.notify.sentry
    if slack is None and sentry_settings is None:
        fail("nothing to test: configure notify.slack or notify.sentry", 2)
    if channel is not None and (slack is None or slack.webhook_url is not None):
        fail("--channel needs a Slack bot token: an incoming webhook posts to one channel", 2)
    logs.configure(level="warning")

    async def send() -> tuple[list[Letter], str | None]:
        async with service.open_service(config, clock=clock()) as (engine, notifier):
            event = notifier.reporter.test(
                config.projects[0].name if config.projects else "tc-scheduler",
                replica=config.replica,
                now=engine.clock(),
            )
            if channel is not None:
                event = dataclasses.replace(event, destinations=(f"{SLACK_PREFIX}{channel}",))
            await asyncio.to_thread(engine.ledger.report, [event], now=engine.clock())
            await notifier.postman.deliver()
            letters = await asyncio.to_thread(engine.ledger.letters, key=event.key)
            event_id = await asyncio.to_thread(sentry.test) if sentry_settings else None
            return letters, event_id

    letters, event_id = asyncio.run(send())
    failed = False
    for letter in letters:
        where = channel_of(letter.destination) or "the incoming webhook"
        if letter.state is LetterState.SENT:
            echo(f"sent to {where}")
        elif letter.state is LetterState.FAILED:
            failed = True
            echo(f"not sent to {where}: {letter.last_error}", err=True)
        else:
            failed = True
            reason = letter.last_error or "it waits behind earlier undelivered messages"
            echo(f"not sent to {where} yet (queued, will retry): {reason}", err=True)
    if slack is not None and not letters:
        failed = True
        echo("no Slack channel takes test messages: set notify.slack.channel", err=True)
    if sentry_settings is not None:
        echo(f"sent a test event to Sentry (event id {event_id})")
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
    token = secrets.token_urlsafe(32)
    entry = {"name": name, "role": role, "sha256": hash_token(token)}
    # The one secret a command shows on purpose, once: the token it has just made.
    click.echo(f"token (give it to {name}; it is not shown again): {token}", err=True)  # noqa: TID251
    echo_yaml({"api": {"tokens": [entry]}})


# The commands cli.py loads by name when one is asked for.
COMMANDS: dict[str, click.Command] = {
    "action": action,
    "api": api_group,
    "config": config_group,
    "expiry": expiry_group,
    "fire": fire,
    "audit": audit,
    "history": history,
    "hooks": hooks_group,
    "jobs": jobs,
    "notify": notify_group,
    "pause": pause,
    "preflight": preflight_command,
    "resume": resume,
    "run": run,
    "tick": tick,
}
