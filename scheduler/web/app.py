"""The API's routes: read projects, their jobs, fires and the audit log; fire a job, trigger an
action, fire a hook, start an expiry remediation, pause and resume.

Every error is JSON `{error, message}` with a fitting status, never a stack trace; every act is
written to the audit log under the token's name. Every body, answers and errors alike, is one
`MaskedJSONResponse`, which masks secrets as the log does.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from scheduler import __version__, acts
from scheduler.actions.triggering import TriggerError
from scheduler.common.redaction import scrub_data
from scheduler.engine import Engine
from scheduler.engine.overview import JobOverview
from scheduler.hooks.definitions import HookKey
from scheduler.hooks.payloads import UncheckablePayloadError
from scheduler.hooks.service import PayloadRejectedError
from scheduler.ledger import FireState, Pause
from scheduler.outcomes import (
    FireError,
    FireTooSoonError,
    RepositoryUnreachableError,
    UnknownTargetError,
)
from scheduler.taskcluster import TaskclusterError
from scheduler.web.auth import (
    ForbiddenError,
    Principal,
    UnauthorizedError,
    authenticate,
    require,
)

if TYPE_CHECKING:  # the service serves this API
    from scheduler.service import Notifier

Limit = Annotated[int, Query(ge=1, le=1000)]
# Ids are the ledger's 64-bit keys.
FireId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


class MaskedJSONResponse(JSONResponse):
    """The API's one way to answer: JSON with secrets masked before it is serialized, as the
    log masks them (the routes' models and every error handler's body pass here)."""

    def render(self, content: Any) -> bytes:
        return super().render(scrub_data(content))


class ApiError(Exception):
    """A failure this module names itself; the acts' own errors have handlers below."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


class ErrorBody(BaseModel):
    error: str = Field(description="A short code: unauthorized, forbidden, not-found, ...")
    message: str = Field(description="What went wrong and what to do about it.")


class PauseBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    until: datetime | None = Field(default=None, description="Lift the pause at this time.")


class FireBody(BaseModel):
    input: dict[str, Any] | None = Field(default=None, description="The cron input.")
    dry_run: bool = Field(default=False, description="Render and record; create nothing.")


class ActionBody(BaseModel):
    input: dict[str, Any] | None = Field(default=None, description="The action's input.")
    revision: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$",
        description="Use the decision task of this full revision (default: the latest).",
    )
    dry_run: bool = Field(default=False, description="Render the hook payload; trigger nothing.")


class HookFireBody(BaseModel):
    payload: dict[str, Any] = Field(
        default_factory=dict, description="Checked against the hook's triggerSchema first."
    )
    dry_run: bool = Field(default=False, description="Check the payload; trigger nothing.")


class RemediateBody(BaseModel):
    dry_run: bool = Field(default=False, description="Say what would be rebuilt; trigger nothing.")


class FireOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project: str
    job: str
    slot: datetime
    kind: str
    state: str
    task_id: str | None
    revision: str | None
    error: str | None
    finished_at: datetime | None


class FireDetail(FireOut):
    details: dict[str, Any] | None = Field(description="The rendered task, or hook payload.")


class FiredOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    job: str
    state: str | None
    task_id: str | None
    error: str | None
    details: dict[str, Any] | None = Field(description="The rendered task, or hook payload.")


class ActionOut(BaseModel):
    action: str
    hook_group_id: str
    hook_id: str
    decision_task_id: str
    payload: dict[str, Any]
    task_id: str | None = Field(description="The action task; null in a dry run.")
    dry_run: bool


class HookFiredOut(BaseModel):
    hook_group_id: str
    hook_id: str
    task_id: str | None = Field(description="Null in a dry run, or if the hook made no task.")
    dry_run: bool


class ExpiryEventOut(BaseModel):
    kind: str
    message: str
    at_risk: int = Field(description="How many cached tasks are expiring or expired.")
    task_group_id: str | None = Field(description="The rebuild's task group, once started.")


class RemediationOut(BaseModel):
    project: str
    events: list[ExpiryEventOut] = Field(description="Empty: nothing at risk, nothing running.")


class PauseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    job: str | None
    reason: str
    until: datetime | None
    paused_by: str
    paused_at: datetime


class ResumedOut(BaseModel):
    resumed: bool


class ProjectOut(BaseModel):
    name: str
    repository: str
    branch: str
    paused: list[PauseOut]


class JobOut(BaseModel):
    name: str
    kind: str = Field(description="decision-task or trigger-action.")
    target: str = Field(description="The target-tasks-method, or the action's name.")
    schedule: str = Field(description="When it fires on this project, in words (UTC).")
    crontab: str | None = Field(description="The same as a crontab, when one can say it.")
    runs_on_project: bool = Field(description="False: run-on-projects leaves this project out.")
    problem: str | None = Field(description="Why the job has no schedule on this project.")
    next_fires: list[datetime]
    last_fire: FireOut | None
    paused: PauseOut | None = Field(description="The pause holding it (its own or the project's).")


class ProjectJobsOut(BaseModel):
    project: str
    revision: str = Field(description="The branch head whose .cron.yml this is.")
    paused: PauseOut | None = Field(description="A pause of the whole project.")
    jobs: list[JobOut]
    problems: list[str] = Field(description="The .cron.yml errors that left jobs out.")


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    input: dict[str, Any] | None
    ok: bool
    result: str


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 422, 429, 502)
}
# Taskcluster's own patterns for hook names.
HookGroupId = Annotated[str, PathParameter(pattern=r"^[a-zA-Z0-9-_]{1,1000}$")]
HookId = Annotated[str, PathParameter(pattern=r"^[a-zA-Z0-9-_/]{1,1000}$")]
Upcoming = Annotated[int, Query(ge=0, le=100, description="How many next fires per job.")]


def create_app(engine: Engine, notifier: Notifier | None = None) -> FastAPI:
    """The API of a service whose engine (and ledger) is `engine`; what it starts by hand is
    reported through `notifier` (None: not reported, as in a bare engine)."""
    app = FastAPI(
        title="tc-scheduler",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        default_response_class=MaskedJSONResponse,
    )
    app.state.engine = engine
    app.state.notifier = notifier
    _handle_errors(app)
    app.include_router(health)
    app.include_router(api)
    return app


def _handle_errors(app: FastAPI) -> None:
    """Every failure as `{error, message}`; a bug as a 500 that shows nothing of it."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.error, error.message)

    @app.exception_handler(UnauthorizedError)
    async def unauthorized(request: Request, error: UnauthorizedError) -> JSONResponse:
        response = _error(401, "unauthorized", str(error))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(ForbiddenError)
    async def forbidden(request: Request, error: ForbiddenError) -> JSONResponse:
        return _error(403, "forbidden", str(error))

    @app.exception_handler(FireError)
    async def cannot_fire(request: Request, error: FireError) -> JSONResponse:
        if isinstance(error, FireTooSoonError):
            response = _error(429, "too-soon", str(error))
            response.headers["Retry-After"] = str(int(error.retry_after.total_seconds()) + 1)
            return response
        if isinstance(error, UnknownTargetError):
            return _error(404, "not-found", str(error))
        if isinstance(error, RepositoryUnreachableError):
            return _error(502, "repository-unreachable", str(error))
        return _error(400, "cannot-fire", str(error))

    @app.exception_handler(TriggerError)
    async def cannot_trigger(request: Request, error: TriggerError) -> JSONResponse:
        if error.upstream:
            return _error(502, "taskcluster-error", str(error))
        return _error(400, "cannot-trigger", str(error))

    @app.exception_handler(PayloadRejectedError)
    async def payload_rejected(request: Request, error: PayloadRejectedError) -> JSONResponse:
        problems = "; ".join(map(str, error.problems))
        return _error(422, "payload-rejected", f"{error}: {problems}")

    @app.exception_handler(UncheckablePayloadError)
    async def uncheckable(request: Request, error: UncheckablePayloadError) -> JSONResponse:
        return _error(422, "uncheckable-payload", str(error))

    @app.exception_handler(TaskclusterError)
    async def taskcluster_failed(request: Request, error: TaskclusterError) -> JSONResponse:
        if error.status == 404:
            return _error(404, "not-found", error.message)
        return _error(502, "taskcluster-error", error.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return _error(422, "invalid-request", problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "error")
        return _error(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        return _error(500, "internal", "internal error in tc-scheduler; see its log")


# -- who is asking ------------------------------------------------------------------------------


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


def _principal(
    engine: EngineDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    return authenticate(engine.config.api, authorization)


def _reader(engine: EngineDep, who: Annotated[Principal, Depends(_principal)]) -> Principal:
    require(engine.config.api, who, acting=False)
    return who


def _operator(engine: EngineDep, who: Annotated[Principal, Depends(_principal)]) -> Principal:
    require(engine.config.api, who, acting=True)
    return who


Reader = Annotated[Principal, Depends(_reader)]
Operator = Annotated[Principal, Depends(_operator)]

# -- routes -------------------------------------------------------------------------------------

health = APIRouter(include_in_schema=False, default_response_class=MaskedJSONResponse)
api = APIRouter(prefix="/api/v1", responses=ERRORS, default_response_class=MaskedJSONResponse)


@health.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz")
async def readyz(engine: EngineDep) -> JSONResponse:
    try:
        await asyncio.to_thread(engine.ledger.audit_log, limit=1)
    except Exception:
        return _error(503, "not-ready", "the ledger does not answer")
    return MaskedJSONResponse({"status": "ok"})


@api.get("/projects")
async def projects(engine: EngineDep, who: Reader) -> list[ProjectOut]:
    pauses = await asyncio.to_thread(engine.ledger.pauses, at=engine.clock())
    return [
        ProjectOut(
            name=p.name,
            repository=p.repository,
            branch=p.branch,
            paused=[PauseOut.model_validate(x) for x in pauses if x.project == p.name],
        )
        for p in engine.config.projects
    ]


@api.get("/fires")
async def fires(
    engine: EngineDep,
    who: Reader,
    project: str | None = None,
    job: str | None = None,
    state: FireState | None = None,
    since: Annotated[datetime | None, Query(description="Slots at or after this.")] = None,
    until: Annotated[datetime | None, Query(description="Slots before this.")] = None,
    limit: Limit = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[FireOut]:
    """Fires, newest slot first; page with `offset` and `limit`."""
    found = await asyncio.to_thread(
        engine.ledger.fires,
        project=project,
        job=job,
        state=state,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return [FireOut.model_validate(f) for f in found]


@api.get("/fires/{fire_id}")
async def fire(engine: EngineDep, who: Reader, fire_id: FireId) -> FireDetail:
    found = await asyncio.to_thread(engine.ledger.fire_by_id, fire_id)
    if found is None:
        raise ApiError(404, "not-found", f"no fire {fire_id}")
    return FireDetail.model_validate(found)


@api.get("/audit")
async def audit(
    engine: EngineDep, who: Reader, since: datetime | None = None, limit: Limit = 100
) -> list[AuditOut]:
    entries = await asyncio.to_thread(engine.ledger.audit_log, since=since, limit=limit)
    return [AuditOut.model_validate(e) for e in entries]


@api.get("/projects/{project}/jobs")
async def jobs(
    engine: EngineDep, who: Reader, project: str, upcoming: Upcoming = 3
) -> ProjectJobsOut:
    """The project's jobs as its `.cron.yml` has them now: when each fires here, what it did
    last, and what pause holds it."""
    overview = await engine.overview(project, upcoming=upcoming)
    return ProjectJobsOut(
        project=overview.project.name,
        revision=overview.revision,
        paused=_pause_out(overview.pause),
        jobs=[_job_out(job) for job in overview.jobs],
        problems=list(overview.problems),
    )


@api.post("/projects/{project}/jobs/{job}/fire")
async def fire_now(
    engine: EngineDep, who: Operator, project: str, job: str, body: FireBody
) -> FiredOut:
    """Fire a job now, whatever its schedule says: the same path as `tc-scheduler fire`."""
    result = await acts.fire_job(
        engine, _actor(who), project, job, body.input, dry_run=body.dry_run
    )
    return FiredOut.model_validate(result)


@api.post("/projects/{project}/actions/{action}")
async def run_action(
    engine: EngineDep, who: Operator, project: str, action: str, body: ActionBody
) -> ActionOut:
    """Trigger an action of the project's decision task by name, as Treeherder's menu does:
    the same path as `tc-scheduler action`. Every call triggers it once more."""
    triggered = await acts.run_action(
        engine,
        _actor(who),
        project,
        action,
        body.input,
        revision=body.revision,
        dry_run=body.dry_run,
    )
    trigger = triggered.trigger
    return ActionOut(
        action=trigger.action_name,
        hook_group_id=trigger.hook_group_id,
        hook_id=trigger.hook_id,
        decision_task_id=triggered.decision_task_id,
        payload=trigger.payload,
        task_id=triggered.task_id,
        dry_run=triggered.dry_run,
    )


@api.post("/hooks/{hook_group_id}/{hook_id:path}/fire")
async def fire_hook(
    engine: EngineDep,
    who: Operator,
    hook_group_id: HookGroupId,
    hook_id: HookId,
    body: HookFireBody,
) -> HookFiredOut:
    """Fire any hook of the deployment, managed here or not; the payload is checked against
    the hook's triggerSchema before anything is triggered."""
    key = HookKey(hook_group_id, hook_id)
    fired = await acts.fire_any_hook(engine, _actor(who), key, body.payload, dry_run=body.dry_run)
    return HookFiredOut(
        hook_group_id=hook_group_id, hook_id=hook_id, task_id=fired.task_id, dry_run=fired.dry_run
    )


@api.post("/projects/{project}/expiry/remediate")
async def remediate(
    request: Request, engine: EngineDep, who: Operator, project: str, body: RemediateBody
) -> RemediationOut:
    """Scan the project's cached tasks now and rebuild what is expiring (or follow the rebuild
    that runs); answers when the scan is done."""
    notifier: Notifier | None = request.app.state.notifier
    events = await acts.remediate(engine, notifier, _actor(who), project, dry_run=body.dry_run)
    return RemediationOut(
        project=project,
        events=[
            ExpiryEventOut(
                kind=event.kind,
                message=event.message,
                at_risk=len(event.at_risk),
                task_group_id=event.task_group_id,
            )
            for event in events
        ],
    )


@api.post("/projects/{project}/pause")
async def pause_project(
    engine: EngineDep, who: Operator, project: str, body: PauseBody
) -> PauseOut:
    """Hold every job of the project from firing until resumed (or `until`)."""
    return await _pause_target(engine, who, project, None, body)


@api.delete("/projects/{project}/pause")
async def resume_project(engine: EngineDep, who: Operator, project: str) -> ResumedOut:
    return await _resume_target(engine, who, project, None)


@api.post("/projects/{project}/jobs/{job}/pause")
async def pause_job(
    engine: EngineDep, who: Operator, project: str, job: str, body: PauseBody
) -> PauseOut:
    """Hold the job from firing until resumed (or `until`)."""
    return await _pause_target(engine, who, project, job, body)


@api.delete("/projects/{project}/jobs/{job}/pause")
async def resume_job(engine: EngineDep, who: Operator, project: str, job: str) -> ResumedOut:
    return await _resume_target(engine, who, project, job)


async def _pause_target(
    engine: Engine, who: Principal, project: str, job: str | None, body: PauseBody
) -> PauseOut:
    engine.project(project)
    try:
        paused = await asyncio.to_thread(
            engine.ledger.pause,
            project,
            job,
            reason=body.reason,
            until=body.until,
            actor=_actor(who),
            now=engine.clock(),
        )
    except ValueError as error:
        raise ApiError(400, "invalid-pause", str(error)) from None
    return PauseOut.model_validate(paused)


async def _resume_target(
    engine: Engine, who: Principal, project: str, job: str | None
) -> ResumedOut:
    engine.project(project)
    resumed = await asyncio.to_thread(
        engine.ledger.resume, project, job, actor=_actor(who), now=engine.clock()
    )
    return ResumedOut(resumed=resumed is not None)


def _error(status: int, error: str, message: str) -> JSONResponse:
    return MaskedJSONResponse({"error": error, "message": message}, status_code=status)


def _actor(who: Principal) -> str:
    """Who acts, in the audit log: the token's name, never the token."""
    return f"{who.name} (api)"


def _pause_out(pause: Pause | None) -> PauseOut | None:
    return None if pause is None else PauseOut.model_validate(pause)


def _job_out(job: JobOverview) -> JobOut:
    return JobOut(
        name=job.job.name,
        kind=job.job.kind.type,
        target=job.job.kind.target,
        schedule=job.schedule,
        crontab=job.crontab,
        runs_on_project=job.runs_on_project,
        problem=job.problem,
        next_fires=list(job.next_fires),
        last_fire=None if job.last_fire is None else FireOut.model_validate(job.last_fire),
        paused=_pause_out(job.pause),
    )
