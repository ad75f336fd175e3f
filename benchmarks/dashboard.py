"""The dashboard's server time per page with 100 projects x 10 jobs and 10,000 fires in the ledger.

Seeds a ledger (SQLite, or with --postgres a fresh PostgreSQL schema) as a busy deployment has it,
and a hooks folder of 5 groups x 20 hooks all deployed (some drifted, each fired nightly) to
the Taskcluster emulator; opens the service over both, signs in once as an operator and times
each page of PAGES with that session through the real app in process (ASGI). A page whose read
the service caches (CACHED) is timed both with its cache emptied before each run and cached.
Prints min / median / max per page and whether the median is within issue 17's 200 ms; asserts
nothing. Usage: `python benchmarks/dashboard.py [--projects 100] [--fires 10000] [--runs 7]
[--postgres]`.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import taskcluster
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.common import logs
from scheduler.config.model import ApiSettings, ApiToken, Config, Credentials, Project, Retention
from scheduler.ledger import Act, Claim, FireKind, FireState, Health, Ledger, Notice, Outcome
from scheduler.ledger.connecting import create_ledger_engine
from scheduler.ledger.models import SlotRow
from scheduler.monitoring import Monitor
from scheduler.operations.acts import Operations
from scheduler.service import open_service
from scheduler.web.app import create_app
from scheduler.web.auth import hash_token
from tests.emulator import Emulator
from tests.support.dashboard import sign_in
from tests.support.hooks import REVISION, deploy, hook_file, write_hook
from tests.support.ledger_backends import postgresql_schema_url
from tests.support.repos import Repository

# The pages timed: a path, with {project} (the busiest project) and {fire} (a fire with a
# rendered task) filled in. A new page is one more line.
PAGES = ("/", "/projects/{project}", "/fires/{fire}", "/audit", "/hooks", "/sign-in")
# The pages whose read the service keeps for a while, and how to empty that cache: each is timed
# uncached (what the first reader after the cache lapses waits) and cached (what the others do).
CACHED: dict[str, Callable[[Operations], None]] = {
    "/hooks": lambda operations: operations.hook_reads.forget(),
}
TARGET_MS = 200
JOBS = 10
HOOK_GROUPS = 5
HOOKS_PER_GROUP = 20
HOOK_FIRES = 5  # each hook's fires in the deployment, as many as the page shows
# The operator whose session reads every page.
TOKEN = "bench-" + secrets.token_urlsafe(24)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TEMPLATE = (Path(__file__).resolve().parents[1] / ".taskcluster.yml").read_text()
WARM_UP = 2


def cron_file() -> str:
    """Ten jobs firing twice a day each: job-n at n:00 and n+12:30 UTC."""
    jobs = "\n".join(
        f"  - name: job-{n}\n"
        f"    job: {{type: decision-task, treeherder-symbol: J{n}, target-tasks-method: j{n}}}\n"
        f"    when: [{{hour: {n}, minute: 0}}, {{hour: {n + 12}, minute: 30}}]"
        for n in range(JOBS)
    )
    return f"jobs:\n{jobs}\n"


def past_slots(count: int) -> list[tuple[str, datetime]]:
    """The `count` latest (job, slot) of cron_file() before NOW, newest first."""
    found: list[tuple[str, datetime]] = []
    day = NOW.replace(hour=0, minute=0)
    while len(found) < count:
        today = [
            (f"job-{n}", day.replace(hour=hour, minute=minute))
            for n in range(JOBS)
            for hour, minute in ((n, 0), (n + 12, 30))
        ]
        found += sorted((s for s in today if s[1] < NOW), key=lambda s: s[1], reverse=True)
        day -= timedelta(days=1)
    return found[:count]


def rendered_task(project: str, job: str, task_id: str) -> dict[str, object]:
    """About the size and shape of a real decision task (a few kB)."""
    return {
        "task": {
            "taskGroupId": task_id,
            "schedulerId": "tcs-level-3",
            "provisionerId": "tcs-3",
            "workerType": "decision",
            "created": NOW.isoformat(),
            "deadline": (NOW + timedelta(days=1)).isoformat(),
            "expires": (NOW + timedelta(days=365)).isoformat(),
            "routes": [f"tc-treeherder.v2.{project}.{task_id}", f"index.tcs.v2.{project}.{job}"],
            "scopes": [f"assume:repo:github.com/example/{project}:cron:{job}"] * 3,
            "payload": {
                "env": {f"TCS_VARIABLE_{n}": f"value of variable {n} for {job}" for n in range(30)},
                "command": ["bash", "-cx", " && ".join(f"step-{n} --job {job}" for n in range(40))],
                "features": {"taskclusterProxy": True, "chainOfTrust": True},
                "maxRunTime": 1800,
            },
            "metadata": {
                "name": f"Decision task for cron job {job}",
                "description": f"Created by tc-scheduler for {project}",
                "owner": "cron@example.com",
                "source": f"https://github.com/example/{project}/raw/main/.taskcluster.yml",
            },
            "extra": {"cron": {"job_name": job, "quoted_args": "--verbose " * 20}},
        }
    }


def seed(ledger: Ledger, url: str, projects: int, fires: int) -> None:
    """`fires` fires over the projects' job slots before NOW (mostly created; failed, dry-run,
    manual and still-open ones among them), every quarter hour of the retention period
    evaluated (as the engine records it), some pauses, open and closed incidents, and a thousand
    audited acts."""
    wanted = past_slots(fires // projects)
    lease = timedelta(minutes=10)
    for p in range(projects):
        project = f"p{p}"
        claims = ledger.claim_many(
            project,
            [(job, slot, FireKind.SCHEDULED) for job, slot in wanted],
            replica="bench",
            now=NOW,
            lease=lease,
        )
        outcomes = []
        for n, claim in enumerate(claims):
            if claim is None or (n == 0 and p % 10 == 0):  # some fires are still open
                continue
            failed, task_id = n % 17 == 0, f"Tsk{p:03d}x{n:04d}AbCdEfGhIj"
            outcomes.append(
                Outcome(
                    claim,
                    FireState.FAILED if failed else FireState.CREATED,
                    task_id=task_id,
                    revision=f"{p:040x}",
                    details=rendered_task(project, claim.job, task_id),
                    error="the queue said no: InsufficientScopes for queue:create-task" * failed,
                )
            )
        ledger.finish_many(outcomes, now=NOW)
        if p % 5 == 0:
            manual = ledger.claim_manual(
                project, "job-1", now=NOW, replica="bench", lease=lease, min_interval=lease
            )
            if isinstance(manual, Claim):
                ledger.finish_many([Outcome(manual, FireState.DRY_RUN)], now=NOW)
    _slots(url, projects, days=Retention().fires.days)
    for p in range(0, projects, 7):
        act = Act("alice", "pause", f"p{p}", {"reason": "maintenance"})
        job = None if p % 3 == 0 else "job-2"
        ledger.pause(f"p{p}", job, reason="tree closed", until=None, act=act, now=NOW)
    failing = [
        Notice(
            key=f"fail-{p}-{n}",
            event={"kind": "fire-failed"},
            destinations=("slack",),
            subject=f"job:p{p}/job-{n}",
            health=Health.FAILING,
            fingerprint="broken",
        )
        for p in range(0, projects, 4)
        for n in range(2)
    ]
    healed = [
        replace(notice, key=f"ok-{notice.key}", health=Health.HEALTHY) for notice in failing[::3]
    ]
    ledger.report(failing, now=NOW - timedelta(hours=3))
    ledger.report(healed, now=NOW - timedelta(hours=1))
    for n in range(1000):
        act = Act("bot", "fire", f"p{n % projects}/job-{n % JOBS}", {"token": "hush", "n": n})
        ledger.record_act(act, ok=n % 9 != 0, result="fired", now=NOW - timedelta(minutes=n))


def _slots(url: str, projects: int, days: int) -> None:
    """Every quarter hour of the last `days` days evaluated, for every project (what the ledger
    keeps of a busy deployment); written in bulk, as a million single upserts would take long."""
    engine = create_ledger_engine(url)
    first = NOW - timedelta(days=days)
    quarters = int((NOW - first) / timedelta(minutes=15))
    try:
        with engine.begin() as connection:
            for p in range(projects):
                rows = [
                    {
                        "project": f"p{p}",
                        "slot": first + timedelta(minutes=15 * q),
                        "revision": f"{p:040x}",
                        "outcome": "failed" if p % 13 == 0 and q == quarters else "evaluated",
                        "error": "could not read .cron.yml" if p % 13 == 0 else None,
                        "replica": "bench",
                        "evaluated_at": first + timedelta(minutes=15 * q, seconds=3),
                    }
                    for q in range(quarters + 1)
                ]
                connection.execute(insert(SlotRow), rows)
    finally:
        engine.dispose()


def seed_hooks(emulator: Emulator, folder: Path) -> None:
    """HOOK_GROUPS x HOOKS_PER_GROUP hooks in `folder`, all deployed to the emulator, every
    fifth with another description there (drift), each fired on each of the HOOK_FIRES nights
    before NOW; the emulator's clock is left at NOW, as the service's."""
    hooks = taskcluster.Hooks(emulator.options(maxRetries=0))
    midnight = NOW.replace(hour=0, minute=0)
    for g in range(HOOK_GROUPS):
        for h in range(HOOKS_PER_GROUP):
            definition = hook_file(
                f"nightly-{h}",
                group=f"project-{g}",
                description=f"Promotes the nightly build {h} of project {g}.",
                schedule=[f"0 0 {h % 24} * * *"],
            )
            write_hook(folder, definition)
            if h % 5 == 0:
                metadata = definition["metadata"] | {"description": "Changed by hand."}
                definition = definition | {"metadata": metadata}
            deploy(emulator, definition)
            for night in range(HOOK_FIRES, 0, -1):
                emulator.clock.set(midnight - timedelta(days=night, hours=-(h % 24)))
                payload = {"revision": REVISION, "flavor": "ship"}
                hooks.triggerHook(f"project-{g}", f"nightly-{h}", payload)
    emulator.clock.set(NOW)


async def measure(config: Config, runs: int) -> dict[str, list[float]]:
    async with open_service(config, clock=lambda: NOW) as (engine, _, ledger):
        operations = Operations(engine, ledger)
        app = create_app(operations, config.api, Monitor(ledger, engine.clock))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await sign_in(client, TOKEN)
            fire = (await ledger.run(lambda port: port.fires(project="p1", limit=1)))[0]
            names = {"project": "p1", "fire": fire.id}
            times: dict[str, list[float]] = {}
            for page in PAGES:
                path = page.format(**names)
                forget = CACHED.get(page)
                if forget is not None:
                    times[f"{path} (uncached)"] = await timed(
                        client, path, runs, partial(forget, operations)
                    )
                    times[f"{path} (cached)"] = await timed(client, path, runs)
                else:
                    times[path] = await timed(client, path, runs)
            return times


async def timed(
    client: httpx.AsyncClient, path: str, runs: int, before: Callable[[], None] | None = None
) -> list[float]:
    """The server time of `runs` reads of `path` after WARM_UP, in ms, each after `before()`; a
    page that does not answer 200 signed in as the operator stops the benchmark."""
    taken = []
    for run in range(WARM_UP + runs):
        if before is not None:
            before()
        started = time.perf_counter()
        response = await client.get(path)
        if run >= WARM_UP:
            taken.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
        if 'name="csrf"' not in response.text:
            raise SystemExit(f"{path} was not read signed in (no CSRF token in its forms)")
    return taken


@contextmanager
def ledger_url(postgres: bool, root: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{root / 'ledger.db'}"
        return
    with postgresql_schema_url() as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--fires", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7, help="timed renders of each page (>= 5)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="a fresh schema on the test server (TC_SCHEDULER_TEST_POSTGRES) instead of SQLite",
    )
    args = parser.parse_args()
    logs.configure(level="warning")  # the operator's sign-in is not a figure
    with (
        tempfile.TemporaryDirectory() as tmp,
        ledger_url(args.postgres, Path(tmp)) as url,
        Emulator() as emulator,
    ):
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
        started = time.perf_counter()
        with Ledger.open(url) as ledger:
            seed(ledger, url, args.projects, args.fires)
        seed_hooks(emulator, root / "hooks")
        seeded = time.perf_counter() - started
        config = Config(
            root_url=emulator.root_url,
            credentials=Credentials(
                client_id=emulator.root_credentials["clientId"],
                access_token=emulator.root_credentials["accessToken"],
            ),
            ledger_url=url,
            state_dir=root / "state",
            concurrency=8,
            dry_run=True,
            replica="bench",
            claim_lease=timedelta(minutes=10),
            projects=projects,
            source="benchmark",
            hooks_dir=root / "hooks",
        )
        operator = ApiToken("bench", "operator", hash_token(TOKEN))
        config = replace(config, api=ApiSettings(tokens=(operator,)))
        times = asyncio.run(measure(config, args.runs))
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"{args.projects} projects x {JOBS} jobs, {args.fires} fires on {backend}, "
        f"{HOOK_GROUPS * HOOKS_PER_GROUP} hooks (seeded in {seeded:.0f} s); signed in as an "
        f"operator, {args.runs} runs per page after {WARM_UP} warm-up, ms:"
    )
    print(f"  {'page':<24} {'min':>8} {'median':>8} {'max':>8}")
    for path, taken in times.items():
        median = statistics.median(taken)
        verdict = "pass" if median < TARGET_MS else f"FAIL (over {TARGET_MS} ms)"
        print(f"  {path:<24} {min(taken):8.1f} {median:8.1f} {max(taken):8.1f}  {verdict}")


if __name__ == "__main__":
    main()
