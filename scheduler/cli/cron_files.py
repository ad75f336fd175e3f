"""The commands that work on files alone, without the service: `check`, `plan` and `render`
(run by editors and CI on every change, so they load no Taskcluster client nor database).
"""

from __future__ import annotations

import functools
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, cast

import click

from scheduler.cli.output import (
    console,
    echo,
    echo_json,
    echo_json_records,
    json_object,
    json_option,
    now,
    table,
    time_option,
)
from scheduler.common.wording import counted, plural
from scheduler.common.yamldoc import MAX_BYTES
from scheduler.cron import (
    CronFile,
    Diagnostic,
    PlannedFire,
    Position,
    Severity,
    fires_between,
    format_slot,
    load_cron,
    next_fires,
    slot_of,
)

if TYPE_CHECKING:  # JSON-e is imported by `render` alone (`check` and `plan` do without it)
    from scheduler.render import RepositoryType

CRON_FILE_NAME = ".cron.yml"
DEFAULT_PLAN_SPAN = timedelta(hours=24)


def _cron_targets(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[Path, tuple[str, ...]], ...]:
    """Option callback of `--cron PATH` or `--cron PATH=NAME,NAME`: each file, and the projects
    it is planned on (none: those of --project). A path that exists as written is a path."""
    targets = []
    for text in values:
        path, names = text, ""
        if not Path(text).exists() and "=" in text:
            path, names = text.rsplit("=", 1)
        if not path:
            raise click.BadParameter(f"{text!r} names no file: write PATH=NAME,NAME", ctx, param)
        if not Path(path).exists():
            raise click.BadParameter(f"{path!r} does not exist", ctx, param)
        projects = tuple(name.strip() for name in names.split(",") if name.strip())
        if path != text and not projects:
            raise click.BadParameter(
                f"{text!r} names no project after '=': write PATH=NAME,NAME", ctx, param
            )
        targets.append((Path(path), projects))
    return tuple(targets)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@json_option("Print the results as JSON.")
@click.option(
    "--project",
    "projects",
    multiple=True,
    metavar="NAME",
    help="A project the file is used for (repeatable); enables the checks that need them.",
)
def check(paths: tuple[Path, ...], as_json: bool, projects: tuple[str, ...]) -> None:
    """Validate .cron.yml files (a directory stands for the .cron.yml in it).

    Prints PATH:LINE:COL: error|warning: message for each problem; exits 1 if any is an error.
    """
    results = [_load(path, projects or None) for path in paths]
    if as_json:
        report = {
            "files": [
                {
                    "path": result.path,
                    "errors": [d.as_json() for d in result.errors],
                    "warnings": [d.as_json() for d in result.warnings],
                    "jobs": len(result.jobs),
                }
                for result in results
            ]
        }
        echo_json(report)
    else:
        for result in results:
            for diagnostic in result.diagnostics:
                _echo_diagnostic(diagnostic)
        errors = sum(len(result.errors) for result in results)
        warnings = sum(len(result.warnings) for result in results)
        jobs = sum(len(result.jobs) for result in results)
        echo(
            f"{counted(len(results), 'file')}, {jobs} valid {plural(jobs, 'job')}: "
            f"{counted(errors, 'error')}, {counted(warnings, 'warning')}",
            err=True,
        )
    if any(result.errors for result in results):
        sys.exit(1)


@click.command()
@click.option(
    "--cron",
    "targets",
    required=True,
    multiple=True,
    callback=_cron_targets,
    metavar="PATH[=NAME,...]",
    help="A .cron.yml to plan (or a directory holding one), on the projects named after it "
    "or else on every --project; repeatable.",
)
@click.option(
    "--project",
    "projects",
    multiple=True,
    metavar="NAME",
    help="A project to plan every --cron on that names none of its own; repeatable.",
)
@time_option("--from", "start", ahead=True, help="Start (default: now)")
@time_option("--until", ahead=True, help="End (default: 24 h after the start)")
@click.option(
    "--next",
    "count",
    type=click.IntRange(min=1),
    help="Show the next N fires (of each file on each of its projects) instead.",
)
@json_option("Print [{slot, job}] as JSON ([{slot, file, project, job}] for several).")
def plan(
    targets: tuple[tuple[Path, tuple[str, ...]], ...],
    projects: tuple[str, ...],
    start: datetime | None,
    until: datetime | None,
    count: int | None,
    as_json: bool,
) -> None:
    """List the fires of .cron.yml files on projects, in slot order: each --cron file on the
    projects named after it (PATH=NAME,NAME), or else on every --project, in one table (or
    JSON list) that names the file and project of each fire.

    Jobs with errors are left out and reported on standard error, and the exit status is 1;
    the other jobs and files are planned all the same.
    """
    if until is not None and count is not None:
        raise click.UsageError("give --until or --next, not both")
    start = start or now()
    end = None
    if count is None:
        end = until or start + DEFAULT_PLAN_SPAN
        if end <= start:
            raise click.UsageError("--until must be later than --from")
    pairs = _plan_pairs(targets, projects)
    rows: list[_PlanRow] = []
    # A job's by-project error for a project can be both in the file's errors and the plan's.
    errors: dict[Diagnostic, None] = {}
    for path, names in pairs.items():
        cron = _load(path, None)  # each file read and parsed once, whatever its projects
        errors.update(dict.fromkeys(cron.errors))
        for project in names:
            if end is None:
                assert count is not None
                result = next_fires(cron, project, start, count)
            else:
                result = fires_between(cron, project, start, end)
            errors.update(dict.fromkeys(result.problems))
            rows.extend(_PlanRow(cron.path, project, fire) for fire in result.fires)
    # Stable: by slot, then in the order the files and projects were given, then by job.
    rows.sort(key=lambda row: row.fire.slot)
    for diagnostic in errors:
        _echo_diagnostic(diagnostic, err=True)
    several = len(pairs) > 1 or any(len(names) > 1 for names in pairs.values())
    if as_json:
        # A year of a fleet's fires shares some 35,000 slots: each is written out once.
        slot_text = functools.cache(format_slot)
        keys = ("slot", "file", "project", "job") if several else ("slot", "job")
        echo_json_records(keys, (row.as_record(several, slot_text(row.fire.slot)) for row in rows))
    else:
        _print_plan_table(rows, _plan_heading(pairs, start, end, count), several)
    if errors:
        sys.exit(1)


def _plan_pairs(
    targets: tuple[tuple[Path, tuple[str, ...]], ...], projects: tuple[str, ...]
) -> dict[Path, tuple[str, ...]]:
    """Each file given, once (however it was named: a folder, the file in it), with the
    projects it is planned on, in the order given."""
    given: dict[Path, Path] = {}  # the file itself -> the path it was first given as
    pairs: dict[Path, dict[str, None]] = {}
    for path, own in targets:
        if not own and not projects:
            raise click.UsageError(
                f"no project to plan {path} on: give --project NAME, or name the file's own "
                f"after it: --cron {path}=NAME,NAME"
            )
        file = (path / CRON_FILE_NAME if path.is_dir() else path).resolve()
        shown = given.setdefault(file, path)
        pairs.setdefault(shown, {}).update(dict.fromkeys(own or projects))
    return {path: tuple(names) for path, names in pairs.items()}


class _PlanRow(NamedTuple):
    """One fire of `plan`: the file and project it was planned from (a tuple: a fleet's year
    is tens of thousands of them)."""

    file: str
    project: str
    fire: PlannedFire

    def as_record(self, several: bool, slot: str) -> tuple[str, ...]:
        """As `--json` shows it, with `slot` written out: slot, file, project and job (slot
        and job when only one file is planned on one project)."""
        job = self.fire.job_name
        if several:
            return (slot, self.file, self.project, job)
        return (slot, job)


def _plan_heading(
    pairs: dict[Path, tuple[str, ...]], start: datetime, end: datetime | None, count: int | None
) -> str:
    names = {name for names in pairs.values() for name in names}
    files, on = counted(len(pairs), "file"), counted(len(names), "project")
    if len(pairs) == 1 and len(names) == 1:
        of = next(iter(names))
    elif count is not None:
        of = f"each of {files} on each of its projects ({on})"
    else:
        of = f"{files} on {on}"
    if end is None:
        return f"next {counted(count or 0, 'fire')} of {of} from {format_slot(start)}"
    return f"fires of {of} from {format_slot(start)} until {format_slot(end)}"


@click.command()
@click.option("--cron", "cron_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--taskcluster-yml",
    "template_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--job", "job_name", required=True, help="The .cron.yml job to render.")
@click.option("--project", required=True)
@click.option("--repo-url", required=True)
@click.option("--level", required=True, type=click.IntRange(min=1, max=3))
@click.option("--revision", required=True)
@click.option("--branch", default="main", show_default=True, help="Branch of a git project.")
@click.option("--repo-type", type=click.Choice(["git", "hg"]), default="git", show_default=True)
@time_option("--slot", required=True, help="The slot, JSON-e's `now`")
@click.option(
    "--root-url",
    envvar="TASKCLUSTER_ROOT_URL",
    default="https://taskcluster.example.com",
    show_default=True,
    help="Taskcluster root URL (also read from TASKCLUSTER_ROOT_URL).",
)
@click.option(
    "--trust-domain",
    help="Accepted as build-decision accepts it; a decision task's context does not show it.",
)
@click.option(
    "--input",
    "cron_input",
    metavar="JSON",
    callback=json_object,
    help="The fire's input (cron.input).",
)
@click.option("--pushlog-id", help="hg only: the push's pushlog id (default 0).")
@click.option("--pushdate", type=int, help="hg only: the push's time in epoch seconds.")
@click.option("--base-revision", help="hg only: the parent of the push's first changeset.")
def render(
    cron_path: Path,
    template_path: Path,
    job_name: str,
    project: str,
    repo_url: str,
    level: int,
    revision: str,
    branch: str,
    repo_type: str,
    slot: datetime,
    root_url: str,
    trust_domain: str | None,
    cron_input: dict[str, Any] | None,
    pushlog_id: str | None,
    pushdate: int | None,
    base_revision: str | None,
) -> None:
    """Print the decision task a job's fire at a slot creates, as JSON with its taskId.

    The same arguments always print the same bytes.
    """
    from scheduler.render import Push, RenderError, Repository, render_decision_task  # noqa: PLC0415

    del trust_domain  # part of build-decision's interface, not of the cron context
    cron = _load(cron_path, None)
    job = cron.job(job_name)
    if job is None:
        for diagnostic in cron.errors:
            if diagnostic.job == job_name:
                _echo_diagnostic(diagnostic, err=True)
        names = ", ".join(j.name for j in cron.jobs) or "none"
        _fail(f"no valid job named {job_name!r} in {cron.path} (valid jobs: {names})")
    slot = slot_of(slot)
    if not job.runs_on(project):
        echo(f"note: {job_name!r} does not run on {project!r} (run-on-projects)", err=True)
    try:
        template = _read_bounded(template_path)
    except OSError as error:
        _fail(f"{template_path}: cannot read: {error.strerror or error}")
    repository = Repository(
        url=repo_url, project=project, level=str(level), type=cast("RepositoryType", repo_type)
    )
    push = Push(
        revision=revision,
        branch=branch,
        pushlog_id=pushlog_id,
        pushdate=int(slot.timestamp()) if pushdate is None else pushdate,
        base_revision=base_revision,
    )
    try:
        task = render_decision_task(
            template,
            root_url=root_url,
            repository=repository,
            push=push,
            job=job,
            slot=slot,
            cron_input=cron_input,
        )
    except RenderError as error:
        _fail(f"{template_path}: {error}")
    echo_json(task.as_json(), sort_keys=True)


def _load(path: Path, projects: tuple[str, ...] | None) -> CronFile:
    if path.is_dir():
        path = path / CRON_FILE_NAME
    display = str(path)
    try:
        source = _read_bounded(path)
    except OSError as error:
        reason = error.strerror or str(error)
        unreadable = Diagnostic(display, Position(1, 1), Severity.ERROR, f"cannot read: {reason}")
        return CronFile(display, (), (unreadable,))
    return load_cron(source, display, known_projects=projects)


def _read_bounded(path: Path) -> bytes:
    """Read a file, but never more than one byte past what the parser accepts."""
    with path.open("rb") as stream:
        return stream.read(MAX_BYTES + 1)


def _echo_diagnostic(diagnostic: Diagnostic, *, err: bool = False) -> None:
    color = "red" if diagnostic.severity is Severity.ERROR else "yellow"
    location = f"{diagnostic.path}:{diagnostic.line}:{diagnostic.column}:"
    severity = click.style(f"{diagnostic.severity}:", fg=color, bold=True)
    echo(f"{location} {severity} {diagnostic.message}", err=err)


def _print_plan_table(rows: list[_PlanRow], heading: str, several: bool) -> None:
    if not rows:
        console().print(f"No {heading}.")
        return
    where = ("File", "Project") if several else ()
    title = heading[0].upper() + heading[1:]
    shown = table(title, "Slot (UTC)", *where, "Job", "Type", "Target")
    for row in rows:
        kind = row.fire.job.kind
        at = (row.file, row.project) if several else ()
        shown.add_row(format_slot(row.fire.slot), *at, row.fire.job_name, kind.type, kind.target)
    console().print(shown)


def _fail(message: str) -> NoReturn:
    echo(f"error: {message}", err=True)
    sys.exit(1)
