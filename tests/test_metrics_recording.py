"""The metrics as recorded from what the engine, the expiry scans, Taskcluster's requests and the
outbox report, read back through prometheus-client's own parser; and requests named by route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from yarl import URL

from scheduler.cron.slots import SkipReason
from scheduler.expiry.model import CachedTask, ExpiryEvent, ExpiryEventKind
from scheduler.ids import decision_task_id
from scheduler.ledger import Backlog, FireKind, FireState
from scheduler.monitoring import Metrics
from scheduler.outcomes import FireResult, SlotResult
from scheduler.taskcluster_calls import Call, call_name
from tests.support.scrape import Samples, parse, value

T = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ROOT = "https://tc.example.com"


def samples(metrics: Metrics) -> Samples:
    """Every sample of the exposition, by name and labels, as Prometheus would read them."""
    return parse(metrics.exposition().decode())


def fire(project: str, job: str, slot: datetime, **changes: object) -> FireResult:
    kind = changes.pop("kind", FireKind.SCHEDULED)
    state = changes.pop("state", FireState.CREATED)
    task_id = decision_task_id(ROOT, project, job, slot)
    return FireResult(project, job, slot, kind, state, task_id, **changes)  # type: ignore[arg-type]


def a_tick() -> list[SlotResult]:
    """One tick at T: alpha fires now, catches up 11:45 (created) and skips 11:30; beta takes
    over 11:45 from a replica that stopped and fails now; gamma is paused; delta unreadable."""
    alpha = SlotResult(
        "alpha",
        T,
        "a" * 40,
        fires=(
            fire("alpha", "nightly", T - timedelta(minutes=15), kind=FireKind.CATCH_UP,
                 at=T + timedelta(seconds=30)),
            fire("alpha", "nightly", T, at=T + timedelta(seconds=20)),
        ),
        skipped=(
            fire("alpha", "nightly", T - timedelta(minutes=30), kind=FireKind.CATCH_UP,
                 state=FireState.SKIPPED, skip_reason=SkipReason.NOT_NEWEST),
        ),
    )  # fmt: skip
    beta = SlotResult(
        "beta",
        T,
        "b" * 40,
        fires=(
            fire("beta", "hourly", T - timedelta(minutes=15), taken_over=True,
                 at=T + timedelta(minutes=1)),
            fire("beta", "often", T, state=FireState.FAILED, error="403", at=T),
            fire("beta", "other", T, state=None),
        ),
    )  # fmt: skip
    gamma = SlotResult(
        "gamma",
        T,
        "c" * 40,
        paused=(
            fire("gamma", "nightly", T, state=FireState.SKIPPED, skip_reason=SkipReason.PAUSED),
        ),
    )
    delta = SlotResult("delta", T, None, error="cannot read the repository")
    return [alpha, beta, gamma, delta]


def test_a_tick_is_counted_by_project_job_kind_state_and_reason() -> None:
    metrics = Metrics()
    metrics.slots_evaluated(a_tick(), now=T + timedelta(minutes=2))
    metrics.tick_took(3.5)
    found = samples(metrics)

    fires = "tc_scheduler_fires_total"
    expected = {
        ("alpha", "nightly", "catch-up", "created"): 1,
        ("alpha", "nightly", "catch-up", "skipped"): 1,
        ("alpha", "nightly", "scheduled", "created"): 1,
        ("beta", "hourly", "scheduled", "created"): 1,
        ("beta", "often", "scheduled", "failed"): 1,
        ("beta", "other", "scheduled", "claimed-elsewhere"): 1,
        ("gamma", "nightly", "scheduled", "skipped"): 1,
    }
    counted = {
        tuple(dict(labels)[k] for k in ("project", "job", "kind", "state")): n
        for (name, labels), n in found.items()
        if name == fires
    }
    assert counted == expected
    skipped = "tc_scheduler_skipped_fires_total"
    assert value(found, skipped, project="alpha", job="nightly", reason="not-newest") == 1
    assert value(found, skipped, project="gamma", job="nightly", reason="paused") == 1
    assert value(found, "tc_scheduler_claim_takeovers_total", project="beta") == 1
    assert value(found, "tc_scheduler_claim_takeovers_total", project="alpha") is None

    # Lag: alpha's 12:00 made at 12:00:20, beta's 11:45 at 12:01 (a retry keeps its kind);
    # alpha's catch-up of 11:45 at 12:00:30. Failed fires made no task.
    lag = "tc_scheduler_slot_lag_seconds"
    assert value(found, f"{lag}_count", kind="scheduled") == 2
    assert value(found, f"{lag}_sum", kind="scheduled") == 20 + 16 * 60
    assert value(found, f"{lag}_bucket", kind="scheduled", le="30.0") == 1
    assert value(found, f"{lag}_count", kind="catch-up") == 1
    assert value(found, f"{lag}_sum", kind="catch-up") == 15 * 60 + 30

    assert value(found, "tc_scheduler_tick_duration_seconds_count") == 1
    assert value(found, "tc_scheduler_tick_duration_seconds_sum") == 3.5
    last = "tc_scheduler_last_successful_tick_timestamp_seconds"
    now = (T + timedelta(minutes=2)).timestamp()
    for project in ("alpha", "beta", "gamma"):
        assert value(found, last, project=project) == now
    assert value(found, last, project="delta") is None  # its slot was not evaluated


def test_recovered_fires_count_their_take_overs_and_lag() -> None:
    metrics = Metrics()
    slot = T - timedelta(minutes=30)
    metrics.fires_made([fire("alpha", "nightly", slot, taken_over=True, at=T)])
    found = samples(metrics)
    assert value(found, "tc_scheduler_claim_takeovers_total", project="alpha") == 1
    assert value(found, "tc_scheduler_slot_lag_seconds_sum", kind="scheduled") == 30 * 60


def test_taskcluster_calls_by_service_method_and_status() -> None:
    metrics = Metrics()
    metrics.taskcluster_call(Call("queue", "createTask", "200", 0.2))
    metrics.taskcluster_call(Call("queue", "createTask", "200", 0.3))
    metrics.taskcluster_call(Call("queue", "createTask", "500", 0.1))
    metrics.taskcluster_call(Call("index", "findTask", "no-answer", 30.0))
    found = samples(metrics)
    calls = "tc_scheduler_taskcluster_call_duration_seconds"
    labels = {"service": "queue", "method": "createTask"}
    assert value(found, f"{calls}_count", **labels, status="200") == 2
    assert value(found, f"{calls}_sum", **labels, status="200") == pytest.approx(0.5)
    assert value(found, f"{calls}_count", **labels, status="500") == 1
    assert value(found, f"{calls}_count", service="index", method="findTask", status="no-answer")


def test_expiry_findings_by_severity_survive_a_failed_scan() -> None:
    metrics = Metrics()
    soon = CachedTask("task-a", "tcs.cache.level-1.toolchains.v3.a", "toolchain", T, "task")
    gone = CachedTask("task-b", "tcs.cache.level-1.toolchains.v3.b", "toolchain", T, "task")
    found_events = [
        ExpiryEvent(ExpiryEventKind.EXPIRED, "alpha", "1 expired", (gone,)),
        ExpiryEvent(ExpiryEventKind.EXPIRING, "alpha", "2 expiring", (soon, soon)),
        ExpiryEvent(ExpiryEventKind.STARTED, "alpha", "rebuilding", (gone, soon)),
    ]
    metrics.expiry_scanned("alpha", found_events, seconds=12.0)
    failed = ExpiryEvent(ExpiryEventKind.SCAN_FAILED, "alpha", "the expiry scan failed: 500")
    metrics.expiry_scanned("alpha", [failed], seconds=1.0)
    found = samples(metrics)
    findings = "tc_scheduler_expiry_findings"
    assert value(found, findings, project="alpha", severity="expired") == 1
    assert value(found, findings, project="alpha", severity="expiring") == 2
    assert value(found, "tc_scheduler_expiry_scans_total", project="alpha", outcome="ok") == 1
    assert value(found, "tc_scheduler_expiry_scans_total", project="alpha", outcome="failed") == 1
    events = "tc_scheduler_expiry_events_total"
    assert value(found, events, project="alpha", kind="remediation-started") == 1
    assert value(found, events, project="alpha", kind="expiry-scan-failed") == 1
    duration = "tc_scheduler_expiry_scan_duration_seconds"
    assert value(found, f"{duration}_count", project="alpha") == 2
    assert value(found, f"{duration}_sum", project="alpha") == 13.0

    # A scan that finds nothing at risk any more says so.
    metrics.expiry_scanned("alpha", [], seconds=1.0)
    found = samples(metrics)
    assert value(found, findings, project="alpha", severity="expired") == 0
    assert value(found, findings, project="alpha", severity="expiring") == 0


def test_the_outbox_gauges_are_what_was_last_read() -> None:
    metrics = Metrics()
    metrics.outbox(
        [Backlog("sentry", 1, T), Backlog("slack:#releng", 3, T - timedelta(minutes=5))],
        now=T + timedelta(seconds=10),
    )
    found = samples(metrics)
    assert value(found, "tc_scheduler_outbox_backlog", destination="slack:#releng") == 3
    age = "tc_scheduler_outbox_oldest_pending_age_seconds"
    assert value(found, age, destination="slack:#releng") == 310
    assert value(found, age, destination="sentry") == 10
    # Delivered since: the destination is gone from the gauges, not left at its old backlog.
    metrics.outbox([Backlog("sentry", 1, T)], now=T + timedelta(seconds=10))
    assert (
        value(samples(metrics), "tc_scheduler_outbox_backlog", destination="slack:#releng") is None
    )
    metrics.outbox(None, now=T)
    assert value(samples(metrics), "tc_scheduler_outbox_backlog", destination="sentry") is None


def test_labels_never_hold_a_task_id_or_a_slot() -> None:
    metrics = Metrics()
    ticks = a_tick()
    metrics.slots_evaluated(ticks, now=T)
    metrics.taskcluster_call(
        Call(*call_name("PUT", URL(f"{ROOT}/api/queue/v1/task/abc")), "200", 1)
    )
    task_ids = {f.task_id for r in ticks for f in (*r.fires, *r.skipped, *r.paused)} - {None}
    assert task_ids
    values = {v for (_, labels) in samples(metrics) for _, v in labels}
    assert values
    assert not {v for v in values if any(task_id in v for task_id in task_ids)}
    assert not {v for v in values if v.startswith("2026-") or "abc" in v}


def test_two_services_in_one_process_count_apart() -> None:
    one, two = Metrics(), Metrics()
    one.tick_took(1.0)
    assert value(samples(one), "tc_scheduler_tick_duration_seconds_count") == 1
    assert value(samples(two), "tc_scheduler_tick_duration_seconds_count") == 0


@pytest.mark.parametrize(
    ("method", "path", "named"),
    [
        ("PUT", "/api/queue/v1/task/fN1Ds3hUQ9SGTjJjXM6Lyw", ("queue", "createTask")),
        ("GET", "/api/queue/v1/task/fN1Ds3hUQ9SGTjJjXM6Lyw", ("queue", "task")),
        ("GET", "/api/queue/v1/task/fN1Ds3hUQ9SGTjJjXM6Lyw/status", ("queue", "status")),
        (
            "GET",
            "/api/queue/v1/task/fN1Ds3hUQ9SGTjJjXM6Lyw/artifacts/public%2Factions.json",
            ("queue", "getLatestArtifact"),
        ),
        ("GET", "/api/index/v1/task/tcs.v2.alpha.latest.taskgraph.decision", ("index", "findTask")),
        ("POST", "/api/hooks/v1/hooks/project-tcs/in-tree%2Fa/trigger", ("hooks", "triggerHook")),
        ("POST", "/api/auth/v1/scopes/expand", ("auth", "expandScopes")),
        ("DELETE", "/api/queue/v1/task/fN1Ds3hUQ9SGTjJjXM6Lyw", ("queue", "unknown")),
        ("GET", "/api/nowhere/v1/thing", ("other", "unknown")),
        ("GET", "/bucket/fN1Ds3hUQ9SGTjJjXM6Lyw/public/x.json", ("artifacts", "get")),
    ],
)
def test_requests_are_named_by_the_client_librarys_routes(
    method: str, path: str, named: tuple[str, str]
) -> None:
    assert call_name(method, URL(f"{ROOT}{path}?limit=10")) == named
