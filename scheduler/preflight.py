"""Preflight: what real Taskcluster would refuse, found before anything fires.

For every job of a project at its branch head, the task of its next fire is rendered and
checked against the queue's rules (`queue_rules`), and the project's scopes, as the deployment
expands them, against what each call made for it needs. Nothing is created or triggered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from scheduler.actions.spec import decision_index_path
from scheduler.actions.triggering import TriggerError, trigger_action
from scheduler.common.diagnostics import Severity
from scheduler.config.model import Project
from scheduler.cron import CronFile, DecisionTask, Job, TriggerAction, next_fires, slot_of
from scheduler.cron.model import ScheduleError
from scheduler.cron.overlap import REPLACE
from scheduler.engine import Engine
from scheduler.engine.decision_task import TASKCLUSTER_YML
from scheduler.expiry.model import default_namespaces
from scheduler.findings import Checked, Finding
from scheduler.git.source import Snapshot
from scheduler.outcomes import FireError
from scheduler.queue_rules import Requirement, create_task_requirements, task_problems, unmet
from scheduler.render import RenderError
from scheduler.scopes import ASSUME, lasting_form, satisfies, where_to_grant

log = structlog.get_logger("tc_scheduler.preflight")
ANONYMOUS = f"{ASSUME}anonymous"


async def preflight(engine: Engine, projects: Sequence[Project]) -> list[Checked]:
    """Check every job of `projects` at their branch heads, concurrently; never raises. The
    engine keeps each project's findings for the pages."""
    held = await _service_scopes(engine)
    checked = list(await asyncio.gather(*(_Check(engine, p, held).run() for p in projects)))
    now = engine.clock()
    for one in checked:
        engine.checks.preflighted(one, at=now)
    return checked


@dataclass(frozen=True)
class _Held:
    """The service's own scopes, or why they are not known."""

    scopes: list[str] | None
    unknown_because: str | None = None
    # Taskcluster refused the credentials themselves (401): no call made for any project works.
    refused: bool = False


async def _service_scopes(engine: Engine) -> _Held:
    if not engine.config.signs_calls:
        return _Held(None)  # a dry run: the service acts for nobody
    try:
        current = await engine.clients.auth.currentScopes()
    except Exception as error:
        explained = engine.clients.explain(error, "auth.currentScopes")
        return _Held(None, explained.message, refused=explained.status == 401)
    return _Held(list(current.get("scopes") or []))


@dataclass
class _Check:
    """The checks of one project, collecting findings instead of stopping at the first."""

    engine: Engine
    project: Project
    held: _Held
    findings: list[Finding] = field(default_factory=list)
    revision: str | None = None

    async def run(self) -> Checked:
        # Every line logged meanwhile names the project, git's and Taskcluster's too.
        with structlog.contextvars.bound_contextvars(project=self.project.name):
            try:
                await self._project()
            except Exception:
                log.exception("internal error in preflight")
                self._error(None, "internal error in tc-scheduler's preflight; see its log")
        return Checked(self.project.name, self.revision, tuple(self.findings))

    def _add(self, job: str | None, severity: Severity, message: str) -> None:
        self.findings.append(Finding(self.project.name, job, severity, message))

    def _error(self, job: str | None, message: str) -> None:
        self._add(job, Severity.ERROR, message)

    def _warning(self, job: str | None, message: str) -> None:
        self._add(job, Severity.WARNING, message)

    async def _project(self) -> None:
        project = self.project
        client_id = (
            self.engine.config.credentials.client_id if self.engine.config.credentials else ""
        )
        if self.held.refused:
            self._error(
                None,
                "Taskcluster refuses the service's credentials, so every call made for the "
                f"project fails: {self.held.unknown_because}",
            )
        elif self.held.unknown_because is not None:
            self._warning(
                None,
                "whether the service's client holds the project's scopes was not checked: "
                f"{self.held.unknown_because}",
            )
        proxy_note = self.engine.config.proxy_note
        if proxy_note is not None:
            self._warning(None, proxy_note)
        for scope in () if proxy_note else project.authorized_scopes:
            if self.held.scopes is not None and not satisfies(self.held.scopes, scope):
                self._error(
                    None,
                    f"the service's client {client_id} does not hold {scope}, one of the "
                    "project's scopes, so Taskcluster refuses every call made for it (401); "
                    "grant it to the client",
                )
        granted = await self._granted()
        try:
            snapshot, cron = await self.engine.head(project.name)
        except FireError as error:
            self._error(None, str(error))
            return
        self.revision = snapshot.revision
        for problem in cron.errors:
            self._error(problem.job, f"{problem.message} (line {problem.position.line})")
        now = self.engine.clock()
        for job in cron.jobs:
            slot = _next_slot(cron, job, project.name, now)
            if slot is None:
                continue
            if isinstance(job.kind, DecisionTask):
                self._decision_task(snapshot, job, slot, granted)
            else:
                await self._trigger_action(snapshot, job, granted)
        if project.expiry_watched:
            self._expiry(granted)

    async def _granted(self) -> list[str] | None:
        """What a call made for the project may do: its scopes and the anonymous role's, as
        the deployment expands them (None when the deployment would not say); through the
        proxy, the task's own."""
        if self.engine.config.proxy_url is not None:
            return self.held.scopes
        scopes = [*self.project.authorized_scopes, ANONYMOUS]
        try:
            expanded = await self.engine.clients.auth.expandScopes({"scopes": scopes})
        except Exception as error:
            reason = self.engine.clients.explain(error, "auth.expandScopes").message
            self._warning(None, f"the project's scopes were not checked: {reason}")
            return None
        return list(expanded.get("scopes") or [])

    def _decision_task(
        self, snapshot: Snapshot, job: Job, slot: datetime, granted: list[str] | None
    ) -> None:
        try:
            rendered = self.engine.render_for(self.project, snapshot, job, slot, now=slot)
        except RenderError as error:
            self._error(job.name, f"{TASKCLUSTER_YML} at {snapshot.revision[:12]}: {error}")
            return
        task = rendered.definition
        for problem in task_problems(task, max_deadline=self.engine.config.max_task_deadline):
            self._error(job.name, f"the queue would refuse the task: {problem}")
        requirements = create_task_requirements(task)
        requirements += [
            Requirement(("queue:get-task:*",), "reading a task back after a 409"),
            Requirement(("queue:status:*",), "following the task"),
        ]
        if self.project.watches_group_of(job.name):
            requirements.append(Requirement(("queue:list-task-group:*",), "following its group"))
        group = str(task.get("taskGroupId") or rendered.task_id)
        if self.project.overlap_for(job.name) == REPLACE:
            requirements += [
                Requirement(
                    (f"queue:{verb}-task-group:{task.get('schedulerId', '-')}/{group}",),
                    "cancelling the task group of a fire still running (overlap: replace)",
                )
                for verb in ("seal", "cancel")
            ]
        # The revision, the task id and its group differ from one fire to the next.
        changing = (snapshot.revision, rendered.task_id, group)
        self._scopes(job.name, requirements, granted, changing)

    async def _trigger_action(
        self, snapshot: Snapshot, job: Job, granted: list[str] | None
    ) -> None:
        """The fire's own path up to the trigger (index, actions.json, render, hook-action
        guard), as a dry run, then the scopes it and the trigger need."""
        assert isinstance(job.kind, TriggerAction)
        project = self.project
        if project.overlap_for(job.name) == REPLACE:
            self._warning(
                job.name,
                "overlap policy replace does not cancel an action's task group (it is its "
                "push's): while the previous fire's task runs, a fire is skipped, as with skip",
            )
        requirements = [
            Requirement(
                (f"index:find-task:{project.trust_domain}.v2.{project.name}.*",),
                "finding the decision task",
            ),
            Requirement(("queue:get-artifact:public/actions.json",), "reading its actions"),
            Requirement(("queue:get-task:*",), "reading the decision task's scopes"),
            Requirement(("auth:expand-scopes",), "checking the hook-action scope"),
            Requirement(("queue:status:*",), "following the action task"),
        ]
        path = decision_index_path(project.trust_domain, project.name, snapshot.revision)
        try:
            triggered = await trigger_action(
                self.engine.clients_for(project, job.name),
                path,
                job.kind,
                dry_run=True,
                missing_hint=" (the push's decision task may not have run yet)",
            )
        except TriggerError as error:
            if error.upstream or error.unindexed:
                self._warning(job.name, f"the action was not checked: {error}")
            else:
                self._error(job.name, str(error))
        else:
            trigger = triggered.trigger
            hook = f"{trigger.hook_group_id}/{trigger.hook_id}"
            requirements += [
                Requirement(
                    (f"hooks:trigger-hook:{hook}",), f"triggering action {trigger.action_name}"
                ),
                Requirement(
                    (f"hooks:list-last-fires:{hook}",),
                    f"finding the task of a trigger of {trigger.action_name} whose reply was lost",
                ),
            ]
        self._scopes(job.name, requirements, granted)

    def _expiry(self, granted: list[str] | None) -> None:
        watch = self.project.expiry
        namespaces = watch.namespaces or default_namespaces(self.project)
        requirements = [
            Requirement((f"index:{verb}:{namespace}.*",), "the expiry scan")
            for namespace in namespaces
            for verb in ("list-namespaces", "list-tasks")
        ]
        requirements.append(Requirement(("queue:status:*",), "the expiry scan"))
        if watch.task_groups:
            requirements.append(Requirement(("queue:list-task-group:*",), "the expiry scan"))
        self._scopes(None, requirements, granted)

    def _scopes(
        self,
        job: str | None,
        requirements: Sequence[Requirement],
        granted: list[str] | None,
        changing: Sequence[str] = (),
    ) -> None:
        """An error for each requirement `granted` does not meet, naming a scope that lasts
        where the one needed names parts that are `changing` from fire to fire."""
        if granted is None:
            return
        for requirement in unmet(requirements, granted):
            lasting = lasting_form(str(requirement), changing)
            grant = where_to_grant(self.project.authorized_scopes, what=lasting)
            if lasting is not None:
                grant += " (the scope changes with every push)"
            self._error(job, f"missing scope {requirement} (for {requirement.why}); {grant}")


def _next_slot(cron: CronFile, job: Job, project: str, now: datetime) -> datetime | None:
    """The slot of the job's next fire on `project`; None if it never fires there."""
    if not job.runs_on(project):
        return None
    try:
        job.schedules_for(project)
    except ScheduleError:
        return None  # `.cron.yml` checks report it; nothing here to render
    single = CronFile(cron.path, (job,), ())
    upcoming = next_fires(single, project, slot_of(now), 1).fires
    return upcoming[0].slot if upcoming else None
