"""What every fault trial shares: its size, its printed figures, and the tc-scheduler processes
it starts, watches and kills.

A trial runs the real command line against the emulator and counts, per fire, what Taskcluster
holds; the figures go to standard output (`pytest -s`) and to the summary at the end of the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.ledger import Fire, Ledger
from tests.emulator import Emulator
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.emulated import taskcluster_environment
from tests.support.waiting import HANG_GUARD

SIZE_VARIABLE = "TC_SCHEDULER_FAULTS"


def full_size() -> bool:
    """The acceptance's sizes (`make test-faults`), rather than the quick form of `make test`."""
    value = os.environ.get(SIZE_VARIABLE, "quick").strip().lower()
    if value not in ("quick", "full"):
        raise ValueError(f"{SIZE_VARIABLE}={value!r}: write quick (the default) or full")
    return value == "full"


def sized(quick: int, full: int) -> int:
    return full if full_size() else quick


def same_or_new_replica_name(test: Callable[..., None]) -> Callable[..., None]:
    """Run `test(..., same_name)` restarting under the dead process's name and, in the full
    form only, under a new one (which waits a minute or two of real time for its leases)."""
    new_name = pytest.param(
        False,
        id="new-name",
        marks=pytest.mark.skipif(not full_size(), reason="full form only (waits on leases)"),
    )
    parametrize = pytest.mark.parametrize(
        "same_name", [pytest.param(True, id="same-name"), new_name]
    )
    return parametrize(test)


# -- figures ----------------------------------------------------------------------------------


@dataclass
class Figures:
    """What one trial found. `late` is the worst lateness seen, as the trial measures it."""

    scenario: str
    fires: int = 0
    duplicates: int = 0
    missing: int = 0
    late: timedelta | None = None
    leaks: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        late = "-" if self.late is None else f"{self.late.total_seconds():.0f}s"
        extra = "".join(f" {key}={value}" for key, value in self.notes.items())
        return (
            f"{self.scenario}: fires={self.fires} duplicates={self.duplicates} "
            f"missing={self.missing} late={late} leaks={self.leaks}{extra}"
        )


REPORTED: list[Figures] = []


def report(figures: Figures) -> Figures:
    """Print a trial's figures now and keep them for the summary at the end of the run."""
    REPORTED.append(figures)
    print(f"\n[faults] {figures.line()}", flush=True)
    return figures


# -- processes ----------------------------------------------------------------------------------

# Every command a trial started; whatever still runs when the trial ends is killed.
STARTED: list[Cli] = []


def kill_leftovers() -> None:
    while STARTED:
        cli = STARTED.pop()
        if cli.process.poll() is None:
            cli.process.kill()
            cli.process.wait(timeout=30)


class Cli:
    """One `tc-scheduler` command in its own process. Its standard error is read as it comes:
    JSON log events are kept parsed in `events`, every line raw in `errors`; its standard output
    is kept in `output`."""

    def __init__(self, arguments: Sequence[str], env: Mapping[str, str]) -> None:
        self.arguments = list(arguments)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scheduler", *arguments],
            cwd=REPOSITORY_ROOT,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        STARTED.append(self)
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.output: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_errors, daemon=True),
            threading.Thread(target=self._read_output, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.errors.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                self._changed.notify_all()

    def _read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def named(self, event: str) -> list[dict[str, Any]]:
        with self._changed:
            return [e for e in self.events if e.get("event") == event]

    def wait_for(self, condition: Callable[[Cli], bool], timeout: float = HANG_GUARD) -> bool:
        """Until `condition(self)` holds (True) or the process ended without it (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition(self):
                if self.process.poll() is not None and not any(r.is_alive() for r in self._readers):
                    return condition(self)
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"hang guard: `tc-scheduler {' '.join(self.arguments)}` did not get "
                        f"there in {timeout:.0f} s; its log:\n{''.join(self.errors[-40:])}"
                    )
                self._changed.wait(0.05)
        return True

    def wait_for_event(self, event: str, count: int = 1) -> bool:
        return self.wait_for(lambda cli: len(cli.named(event)) >= count)

    def alive(self) -> bool:
        """True while it runs; a process that ended fails the trial, with its log."""
        status = self.process.poll()
        if status is not None:
            self.finish()
            raise AssertionError(
                f"`tc-scheduler {' '.join(self.arguments)}` ended (exit {status}):\n{self.text}"
            )
        return True

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running to be killed."""
        alive = self.process.poll() is None
        if alive:
            self.process.kill()
        self.finish()
        return alive

    def stop(self) -> int:
        """SIGTERM, and the exit status once it has stopped."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish()

    def finish(self, timeout: float = HANG_GUARD) -> int:
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(
                f"hang guard: `tc-scheduler {' '.join(self.arguments)}` did not end"
            ) from None
        for reader in self._readers:
            reader.join(timeout=30)
        return status

    @property
    def text(self) -> str:
        """Everything it printed, both streams."""
        return "".join(self.output) + "".join(self.errors)


def environment(emulator: Emulator, **extra: str) -> dict[str, str]:
    """The environment of a command run against the emulator, on the emulator's clock."""
    return {**os.environ, **taskcluster_environment(emulator), **extra}


def clock_at(emulator: Emulator, moment: datetime, **extra: str) -> dict[str, str]:
    """Move the emulator's (running) clock to `moment`; the environment of a command run then."""
    emulator.clock.set(moment, frozen=False)
    return environment(emulator, **extra)


def run_cli(arguments: Sequence[str], env: Mapping[str, str]) -> Cli:
    """Run a command to its end."""
    cli = Cli(arguments, env)
    cli.finish()
    return cli


@contextmanager
def opened(ledger_url: str) -> Iterator[Ledger]:
    ledger = Ledger.open(ledger_url)
    try:
        yield ledger
    finally:
        ledger.close()


def ledger_fires(ledger_url: str, **filters: Any) -> list[Fire]:
    with opened(ledger_url) as ledger:
        return ledger.fires(**filters)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def poll(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = HANG_GUARD,
    every: float = 0.05,
) -> None:
    """Wait for what another process does; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"hang guard: {what} did not come about in {timeout:.0f} s")
        time.sleep(every)
