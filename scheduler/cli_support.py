"""What every `tc-scheduler` command shares: option parsing callbacks and the console.

Both command modules (the cron tools in cli.py, the service's in service_cli.py) use these.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
from rich.console import Console

from scheduler.cron import parse_instant


def instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """Option callback: an ISO 8601 time, as an aware UTC datetime."""
    if value is None:
        return None
    try:
        return parse_instant(value)
    except ValueError as error:
        raise click.BadParameter(str(error), ctx, param) from None


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


def console() -> Console:
    """Standard output for tables: a terminal's width, or wide enough to keep names whole."""
    if Console(highlight=False).is_terminal:
        return Console(highlight=False)
    return Console(highlight=False, width=200)
