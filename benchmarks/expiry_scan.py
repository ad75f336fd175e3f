"""An expiry scan of 100,000 index entries in 50 namespaces, against the emulator at 20 ms a call.

Scans at the configured concurrency and at concurrency 1 in the same run and prints both times,
their ratio, entries per second and peak memory. Targets: 8x faster than sequential, under
200 MB. Usage: `python benchmarks/expiry_scan.py [--entries 100000] [--concurrency 50]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import slugid

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.common import logs
from scheduler.config.model import ExpiryWatch, Project
from scheduler.expiry.scan import Scanner
from scheduler.taskcluster import connect
from tests.emulator.standalone import start_standalone

NAMESPACES = 50
# Each cached task is indexed a few times over (`hash.<digest>`, `latest`, pushdates).
ENTRIES_PER_TASK = 10
CHUNK = 5_000


def control(root_url: str, route: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{root_url}/_emulator/{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()


def seed(root_url: str, entries: int) -> None:
    """`entries` index entries under NAMESPACES namespaces; a few tasks expire within days."""
    now = datetime.now(UTC)
    tasks = [slugid.nice() for _ in range(entries // ENTRIES_PER_TASK)]

    def expires(index: int) -> str:
        days = 10 if index % 1000 == 0 else 300
        return (now + timedelta(days=days)).isoformat().replace("+00:00", "Z")

    for start in range(0, len(tasks), CHUNK):
        batch = [
            {"taskId": t, "expires": expires(start + i)}
            for i, t in enumerate(tasks[start : start + CHUNK])
        ]
        control(root_url, "tasks", {"tasks": batch})
    rows = []
    for number in range(entries):
        task_index = number % len(tasks)
        namespace = f"bench.cache.level-3.toolchains.v3.name-{number % NAMESPACES:02d}"
        rows.append(
            {
                "namespace": f"{namespace}.hash.d{number:07d}",
                "taskId": tasks[task_index],
                "expires": expires(task_index),
            }
        )
        if len(rows) == CHUNK:
            control(root_url, "index", {"entries": rows})
            rows = []
    if rows:
        control(root_url, "index", {"entries": rows})


async def scan(credentials: dict[str, str], concurrency: int) -> tuple[float, float, int, int]:
    project = Project(name="bench", repository="https://x/y", trust_domain="bench", level=3)
    watch = ExpiryWatch(threshold=timedelta(days=30))
    credentials_only = {k: credentials[k] for k in ("clientId", "accessToken")}
    async with connect(
        credentials["rootUrl"], credentials_only, connections=concurrency
    ) as clients:
        scanner = Scanner(clients, concurrency=concurrency)
        started, cpu_started = time.perf_counter(), time.process_time()
        report = await scanner.report(project, watch, datetime.now(UTC))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return elapsed, cpu, report.scanned, len(report.at_risk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=ExpiryWatch().concurrency,
        help="the scan's configured concurrency (default: the expiry watch's default)",
    )
    parser.add_argument("--latency-ms", type=float, default=20.0)
    arguments = parser.parse_args()
    logs.configure(level="warning")

    process, credentials = start_standalone("--latency-ms", str(arguments.latency_ms))
    try:
        seed(credentials["rootUrl"], arguments.entries)
        timings = {}
        for concurrency in (arguments.concurrency, 1):
            elapsed, cpu, scanned, at_risk = asyncio.run(scan(credentials, concurrency))
            timings[concurrency] = elapsed
            rate = arguments.entries / elapsed
            print(
                f"concurrency {concurrency:3d}: {arguments.entries} entries ({scanned} tasks, "
                f"{at_risk} at risk) in {elapsed:5.2f} s ({cpu:.2f} s CPU here), "
                f"{rate:,.0f} entries/s"
            )
    finally:
        process.terminate()
        process.wait()
    fast, slow = timings[arguments.concurrency], timings[1]
    print(f"speed-up over sequential: {slow / fast:4.1f}x (target >= 8x)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (this process): {peak:.0f} MiB (target < 200 MiB)")


if __name__ == "__main__":
    main()
