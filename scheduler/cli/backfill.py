"""`tc-scheduler backfill`: fire the past slots of a range that jobs' schedules name, with a
progress bar on a terminal, and show each fire.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from scheduler.cli.output import console, echo, echo_model, json_option, now, time_option
from scheduler.cli.setup import actor, carry_out, config_option, load, operations, start_logging
from scheduler.cli.tables import print_fires
from scheduler.cron import format_slot
from scheduler.operations.models import MAX_FIRES, MAX_FIRES_LIMIT, BackfillOut
from scheduler.outcomes import FireResult


@click.command()
@config_option
@click.argument("project")
@click.argument("jobs", nargs=-1, metavar="[JOB]...")
@time_option(
    "--from",
    "start",
    required=True,
    help="The range's start: its first slot is the first at or after this time",
)
@time_option(
    "--until",
    help="The range's end, not in it; by default, and when later, now",
)
@click.option(
    "--max-fires",
    type=click.IntRange(min=1, max=MAX_FIRES_LIMIT),
    default=MAX_FIRES,
    show_default=True,
    help="Refuse a range that names more fires than this.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="List what would fire (slot, job, task id); claim, create and record nothing.",
)
@click.option(
    "--rerun-failed",
    is_flag=True,
    help="Fire again the slots whose recorded fire failed to make its task (one whose task ran "
    "and failed is already fired: rerun it from its task group).",
)
@json_option()
def backfill(
    config_path: Path | None,
    project: str,
    jobs: tuple[str, ...],
    start: datetime,
    until: datetime | None,
    max_fires: int,
    dry_run: bool,
    rerun_failed: bool,
    as_json: bool,
) -> None:
    """Fire every past slot in [--from, --until) that the schedules of PROJECT's JOBs (default:
    every job that runs on PROJECT) name, oldest first; exit 1 if any fire failed.

    \b
    Each slot is fired as the scheduler would have: with the slot's own task id, under the
    concurrency limit, recorded as a catch-up fire. So a slot already fired shows
    `already-fired` and is never fired twice, and running a backfill again fires nothing new.
    A slot whose fire made nothing (skipped by a catch-up or overlap policy or a pause at the
    time, or a dry run) is fired; one whose fire failed is shown failed, as recorded, unless
    --rerun-failed fires it again (its next attempt, with the slot's task id: a task the
    failed attempt made after all is shown already-fired, never doubled); one that has not
    begun never is (an --until later than now is taken as now). A job paused now is
    skipped as the scheduler skips it, and nothing is recorded for it: backfill again once it
    is resumed. The job's overlap policy does not hold a backfill back, nor cancel anything.

    \b
    Every fire is made from the branch head as it is now, whose .cron.yml and
    .taskcluster.yml decide, as a catch-up fire after an outage is (and as build-decision's
    cron task reads the head when it runs); the task's `created` is the time it is made.

    \b
    A fire that fails for a passing reason (Taskcluster answering 5xx, a timeout) is left
    `retrying`, as a scheduled fire is, not failed: the service's recovery rounds try it
    again until the job's max-lateness has passed since the backfill asked for it.
    """
    config = load(config_path)
    start_logging("warning")

    async def fire() -> BackfillOut:
        async with operations(config, follow=not dry_run) as ops:
            with _progress_bar(shown=not as_json) as progress:
                return await ops.backfill(
                    actor(),
                    project,
                    jobs,
                    start=start,
                    until=until if until is not None else now(),
                    max_fires=max_fires,
                    dry_run=dry_run,
                    rerun_failed=rerun_failed,
                    progress=progress,
                )

    done = carry_out(fire())
    if as_json:
        echo_model(done)
    else:
        for note in done.notes:
            echo(f"note: {note}", err=True)
        span = f"{format_slot(done.start)} to {format_slot(done.until)}"
        heading = f"Backfill of {done.project}, {span}, at {done.revision[:12]}"
        if done.fires:
            print_fires(done.fires, heading + (" (dry run: nothing fired)" if done.dry_run else ""))
        else:
            echo(heading)
        counts = ", ".join(f"{count} {state}" for state, count in done.counts.items())
        echo(counts or "no slot of the range is named by the jobs' schedules")
    sys.exit(1 if done.counts.get("failed") else 0)


class _Bar:
    """A backfill's progress, drawn on standard error while it goes."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("backfill", total=None, start=False)

    def planned(self, total: int) -> None:
        self._progress.update(self._task, total=total)
        self._progress.start_task(self._task)

    def fired(self, fire: FireResult) -> None:
        self._progress.update(
            self._task, advance=1, description=f"{fire.job} {format_slot(fire.slot)}"
        )


@contextmanager
def _progress_bar(*, shown: bool) -> Iterator[_Bar | None]:
    """A progress bar on a terminal (standard error, secrets masked), when `shown`; else None:
    not when either output is piped, nor with --json."""
    output = console(stderr=True)
    if not shown or not (output.is_terminal and console().is_terminal):
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=output, transient=True) as progress:
        yield _Bar(progress)
