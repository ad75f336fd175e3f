"""Slot boundary -> decision task created, by the running service against the emulator.

Runs `scheduler.service.run` (the service's defaults but for the options given) in this process
against the standalone emulator (`--latency-ms 50` per call) in its own, 100 projects x 5 jobs
due every slot with the translations template of the corpus, repositories served by a local
`git http-backend` (heads read with `ls-refs`, as for https) or, with `--git file`, by `file://`
URLs. The service's clock and the emulator's are one driven clock: both jump together, to a
second before each slot's prepare, then to just before its boundary, so that several boundaries
pass in seconds. For every decision task of a boundary it takes the emulator's record of when
the createTask arrived (on that clock) minus the boundary, and prints p50 / p90 / max per
boundary, min / median / max of each over the boundaries, and the CPU of the service (this
process and its git processes), of the git server and of the emulator.

Usage: python benchmarks/slot_latency.py [--boundaries 3] [--concurrency N] [--git file]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.figures import own_cpu, process_cpu, spread
from benchmarks.measure import EVERY_SLOT, GIT_BACKENDS, DrivenClock, cron_file, template
from scheduler.common import logs
from scheduler.config.loading import read_config
from scheduler.config.model import DEFAULT_CONCURRENCY, Config
from scheduler.cron.timing import SLOT_LENGTH, format_slot, slot_of
from scheduler.ids import decision_task_id
from scheduler.service import run
from scheduler.slot_loop import PREPARE_LEAD
from tests.emulator.clock import parse_time
from tests.emulator.standalone import start_standalone
from tests.support.emulated import REPOSITORY_ROLES
from tests.support.git_http import serving
from tests.support.repos import Repository

# Where the driven clock is put before a boundary: after its prepare has ended, this long before
# the boundary (the slot loop looks at the clock every second; real time runs the rest).
BEFORE_BOUNDARY = timedelta(seconds=1.5)
HANG_GUARD = 600.0
JOBS_DUE = 5


def serve_git(root: Path, replies: Connection) -> None:
    """The git server's process: serve `root`, then answer its CPU so far until told to stop."""
    with serving(root, backends=GIT_BACKENDS) as server:
        replies.send(server.url)
        while replies.recv() == "cpu":
            replies.send(own_cpu())


class LogWatch(io.TextIOBase):
    """The service's JSON log, written to a file as it would be to standard error; counts the
    events of each slot as they come."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("w")
        self.seen: dict[tuple[str, str], int] = {}

    def write(self, text: str) -> int:
        self.file.write(text)
        for line in text.splitlines():
            if '"slot prepared"' in line or '"slot evaluated"' in line:
                event = json.loads(line)
                key = (event["event"], event["slot"])
                self.seen[key] = self.seen.get(key, 0) + 1
        return len(text)

    def count(self, event: str, slot: datetime) -> int:
        return self.seen.get((event, format_slot(slot)), 0)


def received_creates(control: str) -> dict[str, datetime]:
    with urllib.request.urlopen(f"{control}/received/queue.createTask", timeout=60) as answer:
        calls = json.loads(answer.read())["received"]
    return {call["params"]["taskId"]: parse_time(call["at"]) for call in calls}


async def until(condition: Callable[[], bool], service: asyncio.Task[None], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        if service.done():
            service.result()
            raise SystemExit(f"the service stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"waited {HANG_GUARD:.0f} s for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Boundary:
    """One boundary: each task's latency, the service's CPU preparing and from the prepare
    until every project's slot was evaluated, and the emulator's CPU over both."""

    slot: datetime
    latencies: list[float]
    prepare_cpu: float
    tick_cpu: float
    emulator: float

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def drive(
    config: Config,
    clock: DrivenClock,
    watch: LogWatch,
    emulator_pid: int,
    boundaries: int,
    *,
    prepared: bool,
) -> list[Boundary]:
    """Run the service across `boundaries` boundaries, each prepared ahead if `prepared`."""
    projects = [p.name for p in config.projects]
    stop = asyncio.Event()
    service = asyncio.create_task(run(config, clock=clock, stop=stop, prepare_ahead=prepared))
    start = slot_of(clock())
    await until(lambda: watch.count("slot evaluated", start) == len(projects), service, "start-up")
    measured = []
    for _ in range(boundaries):
        boundary = slot_of(clock()) + SLOT_LENGTH
        cpu, emulator = own_cpu(), process_cpu(emulator_pid)
        clock.jump_to(boundary - PREPARE_LEAD - timedelta(seconds=1))
        if prepared:
            await until(lambda b=boundary: watch.count("slot prepared", b) == 1, service, "prepare")
        ready = own_cpu()
        clock.jump_to(boundary - BEFORE_BOUNDARY)
        await until(
            lambda b=boundary: watch.count("slot evaluated", b) == len(projects), service, "tick"
        )
        received = await asyncio.to_thread(received_creates, clock.control)
        ids = [
            decision_task_id(config.root_url, project, f"job-{n}", boundary)
            for project in projects
            for n in range(JOBS_DUE)
        ]
        missing = [task_id for task_id in ids if task_id not in received]
        if missing:
            raise SystemExit(f"{len(missing)} of {len(ids)} tasks of {boundary} not created")
        measured.append(
            Boundary(
                boundary,
                [(received[task_id] - boundary).total_seconds() for task_id in ids],
                ready - cpu,
                own_cpu() - ready,
                process_cpu(emulator_pid) - emulator,
            )
        )
    stop.set()
    await asyncio.wait_for(service, HANG_GUARD)
    return measured


def configure(
    root: Path, name: str, urls: list[str], credentials: dict[str, str], args: argparse.Namespace
) -> Config:
    """The service's configuration: its defaults, but for these projects and options, on a
    ledger of its own called `name`."""
    lines = [
        "replica: bench",
        f"ledger: sqlite:///{root / f'{name}.db'}",
        f"state-dir: {root / 'state'}",
        "api: {listen: 'off'}",
    ]
    if args.concurrency is not None:
        lines.append(f"concurrency: {args.concurrency}")
    lines.append("projects:")
    for n, url in enumerate(urls):
        lines += [
            f"  - name: project-{n:03d}",
            f"    repository: https://github.com/example/project-{n:03d}",
            f"    fetch-from: {url}",
            "    trust-domain: translations",
            "    level: 3",
        ]
    path = root / f"{name}.yml"
    path.write_text("\n".join(lines) + "\n")
    environ = {
        "TASKCLUSTER_ROOT_URL": credentials["rootUrl"],
        "TASKCLUSTER_CLIENT_ID": credentials["clientId"],
        "TASKCLUSTER_ACCESS_TOKEN": credentials["accessToken"],
    }
    return read_config(path, environ)


def report(
    runs: dict[str, list[Boundary]], config: Config, args: argparse.Namespace, git: float
) -> None:
    def seconds(values: list[float]) -> str:
        return f"{spread(values, '6.3f')} s"

    print(
        f"slot latency: {len(config.projects)} projects x {JOBS_DUE} jobs, {args.latency_ms:g} ms "
        f"per call, concurrency {config.concurrency}, {config.render_workers} render workers, "
        f"git over {args.git}; boundary -> createTask received by the emulator"
    )
    for name, measured in runs.items():
        print(f"{name}, {len(measured)} boundaries:")
        for boundary in measured:
            print(
                f"  {format_slot(boundary.slot)}: first {min(boundary.latencies):.3f} s, "
                f"p50 {boundary.quantile(0.5):.3f} s, "
                f"p90 {boundary.quantile(0.9):.3f} s, max {max(boundary.latencies):.3f} s; "
                f"CPU service {boundary.prepare_cpu:.2f} s preparing + {boundary.tick_cpu:.2f} s "
                f"ticking, emulator {boundary.emulator:.2f} s"
            )
        print("  over the boundaries (min / median / max):")
        print(f"    p50 {seconds([b.quantile(0.5) for b in measured])}  (target <= 0.5 s)")
        print(f"    p90 {seconds([b.quantile(0.9) for b in measured])}  (target <= 1 s)")
        print(f"    max {seconds([max(b.latencies) for b in measured])}")
        print(f"    CPU of the service preparing     {seconds([b.prepare_cpu for b in measured])}")
        print(f"    CPU of the service ticking       {seconds([b.tick_cpu for b in measured])}")
        print(f"    CPU of the emulator per boundary {seconds([b.emulator for b in measured])}")
    if len(runs) == 2:
        prepared, unprepared = runs.values()
        for share in (0.5, 0.9):
            ratio = statistics.median(b.quantile(share) for b in unprepared) / statistics.median(
                b.quantile(share) for b in prepared
            )
            print(f"unprepared / prepared, median p{share * 100:.0f}: {ratio:.2f}")
    if args.git == "http":
        print(f"CPU of the git server, both runs: {git:.2f} s")
    fires = len(next(iter(runs.values()))[0].latencies)
    latency, concurrency = args.latency_ms / 1000, config.concurrency
    for share, name in ((0.5, "median"), (0.9, "p90")):
        batches = math.ceil(fires * share / concurrency)
        print(
            f"floor of the {name}: ceil({fires} x {share:g} / {concurrency}) x "
            f"{args.latency_ms:g} ms = {batches * latency:.2f} s created "
            f"({(batches - 1) * latency:.2f} s received)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--boundaries", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--concurrency", type=int, help=f"default: the service's ({DEFAULT_CONCURRENCY})"
    )
    parser.add_argument("--git", choices=("http", "file"), default="http")
    parser.add_argument(
        "--prepared-only",
        action="store_true",
        help="skip the second run, whose slots are not prepared ahead",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="slot-latency-") as directory:
        root = Path(directory)
        served = root / "served"
        for n in range(args.projects):
            Repository(
                served / f"project-{n:03d}",
                {".cron.yml": cron_file(JOBS_DUE, EVERY_SLOT), ".taskcluster.yml": template()},
            )
        roles = root / "roles.json"
        roles.write_text(json.dumps({"roles": REPOSITORY_ROLES}))
        emulator, credentials = start_standalone(
            "--latency-ms", str(args.latency_ms), "--clients", str(roles)
        )
        git_server = None
        ours, theirs = multiprocessing.get_context("fork").Pipe()
        try:
            if args.git == "http":
                git_server = multiprocessing.get_context("fork").Process(
                    target=serve_git, args=(served, theirs)
                )
                git_server.start()
                base = ours.recv()
                urls = [f"{base}/project-{n:03d}" for n in range(args.projects)]
            else:
                urls = [(served / f"project-{n:03d}").as_uri() for n in range(args.projects)]
            clock = DrivenClock(f"{credentials['rootUrl']}/_emulator")
            runs = {}
            for name in ("prepared", "unprepared")[: 1 if args.prepared_only else 2]:
                config = configure(root, name, urls, credentials, args)
                watch = LogWatch(root / f"{name}.log")
                logs.configure(json=True, level="info", stream=watch)
                runs[name] = asyncio.run(
                    drive(
                        config,
                        clock,
                        watch,
                        emulator.pid,
                        args.boundaries,
                        prepared=name == "prepared",
                    )
                )
            git = 0.0
            if git_server is not None:
                ours.send("cpu")
                git = ours.recv()
        finally:
            if git_server is not None:
                ours.send("stop")
                git_server.join(timeout=30)
            emulator.terminate()
            emulator.wait()
    report(runs, config, args, git)


if __name__ == "__main__":
    main()
