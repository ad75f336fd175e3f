"""An expiry scan of a deep cache index (100,000 entries in thousands of namespaces) against the
emulator at 20 ms a call, at the expiry watch's default concurrency and sequentially.

The tree is taskgraph's: `<td>.cache.level-3.<kind>.v2.<name>` holds `latest`, `hash.<digest>`
and `pushdate.<yyyy>.<mm>.<dd>.<stamp>` entries, its names deterministic. Each scan runs in a
process of its own, so that its peak RSS and CPU are its own; the emulator is another process,
whose CPU is read from /proc around each scan. Every run scans at the configured concurrency and
then sequentially, and the speed-up is the ratio within a run; min / median / max over `--runs`.
Targets: 8x faster than sequential, peak RSS under 200 MB. Progress goes to stderr.
Usage: `python benchmarks/expiry_scan.py [--entries 100000] [--latency-ms 20] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import json
import random
import resource
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import process_cpu, spread
from scheduler.common import logs
from scheduler.config.model import ExpiryWatch, Project
from scheduler.expiry.scan import Scanner
from scheduler.taskcluster import connect
from tests.emulator.standalone import start_standalone

TRUST_DOMAIN = "bench"
KINDS = ("toolchains", "docker-images", "fetch", "build", "translations-train", "evaluate")
# Each task is indexed twice (`hash.<digest>` and `pushdate...`); each name once more (`latest`).
TASKS_PER_NAME = 160
PUSHES_PER_DAY = 32  # tasks of a name built on one day: five days, weeks apart, per name
AT_RISK_EVERY = 97  # one task in 97 expires within the threshold
CHUNK = 5_000


@dataclass(frozen=True)
class Tree:
    """The seeded index: its entries, the tasks they point to, and the namespaces they make."""

    entries: list[dict[str, str]]
    tasks: dict[str, str]  # task id -> expires
    namespaces: int


def task_id(rng: random.Random) -> str:
    """A `nice` slugid (a v4 UUID with its first bit clear), from a seeded generator."""
    raw = bytearray(rng.randbytes(16))
    raw[0] &= 0x7F
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return base64.urlsafe_b64encode(bytes(raw)).decode()[:22]


def deep_tree(entries: int, now: datetime) -> Tree:
    """`entries` index entries in taskgraph's cache layout, the same for the same size."""
    rng = random.Random(19)
    rows: list[dict[str, str]] = []
    tasks: dict[str, str] = {}
    namespaces: set[str] = set()

    def add(namespace: str, task: str) -> None:
        rows.append({"namespace": namespace, "taskId": task, "expires": tasks[task]})
        parts = namespace.split(".")
        namespaces.update(".".join(parts[:depth]) for depth in range(1, len(parts)))

    for number in itertools.count():
        kind = KINDS[number % len(KINDS)]
        base = f"{TRUST_DOMAIN}.cache.level-3.{kind}.v2.name-{number:04d}"
        task = ""
        for push in range(TASKS_PER_NAME):
            if len(rows) >= entries:
                break
            task = task_id(rng)
            serial = number * TASKS_PER_NAME + push
            days = 10 if serial % AT_RISK_EVERY == 0 else 60 + serial % 300
            tasks[task] = _formatted(now + timedelta(days=days))
            digest = hashlib.sha256(f"{base}/{push}".encode()).hexdigest()
            pushed = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
                days=(number * 7 + (push // PUSHES_PER_DAY) * 23) % 360, seconds=push * 97
            )
            add(f"{base}.hash.{digest}", task)
            if len(rows) < entries:
                add(f"{base}.pushdate.{pushed:%Y.%m.%d.%Y%m%d%H%M%S}", task)
        if task and len(rows) < entries:
            add(f"{base}.latest", task)
        if len(rows) >= entries:
            return Tree(rows, tasks, len(namespaces))
    raise AssertionError("unreachable: itertools.count never ends")


def _formatted(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def control(root_url: str, route: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{root_url}/_emulator/{route}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()


def seed(root_url: str, tree: Tree) -> None:
    tasks = [{"taskId": t, "expires": e} for t, e in tree.tasks.items()]
    for start in range(0, len(tasks), CHUNK):
        control(root_url, "tasks", {"tasks": tasks[start : start + CHUNK]})
    for start in range(0, len(tree.entries), CHUNK):
        control(root_url, "index", {"entries": tree.entries[start : start + CHUNK]})
        progress(f"seeded {min(start + CHUNK, len(tree.entries)):,} index entries")


# -- one scan, in its own process -------------------------------------------------------------


async def scan_once(credentials: dict[str, str], concurrency: int) -> dict[str, float]:
    """The service's scan of the tree (as scheduler/operations/expiry_report.py runs it)."""
    project = Project(name="bench", repository="https://x/y", trust_domain=TRUST_DOMAIN, level=3)
    watch = ExpiryWatch(concurrency=concurrency)
    calls = 0

    def count(_call: object) -> None:
        nonlocal calls
        calls += 1

    shown = 0

    def seen(entries: int) -> None:
        nonlocal shown
        if entries >= shown + 20_000:
            shown = entries - entries % 20_000
            progress(f"  {entries:,} entries seen")

    rss_before = peak_rss_mib()
    async with connect(
        credentials["rootUrl"],
        {k: credentials[k] for k in ("clientId", "accessToken")},
        connections=concurrency,
        observe=count,
    ) as clients:
        scanner = Scanner(clients, concurrency=concurrency, progress=seen)
        started, cpu_started = time.perf_counter(), time.process_time()
        report = await scanner.report(project, watch, datetime.now(UTC))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "wall": wall,
        "cpu": cpu,
        "calls": calls,
        "tasks": report.scanned,
        "at_risk": len(report.at_risk),
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
    }


def peak_rss_mib() -> float:
    """This process's peak RSS since it started (Linux's VmHWM). Not getrusage's ru_maxrss:
    that survives fork and exec, so a child's starts at its parent's size (here the tree's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_scan(credentials: dict[str, str], concurrency: int, emulator_pid: int) -> dict[str, float]:
    """One scan in a child process (credentials on its stdin), and the emulator's CPU meanwhile."""
    emulator_before = process_cpu(emulator_pid)
    child = subprocess.run(
        [sys.executable, __file__, "--scan-once", str(concurrency)],
        input=json.dumps(credentials),
        capture_output=True,
        text=True,
        check=False,
    )
    emulator_cpu = process_cpu(emulator_pid) - emulator_before
    sys.stderr.write(child.stderr)
    if child.returncode != 0:
        raise SystemExit(f"the scan at concurrency {concurrency} failed (exit {child.returncode})")
    result: dict[str, float] = json.loads(child.stdout)
    result["emulator_cpu"] = emulator_cpu
    return result


# -- the benchmark ---------------------------------------------------------------------------


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=100_000, help="index entries (100,000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per call (20)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each scan (3)")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=ExpiryWatch().concurrency,
        help="the scan's concurrency (default: the expiry watch's default)",
    )
    parser.add_argument("--scan-once", type=int, metavar="CONCURRENCY", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    logs.configure(level="warning")
    if arguments.scan_once is not None:
        credentials = json.loads(sys.stdin.read())
        print(json.dumps(asyncio.run(scan_once(credentials, arguments.scan_once))))
        return
    if arguments.entries < 1 or arguments.runs < 1:
        parser.error("--entries and --runs must be at least 1")
    if arguments.concurrency < 2:
        parser.error("--concurrency must be at least 2: the scan is compared with a sequential one")

    tree = deep_tree(arguments.entries, datetime.now(UTC))
    process, credentials = start_standalone("--latency-ms", str(arguments.latency_ms))
    runs: dict[int, list[dict[str, float]]] = {arguments.concurrency: [], 1: []}
    try:
        seed(credentials["rootUrl"], tree)
        for run in range(1, arguments.runs + 1):
            for concurrency, results in runs.items():
                progress(f"run {run}/{arguments.runs}: scanning at concurrency {concurrency}")
                results.append(run_scan(credentials, concurrency, process.pid))
    finally:
        process.terminate()
        process.wait()

    fast, slow = runs[arguments.concurrency], runs[1]
    if len({(r["tasks"], r["at_risk"]) for r in fast + slow}) != 1:
        raise SystemExit("the scans found different tasks: a scan is wrong")
    print(
        f"expiry scan of {len(tree.entries):,} index entries ({len(tree.tasks):,} tasks, "
        f"{tree.namespaces:,} namespaces) at {arguments.latency_ms:g} ms a call; "
        f"min / median / max of {arguments.runs} runs; the emulator is another process"
    )
    for label, results in ((f"concurrency {arguments.concurrency}", fast), ("sequential", slow)):
        print(
            f"{label:>15}: wall {spread([r['wall'] for r in results], '.2f', ' s')}, "
            f"{int(results[0]['calls']):,} calls, {int(results[0]['at_risk'])} at risk; "
            f"scan CPU {spread([r['cpu'] for r in results], '.2f', ' s')}, "
            f"emulator CPU {spread([r['emulator_cpu'] for r in results], '.2f', ' s')}, "
            f"peak RSS {spread([r['peak_rss_mib'] for r in results], '.0f', ' MiB')} "
            f"({results[0]['rss_before_mib']:.0f} MiB before the scan)"
        )
    ratios = [s["wall"] / f["wall"] for f, s in zip(fast, slow, strict=True)]
    print(f"speed-up over sequential: {spread(ratios, '.1f', 'x')} (target >= 8x)")
    peak = max(r["peak_rss_mib"] for r in fast)
    print(f"peak RSS of the scan: {peak:.0f} MiB (target < 200 MB)")


if __name__ == "__main__":
    main()
