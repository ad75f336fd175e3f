"""The API's routes: read projects, fires and the audit log; fire a job now, pause and resume.

Every error is JSON `{error, message}` with a fitting status, never a stack trace; every act is
written to the audit log under the token's name.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from scheduler import __version__
from scheduler.config import UnknownProjectError
from scheduler.engine import Engine, FireError, FireTooSoonError
from scheduler.ledger import FireState
from scheduler.redaction import redact
from scheduler.web.auth import (
    ForbiddenError,
    Principal,
    UnauthorizedError,
    authenticate,
    require,
)

Limit = Annotated[int, Query(ge=1, le=1000)]
# Ids are the ledger's 64-bit keys.
FireId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


class ErrorBody(BaseModel):
    error: str = Field(description="A short code: unauthorized, forbidden, not-found, ...")
    message: str = Field(description="What went wrong and what to do about it.")


class PauseBody(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)
    until: datetime | None = Field(default=None, description="Lift the pause at this time.")


class FireBody(BaseModel):
    input: dict[str, Any] | None = Field(default=None, description="The cron input.")


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
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 422, 429)
}


def create_app(engine: Engine) -> FastAPI:
    """The API of a service whose engine (and ledger) is `engine`."""
    app = FastAPI(
        title="tc-scheduler",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    _handle_errors(app)
    app.include_router(health)
    app.include_router(api)
    return app


def _handle_errors(app: FastAPI) -> None:
    """Every failure as `{error, message}`; a bug as a 500 that shows nothing of it."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        response = _error(error.status, error.error, error.message)
        response.headers.update(error.headers)
        return response

    @app.exception_handler(UnauthorizedError)
    async def unauthorized(request: Request, error: UnauthorizedError) -> JSONResponse:
        response = _error(401, "unauthorized", str(error))
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(ForbiddenError)
    async def forbidden(request: Request, error: ForbiddenError) -> JSONResponse:
        return _error(403, "forbidden", str(error))

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

health = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/v1", responses=ERRORS)


@health.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz")
async def readyz(engine: EngineDep) -> JSONResponse:
    try:
        await asyncio.to_thread(engine.ledger.audit_log, limit=1)
    except Exception:
        return _error(503, "not-ready", "the ledger does not answer")
    return JSONResponse({"status": "ok"})


@api.get("/projects")
async def projects(engine: EngineDep, who: Reader) -> list[ProjectOut]:
    pauses = await asyncio.to_thread(engine.ledger.pauses, at=engine.clock())
    return [
        ProjectOut(
            name=p.name,
            repository=redact(p.repository),
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


@api.post("/projects/{project}/jobs/{job}/fire")
async def fire_now(
    engine: EngineDep, who: Operator, project: str, job: str, body: FireBody
) -> FiredOut:
    """Fire a job now, whatever its schedule says: the same path as `tc-scheduler fire`."""
    _known(engine, project)
    act = {"input": body.input}
    try:
        result = await engine.fire_now(project, job, body.input)
    except FireTooSoonError as error:
        await _record(engine, who, "fire", f"{project}/{job}", act, False, str(error))
        seconds = int(error.retry_after.total_seconds()) + 1
        raise ApiError(429, "too-soon", str(error), {"Retry-After": str(seconds)}) from None
    except FireError as error:
        await _record(engine, who, "fire", f"{project}/{job}", act, False, str(error))
        raise ApiError(400, "cannot-fire", str(error)) from None
    ok = result.state is not FireState.FAILED
    outcome = f"{result.state}: task {result.task_id}" if ok else str(result.error)
    await _record(engine, who, "fire", f"{project}/{job}", act, ok, outcome)
    return FiredOut.model_validate(result)


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
    _known(engine, project)
    try:
        paused = await asyncio.to_thread(
            engine.ledger.pause,
            project,
            job,
            reason=body.reason,
            until=body.until,
            actor=f"{who.name} (api)",
            now=engine.clock(),
        )
    except ValueError as error:
        raise ApiError(400, "invalid-pause", str(error)) from None
    return PauseOut.model_validate(paused)


async def _resume_target(
    engine: Engine, who: Principal, project: str, job: str | None
) -> ResumedOut:
    _known(engine, project)
    resumed = await asyncio.to_thread(
        engine.ledger.resume, project, job, actor=f"{who.name} (api)", now=engine.clock()
    )
    return ResumedOut(resumed=resumed is not None)


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


def _known(engine: Engine, project: str) -> None:
    try:
        engine.config.require_project(project)
    except UnknownProjectError as error:
        raise ApiError(404, "not-found", str(error)) from None


async def _record(
    engine: Engine,
    who: Principal,
    action: str,
    target: str,
    act: dict[str, Any],
    ok: bool,
    result: str,
) -> None:
    await asyncio.to_thread(
        engine.ledger.record_act,
        f"{who.name} (api)",
        action,
        target,
        act,
        ok=ok,
        result=result,
        now=engine.clock(),
    )
