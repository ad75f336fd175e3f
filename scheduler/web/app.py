"""The API's routes: read projects, their jobs, fires and the audit log; fire a job, backfill a
range, trigger an action, fire a hook, start an expiry remediation, pause and resume. Each
parses, calls one operation and answers with its model. Beside them, the service's health and
`/metrics`, as the monitor the composition root hands in says.

Every error is JSON `{error, message}` with the status its category maps to, never a stack
trace. Every body, answers and errors alike, is one `MaskedJSONResponse`, which masks secrets as
the log does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from scheduler import __version__
from scheduler.common.redaction import scrub_data
from scheduler.config.model import ApiSettings
from scheduler.errors import Category, SchedulerError
from scheduler.hooks.definitions import HookKey
from scheduler.operations.acts import Operations
from scheduler.operations.models import (
    ActionOut,
    AuditOut,
    BackfillOut,
    FireDetail,
    FiredOut,
    FireOut,
    FireQuery,
    HookFiredOut,
    PauseOut,
    ProjectJobsOut,
    ProjectOut,
    RemediationOut,
    ResumedOut,
)
from scheduler.web.acting import acts
from scheduler.web.auth import Principal, authenticate, require
from scheduler.web.bodies import (
    ActionBody,
    BackfillBody,
    FireBody,
    HookFireBody,
    PauseBody,
    RemediateBody,
)
from scheduler.web.draining import NOT_READY, Draining, ShuttingDownError
from scheduler.web.hook_pages import hook_pages
from scheduler.web.limits import TOO_LARGE, BodyLimit
from scheduler.web.pages import STATIC, pages
from scheduler.web.sessions import SignInLimiter
from scheduler.web.statuses import STATUS

Limit = Annotated[int, Query(ge=1, le=1000)]
# Ids are the ledger's 64-bit keys.
FireId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


class Monitoring(Protocol):
    """What the running service says of itself: whether it is ready, and its metrics."""

    async def readiness(self) -> Mapping[str, str | None]:
        """Each check, and what is wrong with it (None: nothing)."""
        ...

    async def exposition(self) -> tuple[bytes, str]:
        """The metrics in Prometheus' text format, and its content type."""
        ...


class NotReadyError(SchedulerError, category=Category.UNAVAILABLE, code="not-ready"):
    """A check of readiness failed; `checks` says how each went."""

    def __init__(self, checks: Mapping[str, str | None]) -> None:
        failed = [f"{name}: {problem}" for name, problem in checks.items() if problem]
        super().__init__(f"not ready: {'; '.join(failed)}")
        self.checks = {name: problem or "ok" for name, problem in checks.items()}

    def context(self) -> dict[str, Any]:
        return {"checks": self.checks}


class MaskedJSONResponse(JSONResponse):
    """The API's one way to answer: JSON with secrets masked before it is serialized, as the
    log masks them (the routes' models and every error handler's body pass here)."""

    def render(self, content: Any) -> bytes:
        return super().render(scrub_data(content))


class ErrorBody(BaseModel):
    error: str = Field(description="A short code: unauthorized, forbidden, not-found, ...")
    message: str = Field(description="What went wrong and what to do about it.")


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 413, 422, 429, 502, 503)
}
# Taskcluster's own patterns for hook names.
HookGroupId = Annotated[str, PathParameter(pattern=r"^[a-zA-Z0-9-_]{1,1000}$")]
HookId = Annotated[str, PathParameter(pattern=r"^[a-zA-Z0-9-_/]{1,1000}$")]
Upcoming = Annotated[int, Query(ge=0, le=100, description="How many next fires per job.")]


def create_app(
    operations: Operations,
    settings: ApiSettings,
    monitor: Monitoring,
    draining: Draining | None = None,
) -> FastAPI:
    """The API of a service whose acts and reads are `operations`, served as `settings` say,
    whose health and metrics `monitor` tells; `draining` says when it stops taking acts."""
    app = FastAPI(
        title="tc-scheduler",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        default_response_class=MaskedJSONResponse,
    )
    app.state.operations = operations
    app.state.settings = settings
    app.state.monitor = monitor
    app.state.draining = draining or Draining()
    app.state.sign_ins = SignInLimiter()
    _handle_errors(app)
    app.add_middleware(BodyLimit, too_large=lambda: _error(413, "too-large", TOO_LARGE))
    app.include_router(health)
    app.include_router(api)
    app.include_router(pages)
    app.include_router(hook_pages)
    app.include_router(acts)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _handle_errors(app: FastAPI) -> None:
    """Every failure as `{error, message}`; a bug as a 500 that shows nothing of it."""

    @app.exception_handler(SchedulerError)
    async def failed(request: Request, error: SchedulerError) -> JSONResponse:
        response = _error(
            STATUS[error.category], error.error_code, error.describe(), **error.context()
        )
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(int(error.retry_after.total_seconds()) + 1)
        if error.category is Category.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        return _error(422, "invalid-request", problems)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        codes = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}
        code = codes.get(error.status_code, "error")
        return _error(error.status_code, code, str(error.detail))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        return _error(500, "internal", "internal error in tc-scheduler; see its log")


# -- who is asking ------------------------------------------------------------------------------


def _operations(request: Request) -> Operations:
    operations: Operations = request.app.state.operations
    return operations


def _settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def _monitor(request: Request) -> Monitoring:
    monitor: Monitoring = request.app.state.monitor
    return monitor


def _draining(request: Request) -> Draining:
    draining: Draining = request.app.state.draining
    return draining


Ops = Annotated[Operations, Depends(_operations)]
Settings = Annotated[ApiSettings, Depends(_settings)]
Monitor = Annotated[Monitoring, Depends(_monitor)]
Drain = Annotated[Draining, Depends(_draining)]


def _principal(
    settings: Settings, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    return authenticate(settings, authorization)


def _reader(settings: Settings, who: Annotated[Principal, Depends(_principal)]) -> Principal:
    require(settings, who, acting=False)
    return who


async def _operator(
    settings: Settings, draining: Drain, who: Annotated[Principal, Depends(_principal)]
) -> AsyncIterator[Principal]:
    """Who acts; the act runs counted until it is answered (refused once the service stops)."""
    require(settings, who, acting=True)
    async with draining.act():
        yield who


ApiReader = Annotated[Principal, Depends(_reader)]
ApiOperator = Annotated[Principal, Depends(_operator)]

# -- routes -------------------------------------------------------------------------------------

health = APIRouter(include_in_schema=False, default_response_class=MaskedJSONResponse)
api = APIRouter(prefix="/api/v1", responses=ERRORS, default_response_class=MaskedJSONResponse)


@health.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz")
async def readyz(monitor: Monitor, draining: Drain) -> dict[str, str]:
    """Ready when the ledger answers, its schema is migrated and the ticker ticks; a 503 names
    what is not (`checks`), or says that the service is stopping (`shutting-down`)."""
    if draining.stopping:
        raise ShuttingDownError(NOT_READY)
    checks = await monitor.readiness()
    if any(checks.values()):
        raise NotReadyError(checks)
    return {"status": "ok"}


@health.get("/metrics")
async def metrics(monitor: Monitor) -> Response:
    """The service's metrics, in Prometheus' text format (no secrets, no task ids)."""
    body, content_type = await monitor.exposition()
    return Response(body, media_type=content_type)


@api.get("/projects")
async def projects(ops: Ops, who: ApiReader) -> list[ProjectOut]:
    return await ops.ledger.project_list()


@api.get("/fires")
async def fires(ops: Ops, who: ApiReader, query: Annotated[FireQuery, Query()]) -> list[FireOut]:
    """Fires, newest slot first; page with `offset` and `limit`."""
    return await ops.ledger.history(query)


@api.get("/fires/{fire_id}")
async def fire(ops: Ops, who: ApiReader, fire_id: FireId) -> FireDetail:
    return await ops.ledger.fire(fire_id)


@api.get("/audit")
async def audit(
    ops: Ops, who: ApiReader, since: datetime | None = None, limit: Limit = 100
) -> list[AuditOut]:
    return await ops.ledger.audit(since=since, limit=limit)


@api.get("/projects/{project}/jobs")
async def jobs(ops: Ops, who: ApiReader, project: str, upcoming: Upcoming = 3) -> ProjectJobsOut:
    """The project's jobs as its `.cron.yml` has them now: when each fires here, what it did
    last, and what pause holds it (the same as `tc-scheduler jobs --json`)."""
    return await ops.jobs(project, upcoming=upcoming)


@api.post("/projects/{project}/jobs/{job:path}/fire")
async def fire_now(ops: Ops, who: ApiOperator, project: str, job: str, body: FireBody) -> FiredOut:
    """Fire a job now, whatever its schedule says: the same path as `tc-scheduler fire`. A
    fire Taskcluster refuses is a 502 (it is in the fires, with its error)."""
    return await ops.fire_job(_actor(who), project, job, body.input, dry_run=body.dry_run)


@api.post("/projects/{project}/backfill")
async def backfill(ops: Ops, who: ApiOperator, project: str, body: BackfillBody) -> BackfillOut:
    """Fire every past slot of [start, until) that the jobs' schedules name, as the scheduler
    would have: the same path as `tc-scheduler backfill`. A slot already fired is
    `already-fired`, never fired twice; one that failed is fired again with `rerun_failed`;
    answers when every fire has ended or is left retrying."""
    return await ops.backfill(
        _actor(who),
        project,
        body.jobs,
        start=body.start,
        until=body.until,
        max_fires=body.max_fires,
        dry_run=body.dry_run,
        rerun_failed=body.rerun_failed,
    )


@api.post("/projects/{project}/actions/{action}")
async def run_action(
    ops: Ops, who: ApiOperator, project: str, action: str, body: ActionBody
) -> ActionOut:
    """Trigger an action of the project's decision task by name, as Treeherder's menu does:
    the same path as `tc-scheduler action`. Every call triggers it once more."""
    return await ops.run_action(
        _actor(who), project, action, body.input, revision=body.revision, dry_run=body.dry_run
    )


@api.post("/hooks/{hook_group_id}/{hook_id:path}/fire")
async def fire_hook(
    ops: Ops, who: ApiOperator, hook_group_id: HookGroupId, hook_id: HookId, body: HookFireBody
) -> HookFiredOut:
    """Fire any hook of the deployment, managed here or not; the payload is checked against
    the hook's triggerSchema before anything is triggered."""
    key = HookKey(hook_group_id, hook_id)
    return await ops.fire_hook(_actor(who), key, body.payload, dry_run=body.dry_run)


@api.post("/projects/{project}/expiry/remediate")
async def remediate(
    ops: Ops, who: ApiOperator, project: str, body: RemediateBody
) -> RemediationOut:
    """Scan the project's cached tasks now and rebuild what is expiring (or follow the rebuild
    that runs); answers when the scan is done."""
    return await ops.remediate(_actor(who), project, dry_run=body.dry_run)


@api.post("/projects/{project}/pause")
async def pause_project(ops: Ops, who: ApiOperator, project: str, body: PauseBody) -> PauseOut:
    """Hold every job of the project from firing until resumed (or `until`)."""
    return await ops.ledger.pause(_actor(who), project, None, reason=body.reason, until=body.until)


@api.delete("/projects/{project}/pause")
async def resume_project(ops: Ops, who: ApiOperator, project: str) -> ResumedOut:
    return await ops.ledger.resume(_actor(who), project, None)


@api.post("/projects/{project}/jobs/{job:path}/pause")
async def pause_job(
    ops: Ops, who: ApiOperator, project: str, job: str, body: PauseBody
) -> PauseOut:
    """Hold the job from firing until resumed (or `until`)."""
    return await ops.ledger.pause(_actor(who), project, job, reason=body.reason, until=body.until)


@api.delete("/projects/{project}/jobs/{job:path}/pause")
async def resume_job(ops: Ops, who: ApiOperator, project: str, job: str) -> ResumedOut:
    return await ops.ledger.resume(_actor(who), project, job)


def _error(status: int, error: str, message: str, **context: Any) -> JSONResponse:
    return MaskedJSONResponse({"error": error, "message": message, **context}, status_code=status)


def _actor(who: Principal) -> str:
    """Who acts, in the audit log: the token's name, never the token."""
    return f"{who.name} (api)"
