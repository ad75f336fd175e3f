"""The CPU of a tick with nothing to fire: 100 projects whose jobs are not due, their heads read
with `ls-refs` from `git http-backend` behind a local server, the ledger on SQLite and on
PostgreSQL, each tick followed by its watcher round as in `tc-scheduler run`.

Ticks consecutive slots in one process on a clock of its own (the first tick is the start-up
one, the others warm) and prints, for each ledger, min / median / max over the warm ticks of
the CPU per project per tick of this process, and apart of the git server and the emulator.
Target (issue 19): <= 2 ms per project. `--profile`: where this process's CPU goes in the
warm ticks (cProfile on CPU time, top 15 by cumulative time, then by own time).

Usage: python benchmarks/idle_tick.py [--projects 100] [--ticks 6] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import print_profile, spread
from benchmarks.measure import (
    ONCE_A_DAY,
    CpuMark,
    cron_file,
    emulator,
    git_server,
    make_repositories,
    projects,
    service_config,
    service_with_monitor,
)
from scheduler.common import logs
from scheduler.config.model import Config
from scheduler.rounds import tick_and_report
from tests.support.ledger_backends import postgresql_database

JOBS = 5
# Slots of a morning: the jobs fire at midnight, so none is due, nor missed.
FIRST_SLOT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@contextmanager
def fresh_ledger(backend: str, scratch: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{scratch / 'idle-ledger.db'}"
    else:
        with postgresql_database() as database:
            yield database.url


async def ticks(
    config: Config, count: int, servers: dict[str, int], profile: cProfile.Profile | None
) -> list[dict[str, float]]:
    """The CPU seconds of each of `count` consecutive ticks (and their rounds)."""
    now = [FIRST_SLOT]
    async with service_with_monitor(config, clock=lambda: now[0]) as (service, monitor):
        figures = []
        for number in range(count):
            slot = FIRST_SLOT + number * timedelta(minutes=15)
            now[0] = slot + timedelta(seconds=1)
            warm = number > 0 and profile is not None
            before = CpuMark.now(servers)
            if warm:
                profile.enable()
            results = await tick_and_report(service.engine, service.notifier, slot, monitor)
            if warm:
                profile.disable()
            figures.append(CpuMark.now(servers).since(before))
            fired = sum(len(result.fires) for result in results)
            if len(results) != len(config.projects) or fired or not all(r.ok for r in results):
                raise SystemExit(f"tick {slot}: expected every project idle and ok: {results}")
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--ticks", type=int, default=6, help="the first is the start-up tick")
    parser.add_argument("--git-latency-ms", type=float, default=0.0, help="per git request")
    parser.add_argument("--profile", action="store_true", help="cProfile the warm ticks")
    args = parser.parse_args()
    if args.ticks < 4:
        parser.error("--ticks must be at least 4: a start-up tick and 3 warm ones")
    logs.configure(level="warning")

    with tempfile.TemporaryDirectory(prefix="idle-tick-") as directory:
        scratch = Path(directory)
        names = make_repositories(scratch / "served", args.projects, cron_file(JOBS, ONCE_A_DAY))
        with (
            git_server(scratch / "served", args.git_latency_ms) as git,
            emulator(0, scratch) as (taskcluster, credentials),
        ):
            servers = {"git server": git.pid, "emulator": taskcluster.pid}
            print(
                f"idle tick: {args.projects} projects x {JOBS} jobs not due, heads by ls-refs "
                f"({args.git_latency_ms:g} ms per git request), ticks and their watcher "
                f"rounds; CPU ms per project per tick over {args.ticks - 1} warm ticks "
                "(min / median / max)"
            )
            for backend in ("sqlite", "postgresql"):
                # CPU time, not wall: the ticks wait on git and the ledger meanwhile.
                profile = cProfile.Profile(time.process_time) if args.profile else None
                with fresh_ledger(backend, scratch) as url:
                    config = service_config(
                        credentials,
                        url,
                        scratch / f"state-{backend}",
                        projects(names, git.url),
                        replica=f"idle-{backend}",
                    )
                    started = time.perf_counter()
                    figures = asyncio.run(ticks(config, args.ticks, servers, profile))
                    wall = time.perf_counter() - started
                report(backend, figures, args.projects, wall)
                if profile is not None:
                    print_profile(profile, f"the warm ticks on {backend}")


def report(backend: str, figures: list[dict[str, float]], count: int, wall: float) -> None:
    start_up, warm = figures[0], figures[1:]
    print(f"  {backend} ledger ({wall:.1f} s in all):")
    for kind in start_up:
        per_project = [figure[kind] * 1000 / count for figure in warm]
        first = start_up[kind] * 1000 / count
        print(f"    {kind:<12} {spread(per_project)}   (start-up tick {first:7.2f})")
    service = [(figure["here"] + figure["workers"]) * 1000 / count for figure in warm]
    print(f"    {'service':<12} {spread(service)}   (this process + workers; target <= 2)")


if __name__ == "__main__":
    main()
