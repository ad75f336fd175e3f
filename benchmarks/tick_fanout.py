"""One warm tick of 100 projects x 5 due jobs, as `tc-scheduler run` makes it: the service's
defaults, the corpus's translations template, heads read with `ls-refs` from a smart-HTTP git
server with latency (`measure.GIT_BACKENDS` git processes at once), the emulator answering each
call after 50 ms, and the watcher round after; at the next slot's boundary, on one clock moved
for the service and the emulator.

Each run fires a slot at the configured concurrency and at concurrency 1 (build-decision's way:
one job after another), each on a fresh ledger after a dry-run start-up tick, and prints
min / median / max over the runs of: wall time (the tick, and with its watcher round), the
speed-up over sequential, the ratio to the bound ceil(calls / concurrency) x latency, and CPU
per fire of each process (this one, the render workers, the git server, the emulator).
Then the same tick at the configured concurrency with the slot prepared first, as `run` prepares
each slot a minute before its boundary (`Engine.prepare`: heads read, decision tasks rendered):
the tick and the preparing apart.
Targets (issue 19): speed-up >= 10x, tick / bound <= 1.5, CPU <= 2 ms per fire with the round.

Usage: python benchmarks/tick_fanout.py [--projects 100] [--runs 3] [--git-latency-ms 50]
[--render-workers N] [--ways configured,sequential,prepared] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import print_profile, spread
from benchmarks.measure import (
    DEFAULT_RENDER_WORKERS,
    EVERY_SLOT,
    GIT_BACKENDS,
    CpuMark,
    DrivenClock,
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
from scheduler.config.model import DEFAULT_CONCURRENCY, Config
from scheduler.cron import slot_of
from scheduler.cron.timing import SLOT_LENGTH
from scheduler.ledger import FireState
from scheduler.rounds import tick_and_report

JOBS = 5


@dataclass(frozen=True)
class Tick:
    tick: float  # wall seconds of the tick
    total: float  # with the watcher round after it
    cpu: dict[str, float]  # CPU seconds of each kind of process, tick and round
    created: int
    prepare_cpu: dict[str, float] | None = None  # CPU seconds of preparing the slot, if it was


async def one_tick(
    config: Config,
    clock: DrivenClock,
    servers: dict[str, int],
    profile: cProfile.Profile | None,
    *,
    prepared: bool = False,
) -> Tick:
    """The next boundary's tick (its slot prepared first if `prepared`), made at the boundary
    on the service's and the emulator's clock, as `run` makes it."""
    slot = slot_of(clock()) + SLOT_LENGTH
    async with service_with_monitor(config, clock=clock) as (service, monitor):
        await warm_up(service, slot - SLOT_LENGTH)
        prepare_cpu = None
        if prepared:
            before = CpuMark.now(servers)
            await service.engine.prepare(slot)
            prepare_cpu = CpuMark.now(servers).since(before)
        clock.jump_to(slot)  # a render made ahead is used only with `now` the slot
        before, started = CpuMark.now(servers), time.perf_counter()
        if profile is not None:
            profile.enable()
        results = await tick_and_report(service.engine, service.notifier, slot, monitor)
        if profile is not None:
            profile.disable()
        total = time.perf_counter() - started
        cpu = CpuMark.now(servers).since(before)
    created = sum(
        1
        for result in results
        for fire in result.fires
        if fire.state in (FireState.CREATED, FireState.ALREADY_FIRED)
    )
    return Tick(monitor.tick_seconds, total, cpu, created, prepare_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"the configured concurrency (default: the service's, {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--render-workers",
        type=int,
        default=DEFAULT_RENDER_WORKERS,
        help=f"render processes (default: the service's, {DEFAULT_RENDER_WORKERS})",
    )
    parser.add_argument("--latency-ms", type=float, default=50.0, help="per Taskcluster call")
    parser.add_argument("--git-latency-ms", type=float, default=50.0, help="per git request")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each way's tick in the first run"
    )
    parser.add_argument(
        "--ways",
        default="configured,sequential,prepared",
        help="the ways to fire the slot, of configured, sequential, prepared (default: all)",
    )
    args = parser.parse_args()
    logs.configure(level="warning")

    calls = args.projects * JOBS
    # Each way a run fires the slot: (concurrency, prepared first).
    ways = {
        "configured": (args.concurrency, False),
        "sequential": (1, False),
        "prepared": (args.concurrency, True),
    }
    asked = args.ways.split(",")
    if unknown := sorted(set(asked) - set(ways)):
        parser.error(f"--ways: no such way {', '.join(unknown)}; the ways are {', '.join(ways)}")
    ways = {way: ways[way] for way in asked}
    runs: dict[str, list[Tick]] = {way: [] for way in ways}
    # CPU time, not wall: the tick waits on Taskcluster meanwhile.
    profile = cProfile.Profile(time.process_time) if args.profile else None
    with tempfile.TemporaryDirectory(prefix="tick-fanout-") as directory:
        scratch = Path(directory)
        names = make_repositories(scratch / "served", args.projects, cron_file(JOBS, EVERY_SLOT))
        with (
            git_server(scratch / "served", args.git_latency_ms) as git,
            emulator(args.latency_ms, scratch) as (taskcluster, credentials),
        ):
            servers = {"git server": git.pid, "emulator": taskcluster.pid}
            clock = DrivenClock(f"{credentials['rootUrl']}/_emulator")
            for run in range(args.runs):
                for way, (concurrency, prepared) in ways.items():
                    # Projects of their own in each run: the emulator has none of their tasks.
                    config = service_config(
                        credentials,
                        f"sqlite:///{scratch / f'ledger-{run}-{way}.db'}",
                        scratch / "state",
                        projects(names, git.url, suffix=f"-r{run}-{way}"),
                        concurrency=concurrency,
                        render_workers=args.render_workers,
                        replica=f"bench-{run}-{way}",
                    )
                    profiled = profile if run == 0 else None
                    tick = asyncio.run(
                        one_tick(config, clock, servers, profiled, prepared=prepared)
                    )
                    if tick.created != calls:
                        raise SystemExit(f"expected {calls} tasks created, got {tick.created}")
                    runs[way].append(tick)
                    print(
                        f"  run {run + 1}, {way} (concurrency {concurrency:2d}): "
                        f"tick {tick.tick:6.2f} s, with round {tick.total:6.2f} s",
                        flush=True,
                    )
    report(args, runs, calls)
    if profile is not None:
        print_profile(profile, "the first run's ticks, each way's added together")


def report(args: argparse.Namespace, runs: dict[str, list[Tick]], calls: int) -> None:
    bound = math.ceil(calls / args.concurrency) * args.latency_ms / 1000
    print(
        f"tick fan-out: {args.projects} projects x {JOBS} jobs (translations template), "
        f"{args.latency_ms:g} ms per Taskcluster call, {args.git_latency_ms:g} ms per git "
        f"request ({GIT_BACKENDS} git backends at once), {args.render_workers} render workers, "
        f"{args.runs} runs (min / median / max)"
    )
    for way, ticks in runs.items():
        print(
            f"  {way:<10}: tick {spread([t.tick for t in ticks])} s, "
            f"with watcher round {spread([t.total for t in ticks])} s"
        )
    if "configured" in runs and "sequential" in runs:
        pairs = zip(runs["configured"], runs["sequential"], strict=True)
        speedups = [slow.tick / fast.tick for fast, slow in pairs]
        print(f"  speed-up over sequential (tick): {spread(speedups, '5.1f')} x  (target >= 10)")
    print(f"  lower bound ceil({calls}/{args.concurrency}) x {args.latency_ms:g} ms: {bound:.2f} s")
    if fast := runs.get("configured"):
        print(
            f"  configured: tick / bound {spread([t.tick / bound for t in fast])}  "
            f"(target <= 1.5); with round: {spread([t.total / bound for t in fast])}"
        )
        print(f"    CPU ms per fire at concurrency {args.concurrency}, tick and watcher round:")
        for kind in fast[0].cpu:
            print(f"      {kind:<12} {spread([t.cpu[kind] * 1000 / calls for t in fast])}")
        service = [(t.cpu["here"] + t.cpu["workers"]) * 1000 / calls for t in fast]
        print(f"      {'service':<12} {spread(service)}  (this process + workers; target <= 2)")
    if prepared := runs.get("prepared"):
        print(
            "  prepared first, as `run` prepares each slot a minute before its boundary: "
            f"tick / bound {spread([t.tick / bound for t in prepared])}  (target <= 1.5); "
            f"with round: {spread([t.total / bound for t in prepared])}"
        )
        print("    CPU ms per fire, preparing the slot + its tick and watcher round:")
        for kind in prepared[0].cpu:
            ahead = [(t.prepare_cpu or {}).get(kind, 0.0) * 1000 / calls for t in prepared]
            at = [t.cpu[kind] * 1000 / calls for t in prepared]
            print(f"      {kind:<12} {spread(ahead)} + {spread(at)}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak memory (this process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
