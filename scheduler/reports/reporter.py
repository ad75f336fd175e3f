"""The reporter: what the watcher, engine or expiry watch saw, as notices (event, deduplication
key, health subject, destinations) the ledger's outbox queues. Pure; the words are in `wording`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scheduler.common.wording import counted, plural
from scheduler.cron.timing import format_slot
from scheduler.expiry.model import ExpiryEvent, ExpiryEventKind
from scheduler.findings import Checked, summary_lines
from scheduler.ledger import FireKind, Health, Notice, Watch
from scheduler.notify.events import Event, EventKind, FailedTask
from scheduler.notify.routing import Router
from scheduler.outcomes import SlotResult
from scheduler.reports.wording import (
    BROKEN_ADVICE,
    CANCELED,
    CRON,
    CRON_FILE,
    DEADLINE_EXCEEDED,
    EXPIRY_ADVICE,
    EXPIRY_KINDS,
    EXPIRY_TITLES,
    FINDINGS_SHOWN,
    PREFLIGHT,
    RECOVERED_TITLES,
    SOURCE,
    TASK_ERRORS,
    TASKCLUSTER_YML,
    TEMPLATE,
)

# What the keys of Sentry Crons check-ins start with: two a scheduled fire, for no person.
CHECK_IN_KEYS = "check-in:"


@dataclass(frozen=True)
class Reporter:
    """Builds notices routed by `router`; `canceled` and `deadline_exceeded` say whether tasks
    resolved as exception for those reasons count as failures."""

    router: Router
    canceled: bool = False
    deadline_exceeded: bool = False

    # -- fires and their tasks --------------------------------------------------------------

    def fire_failed(self, watch: Watch, now: datetime) -> list[Notice]:
        """A fire that made no task (or, naming one, may have): a job failure, or its project's
        broken template."""
        if watch.project_broken:
            return [self._template_broken(watch, now)]
        event = _about(
            watch,
            EventKind.FIRE_FAILED,
            f"{watch.project} {watch.job}: could not start the {_what(watch)}",
            now,
            error=watch.error,
            advice=(
                "Fix what the error names; the next slot fires again, or run it now with "
                f"`tc-scheduler fire {watch.project} {watch.job}`"
                + (f", once task {watch.task_id} is seen not to exist." if watch.task_id else ".")
            ),
        )
        return [self._job_failing(watch, event), *self._check_in(watch, "error")]

    def started(self, watch: Watch, now: datetime) -> list[Notice]:
        """The fire's task exists: its project's template renders, its monitor is in progress."""
        notices = self._check_in(watch, "in_progress")
        if watch.task_kind == "decision":
            stamp = f"fire-{watch.fire_id}"
            notices.append(self._project_healthy(watch.project, TEMPLATE, stamp, now))
        return notices

    def counts_as_failure(self, state: str, reason: str | None) -> bool:
        if state == "failed":
            return True
        if state != "exception":
            return False
        if reason == CANCELED:
            return self.canceled
        if reason == DEADLINE_EXCEEDED:
            return self.deadline_exceeded
        return True

    def task_resolved(
        self, watch: Watch, state: str, reason: str | None, now: datetime
    ) -> list[Notice]:
        """The fire's task resolved (and, when its group is not watched, so did the fire)."""
        if state == "completed":
            return [self._job_healthy(watch, now), *self._check_in(watch, "ok")]
        check_in = self._check_in(watch, "error")
        if not self.counts_as_failure(state, reason):
            return check_in
        why = f"{state} ({reason})" if reason and state == "exception" else state
        event = _about(
            watch,
            EventKind.TASK_FAILED,
            f"{watch.project} {watch.job}: {_what(watch)} {why}",
            now,
            error=TASK_ERRORS.get(reason or state, f"the task resolved {why}"),
            advice=(
                "Open the task and read its log (the link above). Once the cause is fixed, "
                f"run it again with `tc-scheduler fire {watch.project} {watch.job}`."
            ),
        )
        return [self._job_failing(watch, event), *check_in]

    def group_resolved(
        self,
        watch: Watch,
        total: int,
        failed: Sequence[FailedTask],
        now: datetime,
        *,
        blocked: int = 0,
    ) -> list[Notice]:
        """Every task of the decision task's group resolved; `failed` are the failures, and
        `blocked` tasks will never run because a dependency of theirs failed."""
        if not failed:
            return [self._job_healthy(watch, now), *self._check_in(watch, "ok")]
        event = _about(
            watch,
            EventKind.GROUP_FAILED,
            f"{watch.project} {watch.job}: {len(failed)} of {total} tasks failed",
            now,
            failed_tasks=tuple(failed),
            total_tasks=total,
            facts=(("Not run", f"{blocked} tasks wait on a failed dependency"),) if blocked else (),
            advice=(
                "Open the failed tasks' logs (links below); rerun or retrigger them from the "
                "task group once the cause is fixed."
            ),
        )
        return [self._job_failing(watch, event), *self._check_in(watch, "error")]

    def task_gone(self, watch: Watch, now: datetime) -> list[Notice]:
        """The queue no longer knows the task (it expired, or the deployment was reset)."""
        event = _about(
            watch,
            EventKind.TASK_FAILED,
            f"{watch.project} {watch.job}: the {_what(watch)} is gone from the queue",
            now,
            error=f"queue.status does not know task {watch.task_id}",
            advice="Check that the service points at the deployment it created the task on.",
        )
        return [self._job_failing(watch, event), *self._check_in(watch, "error")]

    # -- slot evaluations -------------------------------------------------------------------

    def slot_evaluated(self, result: SlotResult, now: datetime) -> list[Notice]:
        """A project's slot: is its repository readable, its `.cron.yml` valid, slots skipped."""
        stamp = format_slot(result.slot)
        if result.unreachable:
            title = "cannot read the repository, nothing fires"
            return [self._project_broken(result, SOURCE, now, title, result.error)]
        notices = [self._project_healthy(result.project, SOURCE, stamp, now)]
        if result.problems:
            assert result.revision is not None
            title = f"{CRON_FILE} has errors at {result.revision[:12]}"
            error = "\n".join(result.problems)
            notices.append(self._project_broken(result, CRON, now, title, error))
        else:
            notices.append(self._project_healthy(result.project, CRON, stamp, now))
        if result.skipped:
            notices.append(self._skipped(result, stamp, now))
        return notices

    def _project_broken(
        self, result: SlotResult, aspect: str, now: datetime, title: str, error: str | None
    ) -> Notice:
        """What `aspect` of the project (its repository, its `.cron.yml`) keeps from firing at
        the slot; while its incident is open, said again only for another revision."""
        event = Event(
            key=f"project-broken:{result.project}:{aspect}:{format_slot(result.slot)}",
            kind=EventKind.PROJECT_BROKEN,
            project=result.project,
            title=f"{result.project}: {title}",
            at=now,
            slot=result.slot,
            revision=result.revision,
            error=error,
            advice=BROKEN_ADVICE[aspect],
        )
        return self._project_failing(event, aspect, fingerprint=result.revision)

    def _skipped(self, result: SlotResult, stamp: str, now: datetime) -> Notice:
        skipped = sorted(result.skipped, key=lambda s: (s.slot, s.job))
        jobs = sorted({s.job for s in skipped})
        event = Event(
            key=f"slots-skipped:{result.project}:{stamp}",
            kind=EventKind.SLOTS_SKIPPED,
            project=result.project,
            title=(
                f"{result.project}: {len(skipped)} missed {plural(len(skipped), 'slot')} "
                "not fired after a gap"
            ),
            at=now,
            slot=result.slot,
            revision=result.revision,
            error=_first([f"{s.job} at {_readable(s.slot)}: {s.error}" for s in skipped], 20),
            advice=(
                "The catch-up policy chose not to fire these. To run a job now anyway: "
                f"`tc-scheduler fire {result.project} {jobs[0]}`."
            ),
        )
        return self._notice(event)

    # -- preflight --------------------------------------------------------------------------

    def preflight_checked(self, checked: Checked, now: datetime) -> list[Notice]:
        """A project's preflight at a revision: its errors, said once per revision, or that
        nothing is refused any more (warnings, checks that could not run, are logged only)."""
        if checked.revision is None:
            return []  # an unreadable repository is reported by the slots
        errors = [finding for finding in checked.findings if finding.is_error]
        if not errors:
            return [self._project_healthy(checked.project, PREFLIGHT, checked.revision, now)]
        listed = _first(summary_lines(errors), FINDINGS_SHOWN)
        event = Event(
            key=f"{EventKind.PREFLIGHT_FAILED}:{checked.project}:{checked.revision}",
            kind=EventKind.PREFLIGHT_FAILED,
            project=checked.project,
            title=(
                f"{checked.project}: Taskcluster would refuse "
                f"{counted(len(errors), 'thing')} at {checked.revision[:12]}"
            ),
            at=now,
            revision=checked.revision,
            error=listed,
            advice=(
                "Found before the jobs fire: grant the scopes named to the roles named, or fix "
                f"{TASKCLUSTER_YML}, before their next slot. `tc-scheduler preflight --project "
                f"{checked.project}` checks again."
            ),
        )
        return [self._project_failing(event, PREFLIGHT, fingerprint=checked.revision)]

    # -- expiry watch -----------------------------------------------------------------------

    def expiry_scanned(
        self, project: str, found: Sequence[ExpiryEvent], now: datetime
    ) -> list[Notice]:
        """One expiry scan's events; a scan that did not fail ends a run of scan failures."""
        notices = [n for event in found for n in self._expiry(event, now)]
        if not any(_scan_failed(event) for event in found):
            what = "the expiry scan works again"
            stamp = now.isoformat(timespec="seconds")
            notices.append(self._recovery(project, _expiry_subject(project), stamp, now, what))
        return notices

    def _expiry(self, found: ExpiryEvent, now: datetime) -> list[Notice]:
        """An expiry watch event; the same findings, scan after scan, are said once."""
        kind = EXPIRY_KINDS.get(found.kind)
        if kind is None:
            return []  # waiting on a running rebuild or the cooldown: nothing new to say
        if found.remediation_id is not None and kind is not EventKind.REMEDIATION_DRY_RUN:
            key = f"{kind}:{found.project}:{found.remediation_id}"
        elif kind is EventKind.EXPIRY_SCAN_FAILED:
            # One key per scan: the incident keeps a run of failures to one message, and a
            # failure after a recovery is news again.
            key = f"{kind}:{found.project}:{now.isoformat(timespec='seconds')}"
        else:
            key = f"{kind}:{found.project}:{_digest(t.task_id for t in found.at_risk)}"
        event = Event(
            key=key,
            kind=kind,
            project=found.project,
            title=f"{found.project}: {EXPIRY_TITLES[kind]}",
            at=now,
            task_group_id=found.task_group_id,
            error=found.message,
            advice=EXPIRY_ADVICE.get(kind),
        )
        if kind is EventKind.EXPIRY_SCAN_FAILED:
            subject = _expiry_subject(found.project)
            return [self._notice(event, subject=subject, health=Health.FAILING)]
        return [self._notice(event)]

    # -- the operator's test ----------------------------------------------------------------

    def test(self, project: str, *, replica: str, now: datetime) -> Notice:
        """`tc-scheduler notify test`: a message that says it is one, new every time."""
        event = Event(
            key=f"test:{replica}:{now.isoformat()}",
            kind=EventKind.TEST,
            project=project,
            title=f"Test message from tc-scheduler ({replica})",
            at=now,
            advice="Nothing to do: if this arrived where you expected, notifications work.",
        )
        return self._notice(event)

    # -- building blocks --------------------------------------------------------------------

    def _notice(
        self,
        event: Event,
        *,
        subject: str | None = None,
        health: Health = Health.NONE,
        fingerprint: str | None = None,
    ) -> Notice:
        return Notice(
            key=event.key,
            event=event.to_json(),
            destinations=self.router.destinations(event),
            subject=subject,
            health=health,
            fingerprint=fingerprint,
        )

    def _job_failing(self, watch: Watch, event: Event) -> Notice:
        return self._notice(event, subject=_job_subject(watch), health=Health.FAILING)

    def _job_healthy(self, watch: Watch, now: datetime) -> Notice:
        event = _about(
            watch,
            EventKind.RECOVERED,
            f"{watch.project} {watch.job}: recovered, the {_what(watch)} completed",
            now,
        )
        return self._notice(event, subject=_job_subject(watch), health=Health.HEALTHY)

    def _template_broken(self, watch: Watch, now: datetime) -> Notice:
        revision = watch.revision or "unknown"
        event = _about(
            watch,
            EventKind.PROJECT_BROKEN,
            f"{watch.project}: {TASKCLUSTER_YML} is broken at {revision[:12]}",
            now,
            error=watch.error,
            advice=(
                f"No decision task of {watch.project} can be created until {TASKCLUSTER_YML} "
                f"renders; `tc-scheduler render` shows the error before you push."
            ),
        )
        return self._project_failing(event, TEMPLATE, fingerprint=watch.revision)

    def _project_failing(self, event: Event, aspect: str, *, fingerprint: str | None) -> Notice:
        subject = f"project:{event.project}:{aspect}"
        return self._notice(event, subject=subject, health=Health.FAILING, fingerprint=fingerprint)

    def _project_healthy(self, project: str, aspect: str, stamp: str, now: datetime) -> Notice:
        what = RECOVERED_TITLES[aspect]
        return self._recovery(project, f"project:{project}:{aspect}", stamp, now, what)

    def _recovery(self, project: str, subject: str, stamp: str, now: datetime, what: str) -> Notice:
        event = Event(
            key=f"recovered:{subject}:{stamp}",
            kind=EventKind.RECOVERED,
            project=project,
            title=f"{project}: {what}",
            at=now,
        )
        return self._notice(event, subject=subject, health=Health.HEALTHY)

    def _check_in(self, watch: Watch, status: str) -> list[Notice]:
        """A Sentry Crons check-in for the job's monitor (scheduled fires of one-crontab jobs)."""
        destinations = self.router.check_ins()
        if not destinations or watch.crontab is None or watch.kind is FireKind.MANUAL:
            return []
        phase = "start" if status == "in_progress" else "end"
        run = _run(watch)
        return [
            Notice(
                key=f"{CHECK_IN_KEYS}{run}:{phase}",
                event={
                    "project": watch.project,
                    "job": watch.job,
                    "status": status,
                    "schedule": watch.crontab,
                    "fire": watch.fire_id,
                    "run": run,
                },
                destinations=destinations,
            )
        ]


def _about(watch: Watch, kind: EventKind, title: str, now: datetime, **details: Any) -> Event:
    """An event about a watched fire, keyed by the kind and the fire's run (`_run`)."""
    return Event(
        key=f"{kind}:{_run(watch)}",
        kind=kind,
        project=watch.project,
        job=watch.job,
        title=title,
        at=now,
        slot=watch.slot,
        fire_kind=watch.kind.value,
        revision=watch.revision,
        task_id=watch.task_id,
        task_group_id=watch.task_group_id,
        **details,
    )


def _run(watch: Watch) -> str:
    """The watched run of a fire: its id, and for a backfill's rerun of it after a failure (a
    later attempt, watched anew) that attempt too, so that the rerun's notices and check-ins
    are its own, not taken for those of the failure already reported."""
    if watch.asked_at is not None and watch.attempt > 1:
        return f"{watch.fire_id}:{watch.attempt}"
    return str(watch.fire_id)


def _job_subject(watch: Watch) -> str:
    return f"job:{watch.project}/{watch.job}"


def _readable(slot: datetime) -> str:
    return slot.strftime("%Y-%m-%d %H:%M UTC")


def _first(lines: Sequence[str], shown: int) -> str:
    """The first `shown` of `lines`, one a line, and how many more there are."""
    more = f"\n... and {len(lines) - shown} more" if len(lines) > shown else ""
    return "\n".join(lines[:shown]) + more


def _scan_failed(found: ExpiryEvent) -> bool:
    return found.kind is ExpiryEventKind.SCAN_FAILED


def _expiry_subject(project: str) -> str:
    return f"expiry:{project}"


def _what(watch: Watch) -> str:
    return "decision task" if watch.task_kind == "decision" else "action task"


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]
