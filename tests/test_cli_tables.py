"""Tables as people read them: every command with `--json` also takes `-o json|table|wide`; a
table fits the width it is printed in (COLUMNS, or 100 columns off a terminal) and never breaks
an id; `-o wide` shows every column, each cell whole on one line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
import slugid
from click.testing import CliRunner, Result

from scheduler.cli import main
from scheduler.cli.output import console, table
from scheduler.cron import format_slot
from scheduler.ledger import FireKind, FireState, Ledger, Outcome

NOW = datetime(2026, 11, 24, 10, 5, tzinfo=UTC)
PROJECT = "mozilla-central-translations"
JOBS = ("nightly-desktop-full-and-partial-updates", "weekly-release-promotion-candidate")
# A failure whose words are long, and a second line only `-o wide` shows.
ERROR = (
    "the queue refused the task: it needs queue:create-task:highest:proj-translations/b-linux "
    "and queue:route:index.translations.v2.mozilla-central-translations.latest\n"
    "(the role repo:github.com/mozilla/translations:cron:* does not grant them)"
)


def commands(group: click.Group, context: click.Context) -> Iterator[tuple[str, click.Command]]:
    """Every command under `group`, named as it is typed, subcommands of groups included."""
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            for inner, found in commands(command, click.Context(command, parent=context)):
                yield f"{name} {inner}", found
        else:
            yield name, command


def test_every_command_with_json_takes_o_too() -> None:
    with_json = []
    for name, command in commands(main, click.Context(main)):
        options = {option for param in command.params for option in param.opts}
        if "--json" in options:
            with_json.append(name)
            assert {"-o", "--output"} <= options, f"{name} has --json but no -o"
    # The commands that print a table, at least, were found.
    assert {"history", "audit", "jobs", "tick", "expiry report", "hooks list", "plan"} <= set(
        with_json
    )


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A ledger with two long-named jobs' fires, one failed with a long error; its config."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.open(url)
    try:
        for hours, job in enumerate(JOBS):
            slot = NOW - timedelta(hours=hours + 1, minutes=5)
            [claim] = ledger.claim_many(
                PROJECT,
                [(job, slot, FireKind.SCHEDULED)],
                replica="replica-1",
                now=NOW,
                lease=timedelta(minutes=10),
            )
            assert claim is not None
            failed = job == JOBS[1]
            outcome = Outcome(
                claim,
                FireState.FAILED if failed else FireState.CREATED,
                slugid.nice(),
                "0123456789abcdef0123456789abcdef01234567",
                ERROR if failed else None,
            )
            ledger.finish_many([outcome], now=NOW)
        fires = ledger.fires()
    finally:
        ledger.close()
    assert len(fires) == 2
    path = tmp_path / "service.yml"
    path.write_text(f"ledger: {url}\nprojects: []\n")
    return path


def history(config: Path, *options: str, columns: str | None = None) -> Result:
    env = {"TC_SCHEDULER_NOW": NOW.isoformat()}
    if columns is not None:
        env["COLUMNS"] = columns
    return CliRunner().invoke(
        main, ["history", "--config", str(config), *options], env=env, catch_exceptions=False
    )


def task_ids(config: Path) -> list[str]:
    ledger = Ledger.open(f"sqlite:///{config.parent / 'ledger.db'}")
    try:
        return [fire.task_id for fire in ledger.fires() if fire.task_id]
    finally:
        ledger.close()


@pytest.mark.parametrize("columns", ["80", "100", None])
def test_a_table_fits_the_width_and_keeps_ids_whole(config: Path, columns: str | None) -> None:
    width = int(columns or 100)  # off a terminal, without COLUMNS: 100
    result = history(config, columns=columns)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    ids = task_ids(config)
    assert len(ids) == 2
    for whole in (*ids, format_slot(NOW - timedelta(hours=1, minutes=5))):
        assert any(whole in line for line in lines), (whole, result.stdout)
    # No room for the error beside the ids at these widths: left out, and said so.
    assert "queue refused" not in result.stdout
    assert "(error left out to fit; -o wide shows every column)" in result.stdout


def test_a_wide_enough_table_shows_the_error(config: Path) -> None:
    result = history(config, columns="180")
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 180
    assert "queue refused" in result.stdout, result.stdout
    assert "left out" not in result.stdout
    # History shows an error's first line only.
    assert "does not grant them" not in result.stdout


def test_o_wide_shows_every_column_each_cell_on_one_line(config: Path) -> None:
    result = history(config, "-o", "wide", columns="80")
    assert result.exit_code == 0, result.output
    first, second = ERROR.splitlines()
    assert any(first in line for line in result.stdout.splitlines())
    assert any(second in line for line in result.stdout.splitlines())
    for job in JOBS:
        assert any(f"{PROJECT}   {job}" in line for line in result.stdout.splitlines())


def test_o_json_is_json_and_conflicts_with_another_o(config: Path) -> None:
    as_json = history(config, "-o", "json")
    assert as_json.exit_code == 0
    assert as_json.stdout.startswith("[")
    both = history(config, "--json", "-o", "wide")
    assert both.exit_code == 2
    assert "--json and -o wide ask for different outputs" in both.stderr


def test_an_empty_extra_column_is_left_out_without_a_word(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    laid_out = table("fires", "task", "state", "error", extra=["error"])
    for _ in range(3):
        laid_out.add_row(slugid.nice(), "a state said in several words here", "")
    console().print(laid_out)
    text = capsys.readouterr().out
    assert "error" not in text
    assert "left out" not in text
    with_error = table("fires", "task", "state", "error", extra=["error"])
    with_error.add_row(slugid.nice(), "a state said in several words here", "it broke")
    console().print(with_error)
    assert "(error left out to fit" in capsys.readouterr().out
