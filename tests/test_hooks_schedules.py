"""A hook's schedule judged as the Hooks service judges it: what its cron-parser refuses (on the
answers recorded from the real service), patterns of fewer than six fields, and `hooks check`
saying both with the entry's place."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.cli.hooks import hooks_group
from scheduler.hooks.schedules import schedule_problem
from tests.emulator import cron_parser
from tests.test_emulator_cron_parser import NEXT, REFUSED
from tests.test_hooks import valid_hook, write


@pytest.mark.parametrize("entry", REFUSED)
def test_what_the_service_refuses_is_refused_in_its_words(entry: str) -> None:
    problem = schedule_problem(entry)
    assert problem is not None
    said = f"the Hooks service refuses {entry!r}: {REFUSED[entry]} (cron-parser)"
    assert problem.startswith(said)
    # cron-parser's complaint may be about a field it filled in: the hint says how many to write.
    fewer = len(entry.split()) < 6
    assert problem.endswith("like '0 0 3 * * *'") == fewer


@pytest.mark.parametrize("entry", [e for e in NEXT if len(e.split()) == 6 or e.startswith("@")])
def test_what_the_service_takes_in_six_fields_passes(entry: str) -> None:
    assert schedule_problem(entry) is None


def test_fewer_than_six_fields_are_refused_with_the_pattern_meant() -> None:
    assert schedule_problem("0 3 * * *") == (
        "'0 3 * * *' has 5 fields; the Hooks service wants 6 fields, seconds first (second, "
        "minute, hour, day of month, month, day of week): did you mean '0 0 3 * * *'?"
    )
    for entry in ("* * * *", "1 1 1", ""):
        problem = schedule_problem(entry)
        assert problem is not None
        assert "the Hooks service wants 6 fields, seconds first" in problem
        assert "fills in the rest from the left" in problem


def test_hashed_values_pass_as_the_service_takes_them() -> None:
    """`H` is drawn at random by cron-parser (so left out of the comparison below)."""
    for entry in ("0 H * * * *", "0 H/15 * * * *", "0 H(0-29) H * * *"):
        assert schedule_problem(entry) is None


# Entries made of what cron patterns are made of, to hold this port to the emulator's (which
# the recorded answers hold to the real service) beyond the cases above.
ATOMS = st.sampled_from(
    ["*", "?", "0", "1", "5", "7", "12", "24", "31", "59", "60", "L", "5L", "mon", "feb", "x"]
)
FIELD = st.lists(
    st.tuples(ATOMS, st.sampled_from(["", "-", "/", ",", "#"]), ATOMS).map("".join),
    min_size=1,
    max_size=2,
).map(",".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(FIELD, min_size=6, max_size=7).map(" ".join))
def test_refuses_exactly_what_the_emulators_cron_parser_refuses(entry: str) -> None:
    try:
        cron_parser.parse(entry)
        refusal = None
    except cron_parser.CronError as error:
        refusal = str(error)
    problem = schedule_problem(entry)
    if refusal is None:
        assert problem is None, entry
    else:
        assert problem == f"the Hooks service refuses {entry!r}: {refusal} (cron-parser)"


def test_hooks_check_refuses_bad_schedules_where_they_are_written(tmp_path: Path) -> None:
    text = valid_hook().replace(
        '  - "0 0 3 * * *"\n',
        '  - "0 0 3 * * *"\n  - bogus\n  - "99 99 99 * * *"\n  - "0 3 * * *"\n',
    )
    path = write(tmp_path, "g/nightly.yml", text)
    checked = CliRunner().invoke(hooks_group, ["check", "--hooks-dir", str(tmp_path)])
    assert checked.exit_code == 1, checked.output
    assert checked.stderr.splitlines()[:3] == [
        f"{path}:9:5: error: the Hooks service refuses 'bogus': Constraint error, got value 0 "
        "expected range 1-12 (cron-parser); a pattern has 6 fields, seconds first (second, "
        "minute, hour, day of month, month, day of week), like '0 0 3 * * *'",
        f"{path}:10:5: error: the Hooks service refuses '99 99 99 * * *': Constraint error, "
        "got value 99 expected range 0-59 (cron-parser)",
        f"{path}:11:5: error: '0 3 * * *' has 5 fields; the Hooks service wants 6 fields, "
        "seconds first (second, minute, hour, day of month, month, day of week): did you mean "
        "'0 0 3 * * *'?",
    ]
    assert "nothing was sent to Taskcluster" in checked.stderr
