"""The `tc-scheduler` command: one registry of its commands, each loaded only when asked for.

Exit status: 0 on success, 1 when the input has errors or an act failed, 2 for a mistake in the
command itself (see `setup.EXIT_STATUS`).
"""

from __future__ import annotations

import importlib
import os

import click

from scheduler import __version__
from scheduler.common.redaction import remember_secret_variables

# Every command: its module in this package and its name there. A command is imported only when
# it is run (or its help shown): the service's commands import the Taskcluster client,
# SQLAlchemy and git support, half a second that `check`, `plan` and `render`, run by editors
# and CI on every change, do without.
COMMANDS: dict[str, tuple[str, str]] = {
    "action": ("operator", "action"),
    "api": ("service", "api_group"),
    "audit": ("operator", "audit"),
    "backfill": ("backfill", "backfill"),
    "check": ("cron_files", "check"),
    "config": ("service", "config_group"),
    "expiry": ("expiry", "expiry_group"),
    "fire": ("operator", "fire"),
    "history": ("operator", "history"),
    "hooks": ("hooks", "hooks_group"),
    "jobs": ("operator", "jobs"),
    "ledger": ("ledger", "ledger_group"),
    "notify": ("service", "notify_group"),
    "pause": ("operator", "pause"),
    "plan": ("cron_files", "plan"),
    "preflight": ("service", "preflight_command"),
    "render": ("cron_files", "render"),
    "resume": ("operator", "resume"),
    "run": ("service", "run"),
    "tick": ("service", "tick"),
}

# What `--log-level` takes, case aside; a command started without it logs at its own level
# (`setup.start_logging` reads it when the command starts logging).
LOG_LEVELS = ("debug", "info", "warning", "error")


class _Commands(click.Group):
    """The commands of `COMMANDS`, each imported when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(f"scheduler.cli.{module}"), name)
        return command


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tc-scheduler")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    envvar="TC_SCHEDULER_LOG_LEVEL",
    show_envvar=True,
    help="Log lines of this level and above (default: info for `run`, `tick` and `fire`, "
    "warning or error for the commands that print their own answer).",
)
def main(log_level: str | None) -> None:
    """Run Taskcluster projects' .cron.yml jobs: check, plan and render them; run the service."""
    # What every command prints is masked; a secret the environment holds is known to be one
    # even by the commands that read no configuration.
    remember_secret_variables(os.environ)
