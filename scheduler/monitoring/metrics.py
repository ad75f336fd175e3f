"""The service's metrics, on a registry of their own, and how each is fed from what the engine,
the expiry scans, Taskcluster's requests and the outbox report. Records in memory; no I/O.

Labels name projects, jobs, kinds, states, reasons, services, methods, statuses and
destinations: values the configuration or the code bounds, never a task id or a slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from scheduler.expiry.model import ExpiryEvent, ExpiryEventKind, TaskHealth
from scheduler.ledger import Backlog, FireKind, FireState
from scheduler.outcomes import CLAIMED_ELSEWHERE, FireResult, SlotResult
from scheduler.taskcluster_calls import Call

MINUTE, HOUR = 60.0, 3600.0
# From a fire made at its slot's first second to a catch-up hours late.
SLOT_LAG_BUCKETS = (1, 5, 15, 30, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE,
                    30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 24 * HOUR)  # fmt: skip
TICK_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, MINUTE)
SCAN_BUCKETS = (1, 5, 15, 30, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 30 * MINUTE, HOUR)
# Which expiry events carry the cached tasks found at each severity.
SEVERITIES = {
    TaskHealth.EXPIRED: ExpiryEventKind.EXPIRED,
    TaskHealth.EXPIRING: ExpiryEventKind.EXPIRING,
}


class Metrics:
    """Every metric the service exposes. Its own registry, not the process's default: several
    services in one process (tests, tools) count apart, and nothing else adds to it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.fires = Counter(
            "tc_scheduler_fires",
            "Fires the ticks and recovery rounds made or skipped, by how they ended "
            f"({CLAIMED_ELSEWHERE}: another process holds the claim, or decided the fire).",
            ["project", "job", "kind", "state"],
            registry=registry,
        )
        self.skipped = Counter(
            "tc_scheduler_skipped_fires",
            "Fires due and not made: a pause, the catch-up policy (policy-none, not-newest, "
            "over-cap, too-late), or the overlap policy (overlap).",
            ["project", "job", "reason"],
            registry=registry,
        )
        self.takeovers = Counter(
            "tc_scheduler_claim_takeovers",
            "Fires claimed from a replica that stopped before finishing them (its lease ran out).",
            ["project"],
            registry=registry,
        )
        self.slot_lag = Histogram(
            "tc_scheduler_slot_lag_seconds",
            "From a slot's start to the task made for it, per kind of fire (retries included).",
            ["kind"],
            buckets=SLOT_LAG_BUCKETS,
            registry=registry,
        )
        self.tick_duration = Histogram(
            "tc_scheduler_tick_duration_seconds",
            "How long each tick took, from reading the repositories to recording every fire.",
            buckets=TICK_BUCKETS,
            registry=registry,
        )
        self.last_tick = Gauge(
            "tc_scheduler_last_successful_tick_timestamp_seconds",
            "When a tick last evaluated the project's slot (its repository read, its .cron.yml "
            "valid), as the service's clock has it, in seconds since the epoch.",
            ["project"],
            registry=registry,
        )
        self.calls = Histogram(
            "tc_scheduler_taskcluster_call_duration_seconds",
            "Requests to Taskcluster (each retry is one), by service, API method and HTTP "
            "status (no-answer: the connection failed).",
            ["service", "method", "status"],
            buckets=CALL_BUCKETS,
            registry=registry,
        )
        self.expiry_scans = Counter(
            "tc_scheduler_expiry_scans",
            "Scheduled expiry scans, by outcome (ok or failed).",
            ["project", "outcome"],
            registry=registry,
        )
        self.expiry_events = Counter(
            "tc_scheduler_expiry_events",
            "What scheduled expiry scans found and did, by the kind of event.",
            ["project", "kind"],
            registry=registry,
        )
        self.expiry_findings = Gauge(
            "tc_scheduler_expiry_findings",
            "Cached tasks at risk the project's last expiry scan found, by severity.",
            ["project", "severity"],
            registry=registry,
        )
        self.scan_duration = Histogram(
            "tc_scheduler_expiry_scan_duration_seconds",
            "How long each scheduled expiry scan (and its remediation step) took.",
            ["project"],
            buckets=SCAN_BUCKETS,
            registry=registry,
        )
        self.backlog = Gauge(
            "tc_scheduler_outbox_backlog",
            "Notifications waiting to be delivered, by destination (read when scraped).",
            ["destination"],
            registry=registry,
        )
        self.oldest = Gauge(
            "tc_scheduler_outbox_oldest_pending_age_seconds",
            "How long the oldest notification waiting for the destination has waited.",
            ["destination"],
            registry=registry,
        )

    def slots_evaluated(self, results: Iterable[SlotResult], *, now: datetime) -> None:
        """A tick's slots, evaluated at `now`: their fires, skips and take-overs."""
        for result in results:
            if result.error is None:
                self.last_tick.labels(result.project).set(now.timestamp())
            self.fires_made([*result.fires, *result.skipped, *result.paused, *result.overlapping])

    def fires_made(self, fires: Iterable[FireResult]) -> None:
        """Fires made, skipped or found claimed, by a tick or a recovery round."""
        for fire in fires:
            # A fire decided before was counted by whoever decided it.
            state = (
                CLAIMED_ELSEWHERE if fire.state is None or fire.decided_before else fire.state.value
            )
            self.fires.labels(fire.project, fire.job, fire.kind.value, state).inc()
            if fire.skip_reason is not None:
                self.skipped.labels(fire.project, fire.job, fire.skip_reason.value).inc()
            if fire.taken_over:
                self.takeovers.labels(fire.project).inc()
            made = fire.state is FireState.CREATED and fire.kind is not FireKind.MANUAL
            if made and fire.at is not None:
                lag = max(0.0, (fire.at - fire.slot).total_seconds())
                self.slot_lag.labels(fire.kind.value).observe(lag)

    def tick_took(self, seconds: float) -> None:
        self.tick_duration.observe(seconds)

    def taskcluster_call(self, call: Call) -> None:
        self.calls.labels(call.service, call.method, call.status).observe(call.seconds)

    def expiry_scanned(
        self, project: str, events: Sequence[ExpiryEvent], *, seconds: float
    ) -> None:
        """A scheduled scan of `project` and its events; a scan that failed before it found
        anything leaves the findings of the last one that worked."""
        failed = bool(events) and all(e.kind is ExpiryEventKind.SCAN_FAILED for e in events)
        self.expiry_scans.labels(project, "failed" if failed else "ok").inc()
        self.scan_duration.labels(project).observe(seconds)
        for event in events:
            self.expiry_events.labels(project, event.kind.value).inc()
        if not failed:
            for severity, kind in SEVERITIES.items():
                found = sum(len(event.at_risk) for event in events if event.kind is kind)
                self.expiry_findings.labels(project, severity.value).set(found)

    def outbox(self, backlog: Sequence[Backlog] | None, *, now: datetime) -> None:
        """The outbox as just read (None: it could not be read, so nothing is said of it)."""
        self.backlog.clear()
        self.oldest.clear()
        for waiting in backlog or ():
            self.backlog.labels(waiting.destination).set(waiting.letters)
            age = (now - waiting.oldest).total_seconds()
            self.oldest.labels(waiting.destination).set(max(0.0, age))

    def exposition(self) -> bytes:
        """Every metric, in Prometheus' text format."""
        return generate_latest(self.registry)
