"""How every `tc-scheduler` command parses times, durations and JSON options and prints: `echo`,
`echo_json`, `echo_model`, `echo_yaml` and `console`, which mask secrets as the log does (ruff
bans `click.echo` and `rich.console.Console` everywhere else).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click
import yaml
from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Column, Table
from rich.text import Text

from scheduler.clock import ClockSettingError, clock_from
from scheduler.common.redaction import scrub, scrub_data, scrub_field
from scheduler.cron import parse_time
from scheduler.durations import parse_duration

if TYPE_CHECKING:  # pydantic is not loaded by the commands without models (check, plan, render)
    from pydantic import BaseModel

# What the help of a time option says it takes (`instant` or `instant_ahead`).
TIME_FORMS = "ISO 8601, or how long ago: 2h, 3d, 1d12h"
TIME_AHEAD_FORMS = "ISO 8601, or how long from now: 2h, 3d (-2h: ago)"


def instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Option callback: a time at or before now (`--since`, `--at`), as an aware UTC datetime:
    ISO 8601, or how long ago (`2h`, `3d`; `+2h` is that long from now)."""
    return _time(ctx, param, value, ahead=False)


def instant_ahead(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Option callback: a time mostly given ahead of now (`pause --until`, `plan --from`):
    ISO 8601, or how long from now (`2h`, `3d`; `-2h` is that long ago)."""
    return _time(ctx, param, value, ahead=True)


def time_option(
    *names: str, help: str, ahead: bool = False, required: bool = False
) -> Callable[[Command], Command]:
    """A time option: ISO 8601 or a duration, counted back from now (forward with `ahead`),
    its help ending with the forms it takes."""
    forms = TIME_AHEAD_FORMS if ahead else TIME_FORMS
    return click.option(
        *names,
        required=required,
        metavar="TIME",
        callback=instant_ahead if ahead else instant,
        help=f"{help} ({forms}).",
    )


def _time(
    ctx: click.Context, param: click.Parameter, value: str | None, *, ahead: bool
) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value, now(), ahead=ahead)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


def now() -> datetime:
    """Now, as the commands see it: `TC_SCHEDULER_NOW` moves it (exit 2 if it cannot be read)."""
    try:
        return clock_from(os.environ)()
    except ClockSettingError as error:
        raise click.UsageError(str(error)) from None


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


def echo_json_records(keys: Sequence[str], records: Iterable[Sequence[str]]) -> None:
    """Print records of strings, one for each of `keys` (distinct, at least one), exactly as
    `echo_json` prints the list of their dicts, masking each distinct value once: a year's
    plan is tens of thousands of records made of a few thousand strings."""
    columns = [_JsonCells(key) for key in keys]
    rows = [
        "  {\n    " + ",\n    ".join(map(_JsonCells.__getitem__, columns, record)) + "\n  }"
        for record in records
    ]
    click.echo("[\n" + ",\n".join(rows) + "\n]" if rows else "[]")


class _JsonCells(dict[str, str]):
    """`"key": value` as `echo_json` writes it in a dict, for each value of one key: masked
    and encoded when first asked for."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self._key = key
        self._head = f"{json.dumps(scrub(key))}: "

    def __missing__(self, value: str) -> str:
        cell = self[value] = self._head + json.dumps(scrub_field(self._key, value))
        return cell


def echo_model(value: BaseModel | list[Any]) -> None:
    """Print an operation's answer (a model, or a list of them) as the API's JSON shows it."""
    if isinstance(value, list):
        echo_json([item.model_dump(mode="json") for item in value])
    else:
        echo_json(value.model_dump(mode="json"))


def echo_yaml(value: Any) -> None:
    """Print `value` as YAML, masked before it is serialized (YAML folds long strings)."""
    click.echo(yaml.safe_dump(scrub_data(value), sort_keys=False), nl=False)


class _MaskingConsole(Console):
    """A console that masks every string before laying it out: printed text, table cells and
    titles all pass through `render_str`, and a table may fold a secret across lines."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(scrub(text), **options)


def console(*, stderr: bool = False) -> Console:
    """Output for tables (standard error with `stderr`), secrets masked: a terminal's width;
    off one, `COLUMNS` or `PIPED_WIDTH`; with `-o wide`, as wide as the lines are (standard
    output only: a progress bar keeps to its terminal)."""
    if not stderr and wide_output():
        return _MaskingConsole(highlight=False, stderr=stderr, width=WIDE_WIDTH)
    terminal = _MaskingConsole(highlight=False, stderr=stderr)
    if terminal.is_terminal:
        return terminal
    return _MaskingConsole(highlight=False, stderr=stderr, width=_piped_width())


# The width of what is printed off a terminal when `COLUMNS` does not say one: a pager's or a
# CI log's, not the widest line (`-o wide` asks for that).
PIPED_WIDTH = 100
# The width `-o wide` lays lines out in: past any line a table makes, so none is cut.
WIDE_WIDTH = 100_000


def _piped_width() -> int:
    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else PIPED_WIDTH


# A cell no table breaks across lines: a task id (slug), a revision, a time as format_slot
# writes it; one a reader copies, or reads at a glance, whole.
_WHOLE_CELL = re.compile(
    r"[A-Za-z0-9_-]{22}|[0-9a-f]{7,40}|\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z?"
)


def table(title: str, *columns: str, extra: Sequence[str] = ()) -> Table:
    """An empty table with these columns, laid out in the width it is printed in: a column of
    ids (task ids, revisions, times) is never broken across lines; the other columns wrap,
    and the `extra` ones (an error, a reason) are left out, the last first, while they would
    get fewer than `EXTRA_ROOM` characters (the caption says so). With `-o wide`, every
    column, cells whole."""
    laid_out = _FittingTable(extra, title=title, box=box.SIMPLE, title_justify="left")
    for column in columns:
        laid_out.add_column(column, overflow="fold")
    return laid_out


# The fewest characters an extra column is shown in: fewer, and a sentence is a word a line.
EXTRA_ROOM = 20


class _FittingTable(Table):
    """A table that lays itself out again for the width it is given (see `table`)."""

    def __init__(self, extra: Sequence[str], **settings: Any) -> None:
        super().__init__(**settings)
        self._extra = tuple(extra)
        self._settings = settings

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        wide = wide_output()
        kept = list(self.columns)
        left_out: list[str] = []
        unbounded = options.update_width(WIDE_WIDTH)  # a measure is cut to the width given
        for name in reversed(self._extra if not wide else ()):
            probe = self._with(kept, wide=False, extra_room=EXTRA_ROOM)
            if Measurement.get(console, unbounded, probe).minimum <= options.max_width:
                break
            dropped = [column for column in kept if column.header == name]
            kept = [column for column in kept if column.header != name]
            if any(str(cell).strip() for column in dropped for cell in column.cells):
                left_out.insert(0, name)  # an empty column goes without a word
        shown = self._with(kept, wide=wide)
        if left_out:
            shown.caption = f"({', '.join(left_out)} left out to fit; -o wide shows every column)"
            shown.caption_justify = "left"
        yield shown

    def _with(
        self, columns: Sequence[Column], *, wide: bool, extra_room: int | None = None
    ) -> Table:
        """A plain table of these of its columns, ids (every cell with `wide`) on one line;
        with `extra_room`, the extra columns as narrow as that (to measure with)."""
        shown = Table(
            *(
                dataclasses.replace(
                    column,
                    _cells=[],
                    no_wrap=wide or _holds_ids(column),
                    max_width=extra_room if column.header in self._extra else column.max_width,
                )
                for column in columns
            ),
            **{**self._settings, "title": self.title, "caption": self.caption},
        )
        for cells in zip(*(list(column.cells) for column in columns), strict=True):
            shown.add_row(*cells)
        return shown


def _holds_ids(column: Column) -> bool:
    """Whether `column` holds ids, revisions or times: each line of its cells one word, some
    of them ids (the rest a word like `gone`). Such a column is kept on one line."""
    words: list[str] = []
    for cell in column.cells:
        if not isinstance(cell, str | Text):
            return False
        lines = [line.split() for line in str(cell).splitlines() if line.strip()]
        if any(len(line) > 1 for line in lines):
            return False
        words += [word for [word] in lines]
    return any(_WHOLE_CELL.fullmatch(word) for word in words)
