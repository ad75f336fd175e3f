"""1, 2 and 4 replicas of the service, each its own process on one PostgreSQL ledger and one
emulator, firing the same slot of 100 projects x 5 jobs at 50 ms per Taskcluster call.

Each replica starts as `run` does (its start-up tick, dry-run here so that it creates nothing),
then they are told to tick the same slot at once. Prints, min / median / max over the runs:
the wall time from the go to the last task created (and to the last watcher round's end), the
CPU of the replicas and apart of the emulator and the git server, and each replica's share of
the tasks. The tasks created must be exactly projects x jobs (claims dedupe): otherwise this
fails. Each run has a fresh PostgreSQL database (created and dropped, as the tests do).

Usage: python benchmarks/replicas.py [--replicas 1 2 4] [--runs 3] [--projects 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import spread
from benchmarks.measure import (
    EVERY_SLOT,
    CpuMark,
    cron_file,
    emulator,
    git_server,
    make_repositories,
    projects,
    service_config,
    service_with_monitor,
    warm_up,
)
from scheduler.common import logs
from scheduler.config.model import DEFAULT_CONCURRENCY
from scheduler.cron import slot_of
from scheduler.ledger import FireState
from scheduler.rounds import tick_and_report
from tests.support.ledger_backends import postgresql_database

JOBS = 5


# -- one replica (this script run with --as-replica SETTINGS) ---------------------------------


async def replica(settings: dict[str, Any]) -> dict[str, Any]:
    """Start as `run` does, say so, wait for the go on stdin, tick the slot; its figures."""
    slot = datetime.fromisoformat(settings["slot"])
    config = service_config(
        settings["credentials"],
        settings["ledger_url"],
        Path(settings["state_dir"]),
        projects(settings["names"], settings["git_url"], suffix=settings["suffix"]),
        replica=settings["replica"],
    )
    async with service_with_monitor(config) as (service, monitor):
        await warm_up(service, slot - timedelta(minutes=15))
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        before, started = CpuMark.now({}), time.time()
        results = await tick_and_report(service.engine, service.notifier, slot, monitor)
        ended, cpu = time.time(), CpuMark.now({}).since(before)
    states = [fire.state for result in results for fire in result.fired_here]
    return {
        "replica": settings["replica"],
        "created": states.count(FireState.CREATED),
        "already_fired": states.count(FireState.ALREADY_FIRED),
        "other": len(states) - states.count(FireState.CREATED),
        "tick_end": started + monitor.tick_seconds,
        "round_end": ended,
        "cpu": cpu["here"] + cpu["workers"],
    }


# -- the benchmark ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    to_created: float  # wall seconds from the go to the last tick's end (every task created)
    to_round: float  # and to the last watcher round's end
    replicas_cpu: float
    emulator_cpu: float
    git_cpu: float
    shares: list[int]  # tasks each replica created


def one_run(
    count: int, run: int, settings: dict[str, Any], servers: dict[str, int], scratch: Path
) -> Run:
    with postgresql_database() as database:
        started = []
        for number in range(count):
            path = scratch / f"replica-{count}-{run}-{number}.json"
            path.write_text(
                json.dumps(
                    settings
                    | {
                        "ledger_url": database.url,
                        "replica": f"replica-{number}",
                        # Each replica its own git cache, as on a machine of its own.
                        "state_dir": str(scratch / f"state-{number}"),
                        "suffix": f"-n{count}-r{run}",
                    }
                )
            )
            started.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--as-replica", str(path)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        try:
            for process in started:
                assert process.stdout is not None
                if process.stdout.readline().strip() != "ready":
                    raise SystemExit("a replica did not start; see its errors above")
            before, go = CpuMark.now(servers), time.time()
            for process in started:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            figures = [
                json.loads(process.communicate()[0].strip().splitlines()[-1]) for process in started
            ]
            servers_cpu = CpuMark.now(servers).since(before)
        finally:
            for process in started:
                if process.poll() is None:
                    process.kill()
    if any(process.returncode for process in started):
        raise SystemExit("a replica failed; see its errors above")
    shares = [figure["created"] for figure in figures]
    expected = len(settings["names"]) * JOBS
    if sum(shares) != expected or any(figure["other"] for figure in figures):
        raise SystemExit(f"{count} replicas created {sum(shares)} tasks, not {expected}: {figures}")
    return Run(
        max(figure["tick_end"] for figure in figures) - go,
        max(figure["round_end"] for figure in figures) - go,
        sum(figure["cpu"] for figure in figures),
        servers_cpu["emulator"],
        servers_cpu["git server"],
        shares,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-replica", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per Taskcluster call")
    parser.add_argument("--git-latency-ms", type=float, default=50.0, help="per git request")
    args = parser.parse_args()
    logs.configure(level="warning")
    if args.as_replica:
        print(json.dumps(asyncio.run(replica(json.loads(args.as_replica.read_text())))))
        return

    figures: dict[int, list[Run]] = {count: [] for count in args.replicas}
    with tempfile.TemporaryDirectory(prefix="replicas-") as directory:
        scratch = Path(directory)
        names = make_repositories(scratch / "served", args.projects, cron_file(JOBS, EVERY_SLOT))
        with (
            git_server(scratch / "served", args.git_latency_ms) as git,
            emulator(args.latency_ms, scratch) as (taskcluster, credentials),
        ):
            servers = {"git server": git.pid, "emulator": taskcluster.pid}
            settings = {
                "credentials": credentials,
                "names": names,
                "git_url": git.url,
                "slot": slot_of(datetime.now(UTC)).isoformat(),
            }
            for run in range(args.runs):
                for count in args.replicas:
                    result = one_run(count, run, settings, servers, scratch)
                    figures[count].append(result)
                    print(
                        f"  run {run + 1}, {count} replicas: all created after "
                        f"{result.to_created:5.2f} s, shares {result.shares}",
                        flush=True,
                    )
    report(args, figures)


def report(args: argparse.Namespace, figures: dict[int, list[Run]]) -> None:
    calls = args.projects * JOBS
    print(
        f"replicas: {args.projects} projects x {JOBS} jobs, one slot, {args.latency_ms:g} ms per "
        f"Taskcluster call, {args.git_latency_ms:g} ms per git request, concurrency "
        f"{DEFAULT_CONCURRENCY} each, PostgreSQL ledger; {args.runs} runs (min / median / max)"
    )
    one = statistics.median(run.to_created for run in figures[min(figures)])
    for count, runs in figures.items():
        bound = math.ceil(calls / (DEFAULT_CONCURRENCY * count)) * args.latency_ms / 1000
        print(
            f"  {count} replica{'s' if count > 1 else ' '}: all {calls} created after "
            f"{spread([run.to_created for run in runs])} s "
            f"(bound {bound:.2f} s; speed-up of the medians over {min(figures)}: "
            f"{one / statistics.median(run.to_created for run in runs):.2f}x), with rounds "
            f"{spread([run.to_round for run in runs])} s"
        )
        print(
            f"     CPU s: replicas {spread([run.replicas_cpu for run in runs])}, "
            f"emulator {spread([run.emulator_cpu for run in runs])}, "
            f"git server {spread([run.git_cpu for run in runs])}"
        )
        # Replicas are alike: each run's shares, largest first, say how the work was split.
        shares = ", ".join(
            "/".join(str(share) for share in sorted(run.shares, reverse=True)) for run in runs
        )
        print(f"     tasks created by each replica, per run: {shares}")


if __name__ == "__main__":
    main()
