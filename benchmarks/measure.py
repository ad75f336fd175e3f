"""What the tick benchmarks share: the processes they run beside the service (the emulator, a
smart-HTTP git server with latency), the CPU of each process read from /proc, the projects
they fire (the translations template from the corpus), and min / median / max.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

from benchmarks.figures import live_children, own_cpu, process_cpu
from scheduler.clock import Clock, utc_now
from scheduler.config.model import DEFAULT_CONCURRENCY, Config, Credentials, Project
from scheduler.monitoring import Metrics, Monitor
from scheduler.outcomes import SlotResult
from scheduler.service import Service, open_service
from tests.emulator.clock import parse_time
from tests.emulator.standalone import start_standalone
from tests.support.corpus import CORPUS
from tests.support.emulated import REPOSITORY_ROLES
from tests.support.git_http import serving
from tests.support.repos import Repository

# A real corpus template (19 kB of JSON-e), read where the corpus is, never copied here.
TEMPLATE_PATH = CORPUS / "taskcluster-yml" / "mozilla__translations.taskcluster.yml"
EVERY_SLOT = "[{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]"
ONCE_A_DAY = "[{hour: 0, minute: 0}]"
# The service's default: renders in-process.
DEFAULT_RENDER_WORKERS = next(
    field.default for field in dataclasses.fields(Config) if field.name == "render_workers"
)


def template() -> str:
    if not TEMPLATE_PATH.is_file():
        raise SystemExit(
            f"{TEMPLATE_PATH}: the corpus's translations template is not there; the benchmarks "
            "render it (the corpus beside this repository, or set TC_SCHEDULER_CORPUS)"
        )
    return TEMPLATE_PATH.read_text()


def cron_file(jobs: int, when: str) -> str:
    """A .cron.yml of `jobs` decision-task jobs, each fired `when`."""
    lines = "\n".join(
        f"  - name: job-{n}\n"
        f"    job: {{type: decision-task, treeherder-symbol: J{n}, target-tasks-method: j{n}}}\n"
        f"    when: {when}"
        for n in range(jobs)
    )
    return f"jobs:\n{lines}\n"


def make_repositories(root: Path, count: int, cron: str) -> list[str]:
    """`count` repositories under `root` (project-NNN), with `cron` and the template."""
    files = {".cron.yml": cron, ".taskcluster.yml": template()}
    for number in range(count):
        Repository(root / f"project-{number:03d}", files)
    return [f"project-{number:03d}" for number in range(count)]


# -- CPU ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuMark:
    """The CPU seconds of every process at one moment: here, render workers, servers."""

    here: float
    workers: dict[int, float]
    servers: dict[str, float]

    @classmethod
    def now(cls, servers: dict[str, int]) -> CpuMark:
        return cls(
            own_cpu(),
            live_children(tuple(servers.values())),
            {name: process_cpu(pid) for name, pid in servers.items()},
        )

    def since(self, before: CpuMark) -> dict[str, float]:
        """CPU seconds used between `before` and this mark, by each kind of process."""
        workers = sum(cpu - before.workers.get(pid, 0.0) for pid, cpu in self.workers.items())
        return {
            "here": self.here - before.here,
            "workers": workers,
            **{name: cpu - before.servers[name] for name, cpu in self.servers.items()},
        }


# -- processes beside the service ---------------------------------------------------------


@dataclass(frozen=True)
class Running:
    url: str
    pid: int


@contextmanager
def emulator(latency_ms: float, scratch: Path) -> Iterator[tuple[Running, dict[str, str]]]:
    """The emulator in its own process with the deployment's repository roles, its calls
    answered after `latency_ms`; and its root credentials."""
    roles = scratch / "roles.json"
    roles.write_text(json.dumps({"roles": REPOSITORY_ROLES}))
    process, credentials = start_standalone(
        "--latency-ms", str(latency_ms), "--clients", str(roles)
    )
    try:
        yield Running(credentials["rootUrl"], process.pid), credentials
    finally:
        process.terminate()
        process.wait()


# `git http-backend` processes the git server runs at once: as many as this machine has cores,
# as a remote host's pool of workers would (`GitHttpServer.backends`). Unbounded, the fifty a
# boundary's heads start at once would take the run queue from the service and the emulator,
# which no remote host's processes do: the same CPU (reported), not a storm of processes.
GIT_BACKENDS = os.cpu_count() or 1


def _serve_git(root: Path, latency: float, replies: Connection) -> None:
    with serving(root, latency=latency, backends=GIT_BACKENDS) as server:
        replies.send(server.url)
        replies.recv()  # until told to stop


@contextmanager
def git_server(root: Path, latency_ms: float) -> Iterator[Running]:
    """`git http-backend` serving the repositories under `root` in a process of its own, each
    answer held back `latency_ms`, `GIT_BACKENDS` backends at once."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    server = context.Process(target=_serve_git, args=(root, latency_ms / 1000, theirs))
    server.start()
    try:
        assert server.pid is not None
        yield Running(ours.recv(), server.pid)
    finally:
        ours.send("stop")
        server.join(timeout=60)
        if server.is_alive():
            server.kill()


# -- the service --------------------------------------------------------------------------


class DrivenClock:
    """Real time moved forward by an offset the benchmark sets, the emulator's clock (its
    control URL) moved with it: the service is put at a slot's boundary (`jump_to`), as `run`
    ticks it, and both clocks run on from there in step with real time."""

    def __init__(self, control: str) -> None:
        self.offset = timedelta(0)
        self.control = control

    def __call__(self) -> datetime:
        return utc_now() + self.offset

    def jump_to(self, moment: datetime) -> None:
        step = moment - self()
        if step < timedelta(0):
            raise ValueError(f"the emulator's clock only moves forward, not to {moment}")
        self.offset += step
        answer = _post(f"{self.control}/clock", {"advanceSeconds": step.total_seconds()})
        assert abs(parse_time(answer["now"]) - moment) < timedelta(seconds=1), answer


def _post(url: str, body: object) -> dict[str, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def projects(names: Sequence[str], git_url: str, *, suffix: str = "") -> tuple[Project, ...]:
    """A project per repository served at `git_url`, its tasks naming a GitHub repository."""
    return tuple(
        Project(
            name=f"{name}{suffix}",
            repository=f"https://github.com/example/{name}",
            fetch_from=f"{git_url}/{name}",
            trust_domain="translations",
        )
        for name in names
    )


def service_config(
    credentials: dict[str, str],
    ledger_url: str,
    state_dir: Path,
    projects: tuple[Project, ...],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    render_workers: int = DEFAULT_RENDER_WORKERS,
    replica: str = "bench",
) -> Config:
    """The service's configuration at its defaults, but for what a benchmark varies."""
    return Config(
        root_url=credentials["rootUrl"],
        credentials=Credentials(credentials["clientId"], credentials["accessToken"]),
        ledger_url=ledger_url,
        state_dir=state_dir,
        concurrency=concurrency,
        dry_run=False,
        replica=replica,
        claim_lease=timedelta(minutes=10),
        projects=projects,
        source="benchmark",
        render_workers=render_workers,
    )


class TimedMonitor(Monitor):
    """The service's monitor, which also keeps how long the last tick took (without the
    watcher round that follows it)."""

    tick_seconds: float = 0.0

    def ticked(self, results: Sequence[SlotResult], *, seconds: float) -> None:
        self.tick_seconds = seconds
        super().ticked(results, seconds=seconds)


@asynccontextmanager
async def service_with_monitor(
    config: Config, *, clock: Clock = utc_now
) -> AsyncIterator[tuple[Service, TimedMonitor]]:
    """The service as `run` opens it: its Taskcluster calls counted, a monitor of its ticks."""
    metrics = Metrics()
    async with open_service(config, clock=clock, observe=metrics.taskcluster_call) as service:
        yield service, TimedMonitor(service.ledger, service.engine.clock, metrics)


async def warm_up(service: Service, moment: datetime) -> None:
    """The start-up tick, dry-run (nothing created or claimed): every repository cloned, its
    files parsed, the render workers started, the connections opened."""
    engine = service.engine
    config = engine.config
    engine.config = replace(config, dry_run=True)
    try:
        await engine.tick(moment)
    finally:
        engine.config = config
