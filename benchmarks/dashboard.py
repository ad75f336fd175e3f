"""The dashboard's server time with 100 projects x 10 jobs and 10,000 fires in the ledger.

Seeds a SQLite ledger, opens the service over it (every project reads one local repository),
and prints the median of several renders of each page through the real app (in process, over
ASGI). Prints figures; asserts nothing. Issue 17's target is 200 ms a page.
Usage: `python benchmarks/dashboard.py [--projects 100] [--fires 10000] [--renders 7]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.config.model import ApiSettings, Config, Project
from scheduler.ledger import FireKind, FireState, Ledger, Outcome
from scheduler.monitoring import Monitor
from scheduler.operations.acts import Operations
from scheduler.service import open_service
from scheduler.web.app import create_app
from tests.support.repos import Repository

JOBS = 10
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TEMPLATE = (Path(__file__).resolve().parents[1] / ".taskcluster.yml").read_text()


def cron_file() -> str:
    jobs = "\n".join(
        f"  - name: job-{n}\n"
        f"    job: {{type: decision-task, treeherder-symbol: J{n}, target-tasks-method: j{n}}}\n"
        f"    when: [{{hour: {n}, minute: 0}}, {{hour: {n + 12}, minute: 30}}]"
        for n in range(JOBS)
    )
    return f"jobs:\n{jobs}\n"


def seed(url: str, projects: int, fires: int) -> None:
    """`fires` finished fires spread over the projects' jobs and the slots before NOW."""
    with Ledger.open(url) as ledger:
        per_project = fires // projects
        for p in range(projects):
            wanted = [
                (
                    f"job-{i % JOBS}",
                    NOW - timedelta(minutes=15 * (i // JOBS + 1)),
                    FireKind.SCHEDULED,
                )
                for i in range(per_project)
            ]
            claims = ledger.claim_many(
                f"p{p}", wanted, replica="bench", now=NOW, lease=timedelta(minutes=10)
            )
            outcomes = [
                Outcome(
                    claim,
                    FireState.FAILED if n % 17 == 0 else FireState.CREATED,
                    task_id=f"task{p}x{n}",
                    details={"task": {"taskGroupId": f"task{p}x{n}", "payload": {"n": n}}},
                    error="the queue said no" if n % 17 == 0 else None,
                )
                for n, claim in enumerate(claims)
                if claim is not None
            ]
            ledger.finish_many(outcomes, now=NOW)


async def measure(config: Config, renders: int) -> dict[str, float]:
    async with open_service(config, clock=lambda: NOW) as (engine, _, ledger):
        app = create_app(Operations(engine, ledger), config.api, Monitor(ledger, engine.clock))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            first = (await client.get("/projects/p0")).text
            fire_id = first.split('href="/fires/')[1].split('"')[0]
            await client.get("/")  # warm: every project's .cron.yml read once
            times: dict[str, float] = {}
            for path in ("/", "/projects/p0", f"/fires/{fire_id}", "/audit"):
                taken = []
                for _ in range(renders):
                    started = time.perf_counter()
                    response = await client.get(path)
                    taken.append(time.perf_counter() - started)
                    assert response.status_code == 200, (path, response.status_code)
                times[path] = statistics.median(taken) * 1000
            return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--fires", type=int, default=10_000)
    parser.add_argument("--renders", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repository = Repository(
            root / "repo", {".cron.yml": cron_file(), ".taskcluster.yml": TEMPLATE}
        )
        projects = tuple(
            Project(
                name=f"p{n}",
                repository=f"https://github.com/example/p{n}",
                fetch_from=repository.url,
                trust_domain="tcs",
            )
            for n in range(args.projects)
        )
        url = f"sqlite:///{root / 'ledger.db'}"
        seed(url, args.projects, args.fires)
        config = Config(
            root_url="https://tc.example.com",
            credentials=None,
            ledger_url=url,
            state_dir=root / "state",
            concurrency=8,
            dry_run=True,
            replica="bench",
            claim_lease=timedelta(minutes=10),
            projects=projects,
            source="benchmark",
        )
        config = replace(config, api=ApiSettings(public_reads=True))
        times = asyncio.run(measure(config, args.renders))
    print(f"{args.projects} projects x {JOBS} jobs, {args.fires} fires; median of {args.renders}")
    for path, ms in times.items():
        print(f"  {path:<24} {ms:8.1f} ms{'' if ms <= 200 else '  (over 200 ms)'}")


if __name__ == "__main__":
    main()
