"""The `tc-scheduler hooks` commands: check, list, diff and apply the hooks folder; fire a hook.

What the folder declares and how it differs is in scheduler/hooks/; the calls are
operations (scheduler/operations/hooks.py, and `Operations.fire_hook`).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
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
    table,
)
from scheduler.cli.setup import (
    actor,
    carry_out,
    clock,
    config_option,
    fail,
    hooks_dir_setting,
    load,
    operations,
    start_logging,
)
from scheduler.common.wording import counted
from scheduler.config.model import Config
from scheduler.hooks.changes import Change, HookPlan
from scheduler.hooks.definitions import HookFolder, HookKey
from scheduler.hooks.folder import load_folder
from scheduler.operations.hooks import (
    applied_out,
    applied_outcome,
    apply_hooks,
    hook_plans,
    plan_out,
)
from scheduler.operations.models import HookFiredOut

_hooks_dir_option = click.option(
    "--hooks-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="TC_SCHEDULER_HOOKS_DIR",
    help="The folder of hook definitions, one <hookGroupId>/<hookId>.yml file per hook "
    "(default: the configuration's hooks-dir, else ./hooks).",
)
# Where the folder is when neither --hooks-dir nor the configuration's hooks-dir says.
DEFAULT_HOOKS_DIR = Path("hooks")


def _hook_argument(ctx: click.Context, param: click.Parameter, value: str) -> HookKey:
    """The GROUP/ID argument."""
    try:
        return HookKey.parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


def _payload(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """The --payload option: JSON text, or @FILE (@- for standard input) holding it."""
    if value is None or not value.startswith("@"):
        return json_object(ctx, param, value)
    name = value[1:]
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise click.BadParameter(f"cannot read {name}: {reason}", ctx, param) from None
    return json_object(ctx, param, text)


@click.group("hooks")
def hooks_group() -> None:
    """Keep the Hooks service in line with the hooks folder; fire any hook of the deployment.

    A hook is managed when its file is in the folder; the groups the folder has a sub-folder
    for are managed too, so their other hooks are shown, and removed by `apply --prune`.
    """


@hooks_group.command("check")
@_hooks_dir_option
@config_option
def hooks_check(hooks_dir: Path | None, config_path: Path | None) -> None:
    """Validate every hook file against the create-hook schema. Calls no service.

    The configuration is read only for its hooks-dir, when --config (or
    $TC_SCHEDULER_CONFIG) names one and --hooks-dir is not given: no credentials or other
    secrets are needed, as in CI."""
    if hooks_dir is None:
        configured = hooks_dir_setting(config_path) if config_path else None
        hooks_dir = configured or DEFAULT_HOOKS_DIR
    folder = _load_folder(hooks_dir)
    echo(f"{hooks_dir}: OK ({counted(len(folder.hooks), 'hook')})", err=True)


@hooks_group.command("list")
@_hooks_dir_option
@config_option
@json_option()
def hooks_list(hooks_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """The declared hooks and whether each is deployed, differs or is unchanged, and the
    deployed hooks of the same groups that no file declares."""
    hooks_dir, folder, config = _folder_and_config(hooks_dir, config_path)
    plans = _plan(config, folder)
    if as_json:
        echo_model([plan_out(p) for p in plans])
        return
    shown = table(f"Hooks of {hooks_dir}", "hook", "state", "file")
    for planned in plans:
        shown.add_row(str(planned.key), _state(planned), _file(planned))
    console().print(shown)
    _summary(plans)


@hooks_group.command("diff")
@_hooks_dir_option
@config_option
@json_option()
def hooks_diff(hooks_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """What `apply` would change, field by field (old → new).

    Exit status, as diff(1) and `terraform plan -detailed-exitcode` give it, for CI to gate
    on: 0 when the deployment matches the folder, 1 when it drifted (a hook to create or
    update, or one of a managed group that no file declares), 2 on trouble (the folder, the
    configuration or the Hooks service could not be read).
    """
    with _trouble_exits_2():
        _, folder, config = _folder_and_config(hooks_dir, config_path)
        plans = _plan(config, folder)
    if as_json:
        echo_model([plan_out(p) for p in plans])
    else:
        for planned in plans:
            _echo_plan(planned, _would(planned, prune=None))
        _summary(plans)
    sys.exit(1 if any(p.change is not Change.UNCHANGED for p in plans) else 0)


@hooks_group.command("apply")
@_hooks_dir_option
@config_option
@click.option(
    "--prune",
    is_flag=True,
    help="Also remove the hooks of the managed groups that no file declares.",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@json_option()
def hooks_apply(
    hooks_dir: Path | None, config_path: Path | None, prune: bool, dry_run: bool, as_json: bool
) -> None:
    """Create and update hooks until the Hooks service matches the folder.

    Every file is validated first: if any is invalid, nothing is sent. Hooks no file declares
    are kept unless --prune is given.
    """
    hooks_dir, folder, config = _folder_and_config(hooks_dir, config_path)
    if config.dry_run and not dry_run:
        echo("dry run: the configuration is dry-run, so nothing is changed", err=True)
    dry_run = dry_run or config.dry_run
    start_logging("warning")
    results = carry_out(
        apply_hooks(
            config,
            clock(),
            actor(),
            folder,
            str(hooks_dir),
            prune=prune,
            dry_run=dry_run,
            would=lambda planned: _would(planned, prune=prune),
        )
    )
    if as_json:
        echo_model([applied_out(applied) for applied in results])
    else:
        for applied in results:
            _echo_plan(applied.plan, applied.outcome, applied.error)
    ok, said = applied_outcome(results)
    echo(
        f"{'dry run, nothing changed: ' if dry_run else ''}{said if results else 'no hooks'}",
        err=True,
    )
    if not ok:
        failed = sum(applied.error is not None for applied in results)
        fail(f"{counted(failed, 'hook')} could not be applied (see above)")


@hooks_group.command("fire")
@config_option
@click.argument("hook", metavar="GROUP/ID", callback=_hook_argument)
@click.option(
    "--payload",
    metavar="JSON|@FILE",
    callback=_payload,
    help="The trigger payload, a JSON object, or @FILE to read it from a file (@- for "
    "standard input). Default: {}.",
)
@click.option(
    "--dry-run", is_flag=True, help="Check the payload against the hook's schema; fire nothing."
)
@json_option("Print the answer as JSON.")
def hooks_fire(
    config_path: Path | None,
    hook: HookKey,
    payload: dict[str, Any] | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Fire any hook of the deployment, declared here or not, with a checked payload.

    The payload is checked against the hook's triggerSchema first; a payload that breaks it
    is refused, naming the field, and the hook is not triggered.
    """
    config = load(config_path)
    payload = {} if payload is None else payload
    start_logging("warning")

    async def fire() -> HookFiredOut:
        async with operations(config, follow=True) as ops:
            return await ops.fire_hook(actor(), hook, payload, dry_run=dry_run)

    fired = carry_out(fire())
    if as_json:
        echo_model(fired)
    elif fired.dry_run:
        echo(f"dry run: the payload matches the triggerSchema of {hook}; would trigger with:")
        echo_json(payload)
    elif fired.task_id is None:
        echo(f"triggered {hook}: its task template made no task")
    else:
        echo(f"triggered {hook}: task {fired.task_id}")
        echo(f"{config.root_url}/tasks/{fired.task_id}")


# -- helpers -------------------------------------------------------------------------------


def _hooks_dir(given: Path | None, config: Config | None) -> Path:
    """The folder: --hooks-dir (or $TC_SCHEDULER_HOOKS_DIR), else the configuration's
    hooks-dir, else ./hooks."""
    if given is not None:
        return given
    if config is not None and config.hooks_dir is not None:
        return config.hooks_dir
    return DEFAULT_HOOKS_DIR


def _folder_and_config(
    given: Path | None, config_path: Path | None
) -> tuple[Path, HookFolder, Config]:
    """The folder (where, and its hooks) and the configuration; a folder named on the command
    line is read first, so that its problems are told before any of the configuration's."""
    if given is not None:
        folder = _load_folder(given)
        return given, folder, load(config_path)
    config = load(config_path)
    directory = _hooks_dir(None, config)
    return directory, _load_folder(directory), config


def _load_folder(directory: Path) -> HookFolder:
    """The folder's hooks, or exit 1 after printing every problem (before any call)."""
    if not directory.is_dir():
        fail(
            f"no hooks folder at {directory}; pass --hooks-dir, set hooks-dir in the "
            "configuration, or run from the repository root",
            2,
        )
    folder = load_folder(directory)
    for diagnostic in folder.diagnostics:
        echo(str(diagnostic), err=True)
    if not folder.ok:
        errors = sum(d.is_error for d in folder.diagnostics)
        fail(f"{counted(errors, 'problem')} in {directory}; nothing was sent to Taskcluster")
    return folder


@contextmanager
def _trouble_exits_2() -> Iterator[None]:
    """Any failure inside exits 2, whatever its own status: `diff`'s 1 means a difference."""
    try:
        yield
    except SystemExit as stopped:
        if stopped.code not in (0, None):
            sys.exit(2)
        raise


def _plan(config: Config, folder: HookFolder) -> list[HookPlan]:
    start_logging("warning")
    return carry_out(hook_plans(config, folder))


_MARKS = {
    Change.CREATE: "+",
    Change.UPDATE: "~",
    Change.UNCHANGED: "=",
    Change.UNDECLARED: "-",
}


def _would(planned: HookPlan, *, prune: bool | None) -> str:
    """What applying would do; `prune` is None for `diff`, which says how to remove."""
    if planned.change is Change.UNDECLARED:
        if prune is None:
            return "would remove (use --prune)"
        return "would remove" if prune else "would keep"
    return "unchanged" if planned.change is Change.UNCHANGED else f"would {planned.change}"


def _echo_plan(planned: HookPlan, outcome: str, error: str | None = None) -> None:
    """One line per hook (`~ group/id: updated 2 fields (file)`), then each changed field."""
    kept = planned.change is Change.UNDECLARED and outcome in ("kept", "would keep")
    mark = "!" if error else " " if kept else _MARKS[planned.change]
    if error:
        text = error
    elif kept:
        text = f"not declared here; {outcome} (--prune removes it)"
    elif planned.change is Change.UNDECLARED and outcome.endswith("(use --prune)"):
        text = f"not declared here; {outcome}"
    elif planned.change is Change.UPDATE:
        text = f"{outcome} {counted(len(planned.fields), 'field')}"
    else:
        text = outcome
    where = f" ({planned.declared.path})" if planned.declared else ""
    echo(f"{mark} {planned.key}: {text}{where}")
    if planned.change is Change.UPDATE:
        for change in planned.fields:
            echo(f"    {change}")


def _state(planned: HookPlan) -> str:
    if planned.change is Change.CREATE:
        return "missing (apply creates it)"
    if planned.change is Change.UPDATE:
        fields = ", ".join(dict.fromkeys(str(c.path[0]) for c in planned.fields))
        return f"differs ({fields})"
    if planned.change is Change.UNCHANGED:
        return "unchanged"
    return "not declared (apply --prune removes it)"


def _file(planned: HookPlan) -> str:
    return planned.declared.path if planned.declared else ""


def _summary(plans: list[HookPlan]) -> None:
    counts = Counter(p.change for p in plans)
    parts = [
        f"{counts[Change.CREATE]} to create",
        f"{counts[Change.UPDATE]} to update",
        f"{counts[Change.UNCHANGED]} unchanged",
        f"{counts[Change.UNDECLARED]} not declared",
    ]
    echo(", ".join(parts), err=True)
