"""What the service's commands share: finding the configuration, failing with a message, and
who acts and what they did, for the audit log.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from scheduler.cli_support import echo
from scheduler.clock import Clock, ClockSettingError, clock_from
from scheduler.config import (
    DEFAULT_PUBLIC_URL,
    Config,
    ConfigError,
    embedded_default,
    load_config,
    read_config,
)
from scheduler.ledger import Ledger
from scheduler.scopes import repository_path

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
    try:
        if config_path is not None:
            return read_config(config_path)
        root = _repository_root(Path.cwd())
        if root is None:
            fail("no --config given and the current directory is not in a git repository", 2)
        default = embedded_default(root, _public_url(root))
        return load_config(default, "<embedded default>", os.environ, base_dir=root)
    except ConfigError as error:
        for diagnostic in error.diagnostics:
            echo(str(diagnostic), err=True)
        sys.exit(1)


def _repository_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".git").exists():
            return directory
    return None


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


def fail(message: str, status: int = 1) -> NoReturn:
    echo(f"error: {message}", err=True)
    sys.exit(status)


def audit_act(
    config: Config, action: str, target: str, act: dict[str, Any], *, ok: bool, result: str
) -> None:
    with Ledger.open(config.ledger_url) as ledger:
        ledger.record_act(actor(), action, target, act, ok=ok, result=result, now=clock()())


def actor() -> str:
    """Who acts from the command line: the user, on this host."""
    return f"{getpass.getuser()}@{socket.gethostname()} (cli)"
