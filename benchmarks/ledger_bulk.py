"""The ledger's share of a tick: 500 fires of 100 projects read, claimed, finished and recorded,
then the watcher's round over their watches (each task's first sight, with its notice), on
SQLite and on PostgreSQL; printed as CPU per fire (this process, and PostgreSQL's server
processes apart) and statements per tick, min / median / max over several runs.

Usage: python benchmarks/ledger_bulk.py [--projects 100] [--jobs 5] [--runs 3] [--backends ...]

Flows: `per project` is the ledger's calls as the engine and the watcher made them before the
ledger's bulk forms (a project's reads, claims, outcomes and slot apart; a transaction a watch
step), `engine` as they make them now (a tick's reads in one go, claims and outcomes a project
at a time, one slot write, one watcher transaction), `one claim` all of a tick's claims and
outcomes in one call each. Every flow marks each fire's request sent before it goes out, one
write a fire, as the engine does. Run it with PYTHONPATH pointing at another checkout to
measure that checkout's ledger (flows its ledger lacks are left out). Figures are printed,
not asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# Appended, not prepended: PYTHONPATH, when set, says whose `scheduler` is measured.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, text

import scheduler
from scheduler import ledger as ledger_api  # its bulk forms, where this checkout has them
from scheduler.ledger import (
    Claim,
    FireKind,
    FireState,
    Health,
    Ledger,
    Notice,
    Outcome,
    SlotOutcome,
    SlotRecord,
    Watch,
    WatchPhase,
    WatchSpec,
)
from tests.support.ledger_backends import postgresql_schema_url

SLOT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
REPLICA = "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    args = parser.parse_args()
    print(f"ledger of {Path(scheduler.__file__).parents[1]}")
    fires = args.projects * args.jobs
    print(f"{args.projects} projects x {args.jobs} jobs = {fires} fires a tick, {args.runs} runs")
    print(f"{'backend':<11} {'flow':<12} {'CPU ms/fire':>22} {'server ms/fire':>22} statements")
    for backend in args.backends:
        for name, flow in FLOWS.items():
            if not all(hasattr(Ledger, method) for method in flow.needs):
                continue
            figures = [measure(backend, flow, args.projects, args.jobs) for _ in range(args.runs)]
            own = [f[0] * 1000 / fires for f in figures]
            server = [f[1] * 1000 / fires for f in figures if f[1] is not None]
            statements = sorted({f[2] for f in figures})
            print(
                f"{backend:<11} {name:<12} {spread(own):>22} "
                f"{spread(server) if server else 'n/a':>22} {'/'.join(map(str, statements))}"
            )


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


class Flow:
    """How a tick's calls reach the ledger; `needs`: the ledger methods it uses."""

    needs: tuple[str, ...] = ()

    def read(self, ledger: Ledger, projects: list[str], now: datetime) -> None:
        for project in projects:
            ledger.last_evaluated_slot(project)
            ledger.pauses(project=project, at=now)
            ledger.open_fires(due_at=now, project=project)
            ledger.unresolved_fires(project, unwatched_since=now - timedelta(days=1))

    def claim(
        self, ledger: Ledger, wanted: dict[str, list[tuple[str, datetime, FireKind]]], now: datetime
    ) -> list[Claim | None]:
        claims: list[Claim | None] = []
        for project, fires in wanted.items():
            claims += ledger.claim_many(project, fires, replica=REPLICA, now=now, lease=LEASE)
        return claims

    def finish(self, ledger: Ledger, outcomes: list[Outcome], now: datetime) -> None:
        by_project: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            by_project.setdefault(outcome.claim.project, []).append(outcome)
        for same in by_project.values():
            ledger.finish_many(same, now=now)

    def record(self, ledger: Ledger, projects: list[str], slot: datetime, now: datetime) -> None:
        for project in projects:
            ledger.record_slot(
                project,
                slot,
                revision="abc",
                outcome=SlotOutcome.EVALUATED,
                error=None,
                replica=REPLICA,
                now=now,
            )

    def watch(self, ledger: Ledger, now: datetime) -> None:
        for watch in ledger.watches():
            ledger.advance_watch(
                watch, WatchPhase.TASK, now=now, task_state="running", notices=[started(watch)]
            )


class EngineFlow(Flow):
    needs = ("last_evaluated_slots", "pauses_of", "unresolved_fires_of", "advance_watches")

    def read(self, ledger: Ledger, projects: list[str], now: datetime) -> None:
        ledger.last_evaluated_slots(projects)
        ledger.pauses_of(projects, at=now)
        ledger.open_fires(due_at=now)
        ledger.unresolved_fires_of(projects, unwatched_since=now - timedelta(days=1))

    def record(self, ledger: Ledger, projects: list[str], slot: datetime, now: datetime) -> None:
        ledger.record_slots(
            [
                SlotRecord(project, slot, "abc", SlotOutcome.EVALUATED, None, REPLICA, now)
                for project in projects
            ]
        )

    def watch(self, ledger: Ledger, now: datetime) -> None:
        steps = [
            ledger_api.WatchStep(watch, WatchPhase.TASK, [started(watch)], task_state="running")
            for watch in ledger.watches()
        ]
        ledger.advance_watches(steps, now=now)


class OneClaimFlow(EngineFlow):
    needs = (*EngineFlow.needs, "claim_all")

    def claim(
        self, ledger: Ledger, wanted: dict[str, list[tuple[str, datetime, FireKind]]], now: datetime
    ) -> list[Claim | None]:
        every = [(project, *fire) for project, fires in wanted.items() for fire in fires]
        return ledger.claim_all(every, replica=REPLICA, now=now, lease=LEASE)

    def finish(self, ledger: Ledger, outcomes: list[Outcome], now: datetime) -> None:
        ledger.finish_many(outcomes, now=now)


FLOWS: dict[str, Flow] = {
    "per project": Flow(),
    "engine": EngineFlow(),
    "one claim": OneClaimFlow(),
}


def started(watch: Watch) -> Notice:
    """What a task's first sight reports, as the reporter does: its project's template is
    healthy (which closes that incident, if one is open)."""
    return Notice(
        f"fire-{watch.fire_id}",
        {"project": watch.project},
        ("log",),
        subject=f"template:{watch.project}",
        health=Health.HEALTHY,
    )


def measure(
    backend: str, flow: Flow, project_count: int, job_count: int
) -> tuple[float, float | None, int]:
    """(CPU seconds of this process, of the server's processes or None, statements) of one
    tick after a first one that warmed the ledger up, on a fresh ledger."""
    projects = [f"project-{n}" for n in range(project_count)]
    with fresh_ledger(backend) as (ledger, server_cpu):
        statements = count_statements(ledger)
        tick(ledger, flow, projects, job_count, SLOT - timedelta(minutes=15))
        statements.clear()
        server_before, before = server_cpu(), time.process_time()
        tick(ledger, flow, projects, job_count, SLOT)
        own = time.process_time() - before
        server_after = server_cpu()
        server = None
        if server_before is not None and server_after is not None:
            server = server_after - server_before
        return own, server, len(statements)


def tick(ledger: Ledger, flow: Flow, projects: list[str], jobs: int, slot: datetime) -> None:
    now = slot + timedelta(seconds=1)
    flow.read(ledger, projects, now)
    wanted = {
        project: [(f"job-{n}", slot, FireKind.SCHEDULED) for n in range(jobs)]
        for project in projects
    }
    claims = [claim for claim in flow.claim(ledger, wanted, now) if claim is not None]
    assert len(claims) == len(projects) * jobs, "every fire is claimed"
    for claim in claims:  # each fire's request, recorded before it goes out (one write each)
        ledger.mark_sent(
            claim,
            now=now,
            details={"task": {"taskGroupId": f"task-{claim.fire_id}"}},
            task_id=f"task-{claim.fire_id}",
        )
    outcomes = [
        Outcome(
            claim,
            FireState.CREATED,
            task_id=f"task-{claim.fire_id}",
            revision="abc",
            details={"task": {"taskGroupId": f"task-{claim.fire_id}"}},
            watch=WatchSpec(),
        )
        for claim in claims
    ]
    flow.finish(ledger, outcomes, now)
    flow.record(ledger, projects, slot, now)
    flow.watch(ledger, now)


def count_statements(ledger: Ledger) -> list[str]:
    """The statements the ledger's engine runs from now on (an executemany counts once)."""
    statements: list[str] = []
    engine = ledger._engine

    def counted(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", counted)
    return statements


@contextlib.contextmanager
def fresh_ledger(backend: str) -> Iterator[tuple[Ledger, Callable[[], float | None]]]:
    if backend == "sqlite":
        with (
            tempfile.TemporaryDirectory(prefix="ledger-bulk-") as directory,
            Ledger.open(f"sqlite:///{directory}/ledger.db") as ledger,
        ):
            yield ledger, lambda: None
        return
    with postgresql_schema_url() as url, Ledger.open(url) as ledger:
        pids: set[int] = set()

        @event.listens_for(ledger._engine, "connect")
        def remember(connection: Any, record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("SELECT pg_backend_pid()")
            pids.add(cursor.fetchone()[0])
            cursor.close()

        ledger._engine.dispose()  # connections from now on are counted
        with ledger._engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        yield ledger, lambda: backend_cpu(pids)


def backend_cpu(pids: set[int]) -> float | None:
    """User and system CPU seconds of PostgreSQL's processes `pids` (None: not readable)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except OSError:
        return None
    return total / ticks


if __name__ == "__main__":
    main()
