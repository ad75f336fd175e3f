"""The fault trials' summary (every trial's figures, printed once more at the end of the run),
and no process of a trial left running after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import REPORTED, SIZE_VARIABLE, full_size, kill_leftovers


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """A trial that fails midway leaves no service of its own running."""
    yield
    kill_leftovers()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORTED:
        return
    size = "full" if full_size() else f"quick; {SIZE_VARIABLE}=full for the acceptance's sizes"
    terminalreporter.section(f"fault trials ({size})")
    for figures in REPORTED:
        terminalreporter.write_line(figures.line())
