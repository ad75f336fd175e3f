"""The `tc-scheduler expiry` commands: `report` what expires, `remediate` a project now."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from scheduler.cli.output import console, echo, echo_model, json_option
from scheduler.cli.setup import (
    EXIT_STATUS,
    actor,
    carry_out,
    clock,
    config_option,
    fail,
    load,
    operations,
    start_logging,
)
from scheduler.cli.tables import table
from scheduler.config.errors import UnknownProjectError
from scheduler.config.model import Project
from scheduler.operations.expiry_report import expiry_report
from scheduler.operations.models import ExpiryReportOut, RemediationOut


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
@json_option()
def expiry_report_command(
    config_path: Path | None, project_names: tuple[str, ...], within: float | None, as_json: bool
) -> None:
    """The cached tasks that have expired or expire soon, soonest first (exit 1 if any)."""
    config = load(config_path)
    projects = [p for p in config.projects if not project_names or p.name in project_names]
    unknown = set(project_names) - {p.name for p in projects}
    if unknown:
        error = UnknownProjectError(f"no such project: {', '.join(sorted(unknown))}")
        fail(str(error), EXIT_STATUS[error.category])
    start_logging("warning")
    errors = console(stderr=True)
    # A bar on a terminal only: a pipe, a log or JSON's reader wants the answer alone.
    with_bar = errors.is_terminal and not as_json
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:.0f} index entries read"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not with_bar,
    ) as bar:

        def progress(project: Project) -> Callable[[int], None]:
            step = bar.add_task(f"{project.name}: scanning its cached tasks", total=None)
            return lambda seen: bar.update(step, completed=seen)

        report: ExpiryReportOut = carry_out(
            expiry_report(
                config,
                projects,
                clock(),
                within=None if within is None else timedelta(days=within),
                progress=progress,
            )
        )
    if as_json:
        echo_model(report)
    else:
        shown = table(
            "Cached tasks at risk, soonest first",
            "project",
            "where",
            "task",
            "kind",
            "expires",
            "days left",
            "why",
            extra=["why"],
        )
        for task in report.at_risk:
            shown.add_row(
                task.project,
                task.where,
                task.task_id,
                task.kind or "",
                "gone" if task.expires is None else task.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                f"{task.days_left:.1f}",
                task.because,
            )
        console().print(shown)
    echo(f"{report.scanned} cached tasks scanned, {len(report.at_risk)} at risk", err=True)
    sys.exit(1 if report.at_risk else 0)


@expiry_group.command("remediate")
@config_option
@click.argument("project_name", metavar="PROJECT")
@click.option("--dry-run", is_flag=True, help="Say what would be triggered; trigger nothing.")
@json_option("Print the answer as JSON.")
def expiry_remediate(
    config_path: Path | None, project_name: str, dry_run: bool, as_json: bool
) -> None:
    """Scan PROJECT now and rebuild what is expiring (or follow the rebuild that runs)."""
    config = load(config_path)
    start_logging("warning")

    async def remediate() -> RemediationOut:
        async with operations(config, follow=True) as ops:
            return await ops.remediate(actor(), project_name, dry_run=dry_run)

    remediation = carry_out(remediate())
    if as_json:
        echo_model(remediation)
    elif not remediation.events:
        echo(f"{project_name}: nothing at risk, no rebuild running")
    else:
        for event in remediation.events:
            echo(f"{project_name}: {event.kind}: {event.message}")
    sys.exit(1 if any(event.failed for event in remediation.events) else 0)
