"""`/metrics` and `/readyz` of the running service: a `tc-scheduler run` scraped after a tick with
fires, a failure, a skip, a take-over and an expiry scan; readiness while the ticker stops, the
ledger goes away or its schema falls behind; Taskcluster's requests counted through the client.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import slugid
import taskcluster.exceptions
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from scheduler import service as composition
from scheduler.clock import clock_from
from scheduler.config.model import ApiSettings, ApiToken
from scheduler.cron import slot_of
from scheduler.ledger import Act, Backlog, FireKind, Ledger, LetterState, Notice, SlotOutcome
from scheduler.ledger.migrating import alembic_config, head_revision
from scheduler.monitoring import Metrics, Monitor
from scheduler.rounds import tick_and_report
from scheduler.service import open_service
from scheduler.taskcluster import connect
from scheduler.taskcluster_calls import Call
from scheduler.web.auth import hash_token
from scheduler.web.server import ApiServer
from tests.emulator import Emulator
from tests.support.emulated import task_definition, taskcluster_environment
from tests.support.expiry import CACHED, seed, seed_rebuild_action
from tests.support.ledger_backends import PostgresDatabase, postgresql_database
from tests.support.projects import GREEDY_TEMPLATE, HOURLY, OWN_TEMPLATE, make_config, project
from tests.support.repos import Repository
from tests.support.scrape import Samples, parse, value
from tests.support.service import Service
from tests.support.waiting import wait_until

T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EVERY_SLOT = """\
jobs:
  - name: often
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
"""
SLACK = "slack:#releng"
SLUG = re.compile(r"[A-Za-z0-9_-]{22}")


def one_before_head() -> str:
    """The schema revision before this version's: a ledger one migration behind."""
    down = ScriptDirectory.from_config(alembic_config()).get_revision(head_revision()).down_revision
    assert isinstance(down, str)
    return down


def labelled(found: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(dict(labels)[key] for key in keys): number
        for (sample, labels), number in found.items()
        if sample == name
    }


# -- /metrics of `tc-scheduler run` -------------------------------------------------------------


def write_projects(tmp_path: Path, ledger_url: str) -> Path:
    """alpha fires every slot and missed two; beta every slot, one held by a replica that
    stopped; gamma asks for scopes its role lacks; delta is paused; epsilon has no jobs and
    its cached tasks watched. Slack is down, so notices wait in the outbox."""
    template = OWN_TEMPLATE
    repositories = {
        "alpha": {".cron.yml": EVERY_SLOT, ".taskcluster.yml": template},
        "beta": {".cron.yml": EVERY_SLOT, ".taskcluster.yml": template},
        "gamma": {".cron.yml": EVERY_SLOT, ".taskcluster.yml": GREEDY_TEMPLATE},
        "delta": {".cron.yml": EVERY_SLOT, ".taskcluster.yml": template},
        "epsilon": {".taskcluster.yml": template},
    }
    entries = "".join(
        f"  - name: {name}\n"
        f"    repository: https://github.com/example/{name}\n"
        f"    fetch-from: {Repository(tmp_path / name, files).url}\n"
        "    trust-domain: tcs\n" + ("    expiry: {}\n" if name == "epsilon" else "")
        for name, files in repositories.items()
    )
    config = tmp_path / "service.yml"
    config.write_text(
        f"ledger: {ledger_url}\n"
        f"state-dir: {tmp_path / 'state'}\n"
        "api: {listen: '127.0.0.1:0'}\n"
        "notify:\n"
        "  slack: {api-url: 'http://127.0.0.1:9/api/', channel: '#releng'}\n"
        f"projects:\n{entries}"
    )
    return config


def seed_ledger(ledger_url: str, slot: datetime, now: datetime) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.record_slot(
            "alpha",
            slot - timedelta(minutes=45),
            revision=None,
            outcome=SlotOutcome.EVALUATED,
            error=None,
            replica="ghost",
            now=now,
        )
        ledger.record_slot(
            "beta",
            slot - timedelta(minutes=15),
            revision=None,
            outcome=SlotOutcome.EVALUATED,
            error=None,
            replica="ghost",
            now=now,
        )
        # A replica that claimed beta's last slot and stopped: its lease has run out.
        ledger.claim(
            "beta",
            "often",
            slot - timedelta(minutes=15),
            kind=FireKind.SCHEDULED,
            replica="ghost",
            now=slot - timedelta(minutes=14),
            lease=timedelta(minutes=1),
        )
        ledger.pause(
            "delta",
            None,
            reason="tree closed",
            until=None,
            act=Act("tests", "pause", "delta", None),
            now=now,
        )


def scrape(url: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return parse(answer.text)


def pending_letters(ledger_url: str) -> dict[str, int]:
    with Ledger.open(ledger_url) as ledger:
        letters = ledger.letters(state=LetterState.PENDING)
    counts: dict[str, int] = {}
    for letter in letters:
        counts[letter.destination] = counts.get(letter.destination, 0) + 1
    return counts


@pytest.mark.process
def test_metrics_of_a_running_service_say_what_its_tick_and_scan_did(
    emulator: Emulator, tmp_path: Path
) -> None:
    start = slot_of(emulator.clock.now()) + timedelta(minutes=7, seconds=30)
    emulator.clock.set(start)
    slot = slot_of(start)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    config = write_projects(tmp_path, ledger_url)
    seed_ledger(ledger_url, slot, start)
    for namespace in CACHED:
        seed(emulator, f"{namespace}.hash.ab12", timedelta(days=10))
    seed_rebuild_action(emulator, "epsilon")
    env = {
        **os.environ,
        **taskcluster_environment(emulator),
        "SLACK_BOT_TOKEN": "xoxb-1111-metrics-test-token",
    }
    service = Service([sys.executable, "-m", "scheduler", "run", "--config", str(config)], env)
    try:
        assert wait_until(lambda: _serving(service) is not None), service.lines
        url = _serving(service)
        assert url is not None

        def ticked_and_scanned() -> bool:
            found = scrape(url)
            ticks = value(found, "tc_scheduler_tick_duration_seconds_count") or 0
            scans = value(found, "tc_scheduler_expiry_scans_total", project="epsilon", outcome="ok")
            return ticks >= 1 and scans == 1

        assert wait_until(ticked_and_scanned), service.lines
        found = scrape(url)
        # The outbox's gauges are read from the ledger at each scrape.
        assert wait_until(
            lambda: (
                labelled(scrape(url), "tc_scheduler_outbox_backlog", "destination")
                == {(d,): n for d, n in pending_letters(ledger_url).items()}
            )
        )
        outbox = scrape(url)
        assert httpx.get(f"{url}/readyz", timeout=60).json() == {"status": "ok"}
        service_now = clock_from(env)()
    finally:
        assert service.stop() == 0

    fires = labelled(found, "tc_scheduler_fires_total", "project", "job", "kind", "state")
    assert fires[("alpha", "often", "catch-up", "created")] == 1
    assert fires[("alpha", "often", "catch-up", "skipped")] == 1
    assert fires[("alpha", "often", "scheduled", "created")] == 1
    # Its own slot, and the one taken over from the replica that stopped.
    assert fires[("beta", "often", "scheduled", "created")] == 2
    assert fires[("gamma", "often", "scheduled", "failed")] == 1
    assert fires[("delta", "often", "scheduled", "skipped")] == 1
    assert {key for key in fires if key[3] == "failed"} == {
        ("gamma", "often", "scheduled", "failed")
    }
    assert labelled(found, "tc_scheduler_skipped_fires_total", "project", "job", "reason") == {
        ("alpha", "often", "not-newest"): 1,
        ("delta", "often", "paused"): 1,
    }
    assert labelled(found, "tc_scheduler_claim_takeovers_total", "project") == {("beta",): 1}

    # alpha's and beta's own slot, beta's last; alpha's catch-up of its last. The service's
    # clock starts 7.5 minutes into the slot, so none was made less than that after its slot.
    lag = "tc_scheduler_slot_lag_seconds"
    assert value(found, f"{lag}_count", kind="scheduled") == 3
    assert value(found, f"{lag}_bucket", kind="scheduled", le="300.0") == 0
    assert (value(found, f"{lag}_sum", kind="scheduled") or 0) >= (7.5 + 7.5 + 22.5) * 60
    assert value(found, f"{lag}_count", kind="catch-up") == 1
    assert (value(found, f"{lag}_sum", kind="catch-up") or 0) >= 22.5 * 60

    last = labelled(found, "tc_scheduler_last_successful_tick_timestamp_seconds", "project")
    assert set(last) == {("alpha",), ("beta",), ("gamma",), ("delta",), ("epsilon",)}
    assert all(start.timestamp() <= at <= service_now.timestamp() for at in last.values())

    calls = "tc_scheduler_taskcluster_call_duration_seconds_count"
    create = {"service": "queue", "method": "createTask"}
    assert value(found, calls, **create, status="200") == 4
    assert value(found, calls, **create, status="403") == 1
    assert value(found, calls, service="hooks", method="triggerHook", status="200") == 1

    findings = labelled(found, "tc_scheduler_expiry_findings", "project", "severity")
    assert findings == {("epsilon", "expiring"): len(CACHED), ("epsilon", "expired"): 0}
    assert value(found, "tc_scheduler_expiry_scan_duration_seconds_count", project="epsilon") == 1
    events = labelled(found, "tc_scheduler_expiry_events_total", "project", "kind")
    assert events == {("epsilon", "expiring-found"): 1, ("epsilon", "remediation-started"): 1}

    assert (value(outbox, "tc_scheduler_outbox_backlog", destination=SLACK) or 0) >= 1
    oldest = value(outbox, "tc_scheduler_outbox_oldest_pending_age_seconds", destination=SLACK)
    assert oldest is not None
    assert 0 <= oldest <= (service_now - start).total_seconds()

    # Bounded labels: names and states, never a task id.
    task_ids = {task.task_id for task in emulator.tasks()}
    label_values = {v for (_, labels) in found for _, v in labels}
    assert not label_values & task_ids
    assert not [v for v in label_values if SLUG.fullmatch(v)]


def _serving(service: Service) -> str | None:
    lines = [line for line in service.lines if line.get("event") == "serving the API"]
    return str(lines[0]["url"]) if lines else None


# -- /readyz ------------------------------------------------------------------------------------


def test_readyz_fails_while_the_ticker_stops_or_the_ledger_is_away_or_behind(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )

    async def scenario(database: PostgresDatabase) -> None:
        config = make_config(
            emulator,
            tmp_path,
            project("alpha", repository),
            ledger_url=database.url,
            api=ApiSettings(host="127.0.0.1", port=0),
        )
        metrics = Metrics()
        observe = metrics.taskcluster_call
        async with open_service(config, clock=emulator.clock.now, observe=observe) as service:
            monitor = Monitor(service.ledger, service.engine.clock, metrics)
            server = ApiServer(service.operations(), config.api, monitor)
            server.start()
            assert server.url is not None
            try:
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    await _ready_or_not(client, emulator, service, monitor, database)
            finally:
                await server.stop()

    with postgresql_database() as database:
        asyncio.run(scenario(database))


async def _ready_or_not(
    client: httpx.AsyncClient,
    emulator: Emulator,
    service: composition.Service,
    monitor: Monitor,
    database: PostgresDatabase,
) -> None:
    """Ready after a tick; not while no tick comes for two slots, the ledger does not answer
    or its schema is behind; ready again once they are back."""
    engine, notifier = service.engine, service.notifier

    async def readyz(status: int) -> dict[str, Any]:
        answer = await client.get("/readyz")
        assert answer.status_code == status, answer.text
        body: dict[str, Any] = answer.json()
        return body

    await tick_and_report(engine, notifier, T, monitor)
    assert await readyz(200) == {"status": "ok"}

    # The ticker stops: within two slots the service is still ready, then not.
    emulator.clock.set(T + timedelta(minutes=30), frozen=True)
    assert await readyz(200) == {"status": "ok"}
    later = T + timedelta(minutes=31)
    emulator.clock.set(later, frozen=True)
    stale = await readyz(503)
    assert stale["error"] == "not-ready"
    assert stale["checks"]["ledger"] == "ok"
    assert stale["checks"]["migrations"] == "ok"
    assert "31m ago" in stale["checks"]["ticker"]
    assert "ticker" in stale["message"]
    # It ticks again.
    await tick_and_report(engine, notifier, later, monitor)
    assert await readyz(200) == {"status": "ok"}

    # The ledger goes away, and comes back.
    with database.unreachable():
        away = await readyz(503)
        assert away["checks"]["ledger"].startswith("the ledger does not answer")
        assert away["checks"]["ticker"] == "ok"
        scraped = await client.get("/metrics")
        assert scraped.status_code == 200
        assert value(parse(scraped.text), "tc_scheduler_tick_duration_seconds_count") == 2
    assert await readyz(200) == {"status": "ok"}

    # Its schema falls behind this version's.
    database.execute("UPDATE alembic_version SET version_num = :one", one=one_before_head())
    behind = await readyz(503)
    assert behind["checks"]["ledger"] == "ok"
    assert "1 migration" in behind["checks"]["migrations"]
    assert head_revision() in behind["checks"]["migrations"]
    database.execute("UPDATE alembic_version SET version_num = :head", head=head_revision())
    assert await readyz(200) == {"status": "ok"}


# -- Taskcluster's requests, and the ledger's reads ----------------------------------------------


def test_every_request_to_taskcluster_is_told_with_its_method_and_status(
    emulator: Emulator,
) -> None:
    # The first two attempts answered 500: the client library retried them.
    emulator.faults.add("queue.createTask", script=["500", "502"])
    calls: list[Call] = []
    task_id = "fN1Ds3hUQ9SGTjJjXM6Lyw"

    async def main() -> None:
        credentials = dict(emulator.root_credentials)
        async with connect(emulator.root_url, credentials, observe=calls.append) as clients:
            await clients.queue.createTask(task_id, task_definition(emulator.clock.now()))
            with pytest.raises(taskcluster.exceptions.TaskclusterRestFailure):
                await clients.index.findTask("tcs.nothing.here")

        # Nobody answers (hooks_once, which the client library does not retry).
        async with connect("http://127.0.0.1:9", None, observe=calls.append) as clients:
            with pytest.raises(taskcluster.exceptions.TaskclusterConnectionError):
                await clients.hooks_once.ping()

    asyncio.run(main())
    assert [(c.service, c.method, c.status) for c in calls] == [
        ("queue", "createTask", "500"),
        ("queue", "createTask", "502"),
        ("queue", "createTask", "200"),
        ("index", "findTask", "404"),
        ("hooks", "ping", "no-answer"),
    ]
    assert all(call.seconds >= 0 for call in calls)


def test_the_requests_of_a_projects_clients_are_told_once_each(emulator: Emulator) -> None:
    """A project's calls go through clients restricted to its scopes: their requests are told
    as the unrestricted clients' are, each retry once."""
    emulator.faults.add("queue.createTask", script=["503"])
    scopes = ["queue:create-task:*", "queue:scheduler-id:-", "auth:current-scopes"]
    calls: list[Call] = []

    async def main() -> None:
        credentials = dict(emulator.root_credentials)
        async with connect(emulator.root_url, credentials, observe=calls.append) as clients:
            restricted = clients.restricted("project demo", scopes)
            await restricted.queue.createTask(slugid.nice(), task_definition(emulator.clock.now()))
            await restricted.auth.currentScopes()
            await clients.auth.currentScopes()

    asyncio.run(main())
    assert [(c.service, c.method, c.status) for c in calls] == [
        ("queue", "createTask", "503"),
        ("queue", "createTask", "200"),
        ("auth", "currentScopes", "200"),
        ("auth", "currentScopes", "200"),
    ]


def test_the_ledger_tells_its_backlog_and_the_migrations_it_lacks(
    ledger: Ledger, ledger_url: str
) -> None:
    assert ledger.backlog() == []
    assert ledger.pending_migrations() == []
    event = {"kind": "task-failed", "title": "a failure"}
    ledger.report([Notice("one", event, (SLACK, "sentry"))], now=T)
    ledger.report([Notice("two", event, (SLACK,))], now=T + timedelta(minutes=5))
    assert ledger.backlog() == [Backlog("sentry", 1, T), Backlog(SLACK, 2, T)]
    taken = ledger.take_letters(replica="r", now=T, lease=timedelta(minutes=1))
    assert {letter.destination for letter in taken} == {"sentry", SLACK}
    for letter in taken:
        if letter.destination == "sentry" or letter.key == "one":
            assert ledger.letter_sent(letter, now=T)
    # Taken or not, a letter not delivered yet is in the backlog.
    assert ledger.backlog() == [Backlog(SLACK, 1, T + timedelta(minutes=5))]

    versions = create_engine(ledger_url, isolation_level="AUTOCOMMIT")
    try:
        with versions.connect() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :one_before"),
                {"one_before": one_before_head()},
            )
        assert ledger.pending_migrations() == [head_revision()]
        # Migrated further by a newer version: nothing this one could apply.
        with versions.connect() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'f00dcafe'"))
        assert ledger.pending_migrations() == []
    finally:
        versions.dispose()


def test_fires_made_by_hand_through_the_api_are_counted_as_manual(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.clock.set(T, frozen=True)
    repository = Repository(
        tmp_path / "alpha", {".cron.yml": HOURLY, ".taskcluster.yml": OWN_TEMPLATE}
    )
    token = "operator-token-for-metrics"
    config = make_config(
        emulator,
        tmp_path,
        project("alpha", repository),
        api=ApiSettings(
            host="127.0.0.1", port=0, tokens=(ApiToken("ops", "operator", hash_token(token)),)
        ),
    )

    async def scenario() -> Samples:
        metrics = Metrics()
        async with open_service(config, clock=emulator.clock.now) as service:
            monitor = Monitor(service.ledger, service.engine.clock, metrics)
            server = ApiServer(service.operations(monitor), config.api, monitor)
            server.start()
            assert server.url is not None
            try:
                headers = {"Authorization": f"Bearer {token}"}
                async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                    fired = await client.post(
                        "/api/v1/projects/alpha/jobs/hourly/fire", headers=headers, json={}
                    )
                    assert fired.status_code == 200, fired.text
                    return parse((await client.get("/metrics")).text)
            finally:
                await server.stop()

    found = asyncio.run(scenario())
    labels = {"project": "alpha", "job": "hourly", "kind": "manual", "state": "created"}
    assert value(found, "tc_scheduler_fires_total", **labels) == 1
