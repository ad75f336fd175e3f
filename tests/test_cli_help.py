"""What the command line tells about itself: `audit --help` names every kind of act the audit
log keeps (from the operations' one list), and shell completion works as the README says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from scheduler.cli import main
from scheduler.operations.audit import ActKind
from tests.support.corpus import REPOSITORY_ROOT

PACKAGE = REPOSITORY_ROOT / "scheduler"


def test_audit_help_names_every_kind_of_act() -> None:
    shown = CliRunner().invoke(main, ["audit", "--help"])
    assert shown.exit_code == 0
    # Help is wrapped at spaces and after hyphens (`hook-` at a line's end, `fire` next).
    text = " ".join(shown.stdout.split()).replace("- ", "-")
    for kind in ActKind:
        assert kind.value in text, kind
    # Those the help once left out.
    for kind in ("hooks-apply", "expiry-remediate", "ledger-prune", "ledger-upgrade"):
        assert kind in text


def acts_made(path: Path) -> list[ast.Call]:
    """The calls in `path` that build an audit log's `Act` directly."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Act"
    ]


def test_every_act_is_of_a_kind_the_audit_help_names() -> None:
    """An act is made by `make_act`, whose kind is an ActKind: a new act cannot go unlisted."""
    direct = {
        str(path.relative_to(REPOSITORY_ROOT)) for path in PACKAGE.rglob("*.py") if acts_made(path)
    }
    assert direct == {"scheduler/operations/audit.py"}


@pytest.mark.parametrize(
    ("shell", "says"),
    [
        ("bash_source", "complete -o nosort -F _tc_scheduler_completion tc-scheduler"),
        ("zsh_source", "compdef _tc_scheduler_completion tc-scheduler"),
        ("fish_source", "complete --no-files --command tc-scheduler"),
    ],
)
def test_the_completion_script_is_made(shell: str, says: str) -> None:
    made = CliRunner().invoke(
        main, [], prog_name="tc-scheduler", env={"_TC_SCHEDULER_COMPLETE": shell}
    )
    assert made.exit_code == 0
    assert says in made.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("tc-scheduler hi", {"history"}),
        ("tc-scheduler expiry re", {"report", "remediate"}),
        ("tc-scheduler history --si", {"--since"}),
        ("tc-scheduler history --s", {"--since", "--state"}),
    ],
)
def test_commands_subcommands_and_options_complete(words: str, expected: set[str]) -> None:
    completed = CliRunner().invoke(
        main,
        [],
        prog_name="tc-scheduler",
        env={
            "_TC_SCHEDULER_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split()) - 1),
        },
    )
    assert completed.exit_code == 0
    assert {line.split(",", 1)[1] for line in completed.stdout.splitlines()} == expected


def test_the_readme_says_how_to_complete_and_what_a_project_needs() -> None:
    readme = (REPOSITORY_ROOT / "README.md").read_text()
    for shell in ("bash_source", "zsh_source", "fish_source"):
        assert f"_TC_SCHEDULER_COMPLETE={shell} tc-scheduler" in readme
    words = " ".join(readme.split())
    assert "Each project needs its `name`, `repository` and `trust-domain`" in words
