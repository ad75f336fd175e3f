"""The operator's commands: `fire`, `action`, `jobs`, `pause`, `resume`, `history` and `audit`.

Each parses its arguments, calls one operation and presents its answer: a table or lines for
people, or with `--json` the answer as the API gives it.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from scheduler.cli.output import (
    console,
    echo,
    echo_json,
    echo_model,
    json_object,
    json_option,
    time_option,
)
from scheduler.cli.setup import (
    actor,
    carry_out,
    clock,
    config_option,
    fail_with,
    ledger_url,
    load,
    operations,
    start_logging,
)
from scheduler.cli.tables import last_fire_text, print_fires, table
from scheduler.cron import format_slot
from scheduler.ledger import FireState, RunState
from scheduler.operations.acts import FireFailedError
from scheduler.operations.audit import ActKind, target_of
from scheduler.operations.ledgered import open_ledger_operations
from scheduler.operations.models import (
    ActionOut,
    AuditOut,
    FiredOut,
    FireOut,
    FireQuery,
    PauseOut,
    ProjectJobsOut,
    ResumedOut,
)

# What `history --state` takes: a fire's states, then its run's.
HISTORY_STATES = tuple(dict.fromkeys(str(state) for state in (*FireState, *RunState)))


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
@json_option()
def fire(
    config_path: Path | None,
    project: str,
    job: str,
    cron_input: dict[str, Any] | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Run a job now, whatever its schedule says (recorded as a manual fire)."""
    config = load(config_path)
    start_logging()

    async def fire_now() -> FiredOut | FireFailedError:
        async with operations(config, follow=True) as ops:
            try:
                return await ops.fire_job(actor(), project, job, cron_input, dry_run=dry_run)
            except FireFailedError as failed:  # made and recorded: shown like any fire
                return failed

    answer = carry_out(fire_now())
    fired = answer.fired if isinstance(answer, FireFailedError) else answer
    if as_json:
        echo_model(fired)
    else:
        print_fires([fired], f"Manual fire of {project}/{job}")
    if isinstance(answer, FireFailedError):
        fail_with(answer)


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
@json_option()
def action(
    config_path: Path | None,
    project_name: str,
    action_name: str,
    action_input: dict[str, Any] | None,
    revision: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Trigger the action NAME of PROJECT's decision task, as Treeherder's action menu does.

    The action comes from the decision task's public/actions.json; its hook is triggered with
    the rendered payload. Each call triggers it once more: an action has no slot to dedupe on.
    """
    config = load(config_path)
    start_logging("warning")

    async def trigger() -> ActionOut:
        async with operations(config, follow=True) as ops:
            return await ops.run_action(
                actor(), project_name, action_name, action_input, revision=revision, dry_run=dry_run
            )

    triggered = carry_out(trigger())
    if as_json:
        echo_model(triggered)
        return
    hook = f"{triggered.hook_group_id}/{triggered.hook_id}"
    if triggered.dry_run:
        echo(f"dry run: would trigger hook {hook} with:")
        echo_json(triggered.payload)
        return
    echo(f"triggered {hook}: task {triggered.task_id}")
    if triggered.task_id:
        echo(f"{config.root_url}/tasks/{triggered.task_id}")


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
@json_option()
def jobs(config_path: Path | None, project_name: str, upcoming: int, as_json: bool) -> None:
    """PROJECT's jobs at its branch head: when each fires, the next fires, the last fire, and
    the pause holding it (the same as the API's /projects/PROJECT/jobs)."""
    config = load(config_path)
    start_logging("warning")

    async def read() -> ProjectJobsOut:
        async with operations(config) as ops:
            return await ops.jobs(project_name, upcoming=upcoming)

    overview = carry_out(read())
    if as_json:
        echo_model(overview)
        return
    title = f"{overview.project} at {overview.revision[:12]}"
    if overview.paused is not None:
        title += f" (project {overview.paused.summary})"
    shown = table(
        title, "job", "schedule (UTC)", "next", "last fire", "overlap", "paused", extra=["paused"]
    )
    for job in overview.jobs:
        last = job.last_fire
        shown.add_row(
            job.name,
            job.schedule if job.problem is None else f"{job.schedule}: {job.problem}",
            "\n".join(format_slot(slot) for slot in job.next_fires),
            last_fire_text(last) if last else "",
            job.overlap,
            job.paused.reason if job.paused else "",
        )
    console().print(shown)
    for problem in overview.problems:
        echo(problem, err=True)


@click.command()
@config_option
@click.argument("project")
@click.argument("job", required=False)
@click.option("--reason", required=True, help="Why: shown in history, and to whoever resumes it.")
@time_option(
    "--until", ahead=True, help="Lift the pause by itself at this time (default: when resumed)"
)
@json_option()
def pause(
    config_path: Path | None,
    project: str,
    job: str | None,
    reason: str,
    until: datetime | None,
    as_json: bool,
) -> None:
    """Stop JOB of PROJECT (or the whole project) from firing, without a commit.

    The service sees the pause at its next slot, whichever replica runs it; the paused slots
    are recorded as skipped, with the reason. JOB must be one of the project's .cron.yml at
    its branch head (exit 2 otherwise, naming its jobs).
    """
    config = load(config_path)

    async def hold() -> PauseOut:
        async with operations(config) as ops:  # a job named is checked against its .cron.yml
            return await ops.ledger.pause(actor(), project, job, reason=reason, until=until)

    paused = carry_out(hold())
    if as_json:
        echo_model(paused)
    else:
        echo(f"{target_of(project, job)}: {paused.summary}")


@click.command()
@config_option
@click.argument("project")
@click.argument("job", required=False)
@json_option()
def resume(config_path: Path | None, project: str, job: str | None, as_json: bool) -> None:
    """Let JOB of PROJECT (or the whole project) fire again from its next slot (exit 1 if it
    was not paused)."""
    config = load(config_path)

    async def release() -> ResumedOut:
        async with operations(config) as ops:
            return await ops.ledger.resume(actor(), project, job)

    resumed = carry_out(release())
    if as_json:
        echo_model(resumed)
    elif resumed.lifted is not None:
        lifted = resumed.lifted
        echo(f"{target_of(project, job)}: resumed (paused by {lifted.paused_by}: {lifted.reason})")
    else:
        echo(f"{target_of(project, job)} was not paused", err=True)
    if not as_json:
        for held in resumed.still_paused:
            note = f"{target_of(held.project, held.job)} is still {held.summary}"
            echo(f"note: {note}", err=True)
    sys.exit(0 if resumed.resumed else 1)


@click.command()
@config_option
@click.option("--project")
@click.option("--job")
@time_option("--since", help="Only fires of slots at or after this time")
@time_option("--until", help="Only fires of slots before this time")
@click.option(
    "--state",
    type=click.Choice(HISTORY_STATES),
    help="Only fires in this state, or whose run is in it (see above).",
)
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=200, show_default=True)
@json_option()
def history(
    config_path: Path | None,
    project: str | None,
    job: str | None,
    since: datetime | None,
    until: datetime | None,
    state: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """What the service fired, newest first, and how each run went (reads the ledger only:
    needs no credentials).

    \b
    A fire's state says how firing went: created (already-fired: an earlier
    attempt made the task), failed (no task was made), skipped, dry-run;
    claimed or retrying while under way. Its outcome says how the task it
    made went, as the service follows it: created -> running -> completed,
    failed or exception. For a job whose task group is watched, the run is
    running until every task of the group resolved, then failed if any
    failed, else exception if any ended in exception (or is blocked),
    else completed, with the group's counts.

    \b
    --state matches either. --state failed lists the fires that could not
    make their task AND those whose task or task group failed; running,
    completed and exception match the outcome; the others, the fire's
    state (--state created: every fire that made its task, however it went).
    """
    query = FireQuery.model_validate(
        {
            "project": project,
            "job": job,
            "since": since,
            "until": until,
            "state": state,
            "limit": limit,
        }
    )

    async def read() -> list[FireOut]:
        async with open_ledger_operations(ledger_url(config_path), clock()) as ops:
            return await ops.history(query)

    fires = carry_out(read())
    if as_json:
        echo_model(fires)
    else:
        print_fires(fires, "Fires, newest first", first_error_line=True)


@click.command(
    help=f"Who did what, newest first: every act the audit log keeps ({', '.join(ActKind)}), "
    "with who did it, its target and input, whether it worked, and what came of it."
)
@config_option
@time_option("--since", help="Only acts at or after this time")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@json_option()
def audit(config_path: Path | None, since: datetime | None, limit: int, as_json: bool) -> None:
    async def read() -> list[AuditOut]:
        async with open_ledger_operations(ledger_url(config_path), clock()) as ops:
            return await ops.audit(since=since, limit=limit)

    entries = carry_out(read())
    if as_json:
        echo_model(entries)
        return
    shown = table(
        "Audit log, newest first",
        "at",
        "actor",
        "action",
        "target",
        "ok",
        "result",
        extra=["result"],
    )
    for entry in entries:
        shown.add_row(
            entry.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            entry.actor,
            entry.action,
            entry.target,
            "yes" if entry.ok else "no",
            entry.result,
        )
    console().print(shown)
