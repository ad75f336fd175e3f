"""What the service's commands share: finding the configuration, the clock, who acts, running
one operation, and the one table that turns an error's category into an exit status.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import click
import structlog

from scheduler import service
from scheduler.cli.output import echo
from scheduler.clock import Clock, ClockSettingError, clock_from
from scheduler.common import logs
from scheduler.common.wording import counted
from scheduler.config.errors import ConfigError, UnknownProjectError
from scheduler.config.loading import (
    DEFAULT_PUBLIC_URL,
    embedded_default,
    load_config,
    load_hooks_dir,
    load_ledger_settings,
    load_ledger_url,
    read_config,
    read_hooks_dir,
    read_ledger_settings,
    read_ledger_url,
)
from scheduler.config.model import Config, LedgerSettings, Project
from scheduler.errors import Category, SchedulerError
from scheduler.operations.acts import Operations
from scheduler.scopes import repository_path

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

log = structlog.get_logger("tc_scheduler.cli")

# Set in the command's context once it logs, to whether its lines are JSON: its last word, an
# error, is then one more line of the log.
_LOGGING_JSON = "tc_scheduler.logging_json"

# The exit status of each category of error: 2 when the command line is wrong (as given, or
# for the configuration), 1 when the act failed or what it works on has errors.
EXIT_STATUS: dict[Category, int] = {
    Category.INVALID: 2,
    Category.NOT_CONFIGURED: 2,
    Category.NOT_FOUND: 1,
    Category.REFUSED: 1,
    Category.REJECTED: 1,
    Category.TOO_SOON: 1,
    Category.REFUSED_UPSTREAM: 1,
    Category.UNAVAILABLE: 1,
    Category.UNAUTHORIZED: 1,
    Category.FORBIDDEN: 1,
}

# The errors of an act refused before it started anything: a command that fails so has
# nothing to follow, and must not wait on Taskcluster to follow what the service follows.
NOTHING_STARTED = frozenset(
    {
        Category.INVALID,
        Category.NOT_CONFIGURED,
        Category.NOT_FOUND,
        Category.REJECTED,
        Category.TOO_SOON,
        Category.UNAUTHORIZED,
        Category.FORBIDDEN,
    }
)

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="TC_SCHEDULER_CONFIG",
    help="Service configuration (default: $TC_SCHEDULER_CONFIG, else this repository on "
    "embedded defaults).",
)


def load(config_path: Path | None) -> Config:
    """The configuration, or exit 1 with its problems (or 2 when there is none to find)."""
    return _loaded(config_path, read_config, load_config)


def ledger_url(config_path: Path | None) -> str:
    """Only the ledger of the configuration, for the commands that read it and nothing else:
    no Taskcluster, Slack or Sentry settings are needed (exit 1 on a broken configuration)."""
    return _loaded(config_path, read_ledger_url, load_ledger_url)


def hooks_dir_setting(config_path: Path) -> Path | None:
    """Only the hooks-dir of the configuration at `config_path` (None: it names none), for
    checking the folder: no Taskcluster, Slack or Sentry settings are needed."""
    return _loaded(config_path, read_hooks_dir, load_hooks_dir)


def ledger_settings(config_path: Path | None) -> LedgerSettings:
    """`ledger_url`, with the retention (exit 1 on a broken configuration or retention)."""
    return _loaded(config_path, read_ledger_settings, load_ledger_settings)


class _FromText(Protocol[T_co]):
    def __call__(
        self, text: str | bytes, path: str, environ: Mapping[str, str], *, base_dir: Path | None
    ) -> T_co: ...


def _loaded(config_path: Path | None, from_file: Callable[[Path], T], from_text: _FromText[T]) -> T:
    """What `from_file` reads of the file given, else what `from_text` reads of this
    repository's embedded default."""
    try:
        if config_path is not None:
            return from_file(config_path)
        root = _embedded_root()
        default = embedded_default(root, _public_url(root))
        return from_text(default, "<embedded default>", os.environ, base_dir=root)
    except ConfigError as error:
        _fail_config(error)


def _fail_config(error: ConfigError) -> NoReturn:
    problems = [str(diagnostic) for diagnostic in error.diagnostics]
    if _logging_json():
        where = error.diagnostics[0].path if error.diagnostics else "the configuration"
        found = counted(len(problems), "problem")
        _log_error(f"{where} cannot be used ({found})", error.error_code, problems)
    else:
        for problem in problems:
            echo(problem, err=True)
    sys.exit(1)


def _embedded_root() -> Path:
    for directory in (Path.cwd(), *Path.cwd().parents):
        if (directory / ".git").exists():
            return directory
    fail("no --config given and the current directory is not in a git repository", 2)


def start_logging(level: str = "info") -> None:
    """Log from here on at `level`, the command's own, unless `--log-level` (or
    TC_SCHEDULER_LOG_LEVEL) asked for another."""
    context = click.get_current_context(silent=True)
    chosen = None if context is None else context.find_root().params.get("log_level")
    as_json = logs.configure(level=chosen or level)
    if context is not None:
        context.meta[_LOGGING_JSON] = as_json


def clock() -> Clock:
    """The clock a command runs on: real time, or where `TC_SCHEDULER_NOW` moves it."""
    try:
        return clock_from(os.environ)
    except ClockSettingError as error:
        fail(str(error), 2)


def _public_url(root: Path) -> str:
    """The https URL of the clone's origin, which tasks name; a stand-in without one."""
    try:
        origin = subprocess.run(
            ["git", "-C", str(root), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        origin = ""
    path = repository_path(origin)
    return f"https://{path}" if path else DEFAULT_PUBLIC_URL


def fail(message: str, status: int = 1, *, code: str | None = None) -> NoReturn:
    """Exit with `status`, saying `message` as `_say_error` does (its code, unless given:
    `invalid` for status 2, the command line's mistake, else `failed`)."""
    _say_error(message, code or ("invalid" if status == 2 else "failed"))
    sys.exit(status)


def fail_with(error: SchedulerError) -> NoReturn:
    """Exit with the status of the error's category, saying it as `_say_error` does."""
    _say_error(str(error), error.error_code, error.details())
    sys.exit(EXIT_STATUS[error.category])


def _say_error(message: str, code: str, details: Sequence[str] = ()) -> None:
    """A command's last word on what failed. Once the command logs in JSON (its standard error
    is not a terminal), one more line of the log: level error, `message` as its event, `code`
    as its `error`, the details listed, no traceback. Otherwise, for a person: `error:
    message`, then the details a line each. Secrets are masked either way."""
    if _logging_json():
        _log_error(message, code, details)
        return
    echo(f"error: {message}", err=True)
    for detail in details:
        echo(f"  {detail}", err=True)


def _logging_json() -> bool:
    context = click.get_current_context(silent=True)
    return context is not None and bool(context.meta.get(_LOGGING_JSON))


def _log_error(message: str, code: str, details: Sequence[str]) -> None:
    log.error(message, error=code, **({"details": list(details)} if details else {}))


def carry_out(work: Coroutine[Any, Any, T]) -> T:
    """Run one operation; an error it raises is printed, and exits with its category's status."""
    try:
        return asyncio.run(work)
    except SchedulerError as error:
        fail_with(error)


@asynccontextmanager
async def operations(config: Config, *, follow: bool = False) -> AsyncIterator[Operations]:
    """The operations of the service `config` describes, on the command's clock: its engine,
    and the notifier that reports what is started by hand. With `follow` (a command that
    starts something), before the command exits what it started is followed one step and what
    is due is sent, as the service would (even when the act failed: a failed fire is reported);
    a command that only reads sends nothing. If Taskcluster let one of the command's calls time
    out, that step reads nothing from it: it would wait as long again, past the deadline the
    command is held to, and the service follows what is left."""
    async with service.open_service(config, clock=clock()) as running:
        started = follow
        try:
            yield running.operations()
        except SchedulerError as error:
            # Refused before anything was started (too soon, no such job): nothing to follow.
            started = follow and error.category not in NOTHING_STARTED
            raise
        finally:
            if started:
                await running.notifier.round(reads=not running.engine.clients.timed_out)


def actor() -> str:
    """Who acts from the command line: the user, on this host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        # A uid with no name (a container's arbitrary runAsUser): the uid is who it is.
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()} (cli)"


def known_project(config: Config, name: str) -> Project:
    """The configured project `name`, or exit 2 naming the configured ones."""
    try:
        return config.require_project(name)
    except UnknownProjectError as error:
        fail_with(error)
