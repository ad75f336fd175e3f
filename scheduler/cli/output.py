"""How every `tc-scheduler` command parses times, durations and JSON options and prints: `echo`,
`echo_json`, `echo_model`, `echo_yaml` and `console`, which mask secrets as the log does (ruff
bans `click.echo` and `rich.console.Console` everywhere else).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import click
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from scheduler.common.redaction import scrub, scrub_data
from scheduler.cron import parse_instant
from scheduler.durations import parse_duration


def instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Option callback: an ISO 8601 time, as an aware UTC datetime."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """Option callback: a duration as the configuration writes one (`30s`, `5m`, `1h`)."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration like 30s, 5m or 1h") from None


def json_object(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> dict[str, Any] | None:
    """Option callback: a JSON object."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise click.BadParameter(f"not valid JSON ({error})", ctx, param) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object, like '{\"key\": 1}'", ctx, param)
    return parsed


Command = TypeVar("Command", bound=Callable[..., Any])

# The layouts `-o` names; `json` is the same as `--json`.
OUTPUTS = ("table", "wide", "json")
_WIDE = "tc_scheduler.output.wide"
# The width of `-o wide`: more than any row needs, so that no cell is cut or folded.
_WIDE_COLUMNS = 10_000


def json_option(help: str = "Print the answer as JSON.") -> Callable[[Command], Command]:
    """`--json` and its alias `-o json|table|wide`, as one `as_json` argument of the command;
    `wide` is asked of `wide_output()` by the tables."""

    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def run(*args: Any, as_json: bool, output: str | None, **kwargs: Any) -> Any:
            if as_json and output not in (None, "json"):
                raise click.UsageError(f"--json and -o {output} ask for different outputs")
            click.get_current_context().meta[_WIDE] = output == "wide"
            return command(*args, as_json=as_json or output == "json", **kwargs)

        with_output = click.option(
            "-o",
            "--output",
            type=click.Choice(OUTPUTS),
            help="table (the default), wide (every column, cells whole) or json (as --json).",
        )(run)
        return cast(
            Command, click.option("--json", "as_json", is_flag=True, help=help)(with_output)
        )

    return decorate


def wide_output() -> bool:
    """Whether the command runs with `-o wide`."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.meta.get(_WIDE))


def echo(message: str, *, err: bool = False) -> None:
    """Print a line (to standard error with `err`), secrets masked."""
    click.echo(scrub(message), err=err)


def echo_json(value: Any, *, sort_keys: bool = False) -> None:
    """Print `value` as indented JSON, masked before it is serialized: escaping would hide a
    secret with quotes or non-ASCII characters from a scrub of the text."""
    click.echo(json.dumps(scrub_data(value), indent=2, sort_keys=sort_keys))


def echo_model(value: BaseModel | list[Any]) -> None:
    """Print an operation's answer (a model, or a list of them) as the API's JSON shows it."""
    if isinstance(value, BaseModel):
        echo_json(value.model_dump(mode="json"))
    else:
        echo_json([item.model_dump(mode="json") for item in value])


def echo_yaml(value: Any) -> None:
    """Print `value` as YAML, masked before it is serialized (YAML folds long strings)."""
    click.echo(yaml.safe_dump(scrub_data(value), sort_keys=False), nl=False)


class _MaskingConsole(Console):
    """A console that masks every string before laying it out: printed text, table cells and
    titles all pass through `render_str`, and a table may fold a secret across lines."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(scrub(text), **options)


def console(*, stderr: bool = False) -> Console:
    """Output for tables (standard error with `stderr`), secrets masked: a terminal's width,
    or wide enough to keep names whole; with `-o wide`, as wide as the cells are."""
    if not stderr and wide_output():
        return _MaskingConsole(highlight=False, width=_WIDE_COLUMNS)
    if _MaskingConsole(highlight=False, stderr=stderr).is_terminal:
        return _MaskingConsole(highlight=False, stderr=stderr)
    return _MaskingConsole(highlight=False, stderr=stderr, width=200)
