"""One tick across 100 projects with 5 due jobs each, against the emulator with 50 ms per call.

Runs the same tick at the configured concurrency and at concurrency 1 (how build-decision
works: one job after another) and prints both times, their ratio, and the ratio to the lower
bound ceil(calls / concurrency) x latency. Targets: 10x faster than sequential, within 2x of
the bound. Usage: `python benchmarks/tick_fanout.py [--projects 100] [--concurrency 20]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.common import logs
from scheduler.config.model import DEFAULT_CONCURRENCY, Config, Credentials, Project
from scheduler.cron import slot_of
from scheduler.ledger import FireState
from scheduler.service import open_engine
from tests.emulator.standalone import start_standalone
from tests.support.emulated import REPOSITORY_ROLES
from tests.support.repos import Repository

JOBS = 5
TEMPLATE = (Path(__file__).resolve().parents[1] / ".taskcluster.yml").read_text()
EVERY_SLOT = "[{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]"


def cron_file() -> str:
    jobs = "\n".join(
        f"  - name: job-{n}\n"
        f"    job: {{type: decision-task, treeherder-symbol: J{n}, target-tasks-method: j{n}}}\n"
        f"    when: {EVERY_SLOT}"
        for n in range(JOBS)
    )
    return f"jobs:\n{jobs}\n"


async def one_tick(config: Config, slot: datetime) -> tuple[float, float, int]:
    async with open_engine(config) as engine:
        # Warm the git cache and connections with an earlier slot, so the measured tick is a
        # steady-state one: an ls-remote per project, then the fires.
        warm = replace(config, dry_run=True)
        engine.config = warm
        await engine.tick(slot - timedelta(minutes=15))
        engine.config = config
        started, cpu_started = time.perf_counter(), time.process_time()
        results = await engine.tick(slot)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    created = sum(
        1
        for r in results
        for f in r.fires
        if f.state in (FireState.CREATED, FireState.ALREADY_FIRED)
    )
    return elapsed, cpu, created


def run_ticks(arguments: argparse.Namespace, root: Path, roles: Path) -> dict[int, float]:
    """The tick's time at the configured concurrency and at 1, against one emulator."""
    process, credentials = start_standalone(
        "--latency-ms", str(arguments.latency_ms), "--clients", str(roles)
    )
    try:
        cron = cron_file()
        projects = tuple(
            Project(
                name=f"project-{n:03d}",
                repository=f"https://github.com/example/project-{n:03d}",
                fetch_from=Repository(
                    root / "repos" / f"p{n}", {".cron.yml": cron, ".taskcluster.yml": TEMPLATE}
                ).url,
                trust_domain="bench",
            )
            for n in range(arguments.projects)
        )
        slot = slot_of(datetime.now(UTC))
        timings = {}
        for concurrency in (arguments.concurrency, 1):
            config = Config(
                root_url=credentials["rootUrl"],
                credentials=Credentials(credentials["clientId"], credentials["accessToken"]),
                ledger_url=f"sqlite:///{root / f'ledger-{concurrency}.db'}",
                state_dir=root / "state",
                concurrency=concurrency,
                dry_run=False,
                replica=f"bench-{concurrency}",
                claim_lease=timedelta(minutes=10),
                projects=tuple(replace(p, name=f"{p.name}-c{concurrency}") for p in projects),
                source="benchmark",
                render_workers=arguments.render_workers,
            )
            elapsed, cpu, created = asyncio.run(one_tick(config, slot))
            calls = arguments.projects * JOBS
            assert created == calls, f"expected {calls} tasks, got {created}"
            timings[concurrency] = elapsed
            print(
                f"concurrency {concurrency:3d}: {calls} createTask calls in {elapsed:6.2f} s "
                f"({cpu:.2f} s of CPU in this process)"
            )
        return timings
    finally:
        process.terminate()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help="the configured concurrency (default: the service's default)",
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--render-workers", type=int, default=1)
    arguments = parser.parse_args()
    logs.configure(level="warning")

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        # Each project's calls carry only its scopes: the deployment grants its cron role.
        roles = root / "roles.json"
        roles.write_text(json.dumps({"roles": REPOSITORY_ROLES}))
        timings = run_ticks(arguments, root, roles)

    calls = arguments.projects * JOBS
    print(
        f"({arguments.projects} projects x {JOBS} jobs, {arguments.render_workers} render workers)"
    )
    bound = math.ceil(calls / arguments.concurrency) * arguments.latency_ms / 1000
    fast, slow = timings[arguments.concurrency], timings[1]
    print(f"speed-up over sequential: {slow / fast:5.1f}x (target >= 10x)")
    latency = f"{arguments.latency_ms:g} ms"
    print(f"lower bound ceil({calls}/{arguments.concurrency}) x {latency}: {bound:.2f} s")
    print(f"configured tick / lower bound: {fast / bound:4.2f} (target <= 2)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (this process): {peak:.0f} MiB")


if __name__ == "__main__":
    main()
