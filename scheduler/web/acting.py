"""The dashboard's forms: sign in with an API token and out again; and the operator's acts on a
project page (fire a job, pause and resume a job or the project, remediate expiry, trigger an
action). Each act route parses its form, calls one operation through `forms.acting`, and names
the page to go to.
"""

from __future__ import annotations

import contextlib
import re

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from scheduler.config.model import ApiSettings
from scheduler.errors import Category, SchedulerError
from scheduler.operations.acts import FireFailedError, Operations
from scheduler.web.auth import ForbiddenError, token_of
from scheduler.web.bodies import ActionBody, FireBody, PauseBody
from scheduler.web.forms import (
    OTHER_SITE,
    Act,
    Form,
    FormError,
    acting,
    checkbox,
    checked,
    form_of,
    json_field,
    text_field,
    utc_field,
)
from scheduler.web.notices import noticed, project_path
from scheduler.web.pages import error_page, html
from scheduler.web.sessions import (
    COOKIE,
    CSRF_FIELD,
    SignInLimiter,
    clear_session_cookie,
    from_this_site,
    reader_of,
    same_csrf,
    set_session_cookie,
)

log = structlog.get_logger("tc_scheduler.web")

acts = APIRouter(include_in_schema=False)

# Where sign-in may send the browser back to: a page of this site, never another's.
_LOCAL_PATH = re.compile(r"^/(?!/)[A-Za-z0-9/_.~%-]*$")
NOT_SIGNED_IN = (
    "that token is not one this deployment knows: nothing signed in. Paste the whole token "
    "(not its SHA-256); `tc-scheduler api new-token` makes one"
)


class TooManySignInsError(SchedulerError, category=Category.TOO_SOON, code="too-many-sign-ins"):
    """A client failed to sign in too often lately: it waits before trying again."""


def _next(given: str | None) -> str:
    return given if given and _LOCAL_PATH.match(given) else "/"


# -- signing in and out -------------------------------------------------------------------------


@acts.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str | None = None) -> HTMLResponse:
    operations: Operations = request.app.state.operations
    reader = None
    with contextlib.suppress(SchedulerError):  # an unknown Authorization header: sign in
        reader = await reader_of(request)
    return html(
        request,
        reader,
        "signin.html",
        now=operations.now(),
        title="Sign in",
        next=_next(next),
        problem=None,
    )


@acts.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    """Exchange a token the configuration has for a session (a cookie); a token nobody knows
    is a 401 page that says no more than that, and an address that keeps failing waits (a
    known token always signs in: nobody is locked out by someone else's guesses)."""
    settings: ApiSettings = request.app.state.settings
    operations: Operations = request.app.state.operations
    limiter: SignInLimiter = request.app.state.sign_ins
    client = request.client.host if request.client else "unknown"
    now = operations.now()
    try:
        if not from_this_site(request):
            raise ForbiddenError(OTHER_SITE)
        form = await form_of(request)
        token = form.get("token", "").strip()
        found = token_of(settings, token) if token else None
        if found is None:
            wait = limiter.wait(client, now)
            if wait is not None:
                error = TooManySignInsError(
                    "too many failed sign-ins from this address lately: wait a few minutes, "
                    "then try again with the whole token"
                )
                error.retry_after = wait
                raise error
            limiter.failed(client, now)
            log.warning("a sign-in to the dashboard failed", client=client)
            return html(
                request,
                None,
                "signin.html",
                401,
                now=now,
                title="Sign in",
                next=_next(form.get("next")),
                problem=NOT_SIGNED_IN if token else "paste your API token to sign in",
            )
        replaced = request.cookies.get(COOKIE)
        if replaced:  # signing in again ends the session the browser had
            await operations.sessions.sign_out(replaced)
        session_id, who = await operations.sessions.sign_in(found)
    except SchedulerError as error:
        return error_page(request, None, error)
    response = RedirectResponse(noticed(_next(form.get("next")), "signed-in"), status_code=303)
    set_session_cookie(response, request, session_id, who.expires_at, now)
    log.info("signed in to the dashboard", name=who.name, role=who.role, client=client)
    return response


@acts.post("/sign-out")
async def sign_out(request: Request) -> Response:
    """End the session (the form carries its CSRF token) and forget the cookie; a cookie of no
    live session is simply forgotten. Another site's page cannot sign anyone out."""
    operations: Operations = request.app.state.operations
    reader = None
    try:
        if not from_this_site(request):
            raise ForbiddenError(OTHER_SITE)
        reader = await reader_of(request)
        form = await form_of(request)
        session_id = request.cookies.get(COOKIE)
        if reader.signed_in and session_id:
            if not same_csrf(reader, form.get(CSRF_FIELD)):
                raise ForbiddenError(
                    "the form's CSRF token is missing or not this session's: reload the page "
                    "and sign out again"
                )
            await operations.sessions.sign_out(session_id)
    except SchedulerError as error:
        return error_page(request, reader, error)
    response = RedirectResponse(noticed("/", "signed-out"), status_code=303)
    if COOKIE in request.cookies:
        clear_session_cookie(response, request)
    return response


# -- acts on a project and its jobs ------------------------------------------------------------


def _failed_fire(error: SchedulerError) -> tuple[str, str] | None:
    if isinstance(error, FireFailedError) and error.fired.fire_id is not None:
        return f"/fires/{error.fired.fire_id}", "See the fire it recorded"
    return None


@acts.post("/projects/{project}/jobs/{job:path}/fire")
async def fire_job(request: Request, project: str, job: str) -> Response:
    async def act(operations: Operations, actor: str, form: Form) -> str:
        body = checked(
            FireBody,
            input=json_field(form, "input", "Cron input"),
            dry_run=checkbox(form, "dry_run"),
        )
        fired = await operations.fire_job(actor, project, job, body.input, dry_run=body.dry_run)
        notice = "fired-dry-run" if fired.state == "dry-run" else "fired"
        if fired.fire_id is None:
            return noticed(project_path(project), notice)
        return noticed(f"/fires/{fired.fire_id}", notice)

    return await acting(request, act, link=_failed_fire)


def _pause(project: str, job: str | None) -> Act:
    async def act(operations: Operations, actor: str, form: Form) -> str:
        body = checked(
            PauseBody,
            reason=text_field(form, "reason") or "",
            until=utc_field(form, "until", "Until"),
        )
        await operations.ledger.pause(actor, project, job, reason=body.reason, until=body.until)
        return noticed(project_path(project), "paused")

    return act


def _resume(project: str, job: str | None) -> Act:
    async def act(operations: Operations, actor: str, form: Form) -> str:
        resumed = await operations.ledger.resume(actor, project, job)
        notice = "not-paused" if not resumed.resumed else "resumed"
        if resumed.resumed and resumed.still_paused:
            notice = "still-paused"
        return noticed(project_path(project), notice)

    return act


@acts.post("/projects/{project}/jobs/{job:path}/pause")
async def pause_job(request: Request, project: str, job: str) -> Response:
    return await acting(request, _pause(project, job))


@acts.post("/projects/{project}/jobs/{job:path}/resume")
async def resume_job(request: Request, project: str, job: str) -> Response:
    return await acting(request, _resume(project, job))


@acts.post("/projects/{project}/pause")
async def pause_project(request: Request, project: str) -> Response:
    return await acting(request, _pause(project, None))


@acts.post("/projects/{project}/resume")
async def resume_project(request: Request, project: str) -> Response:
    return await acting(request, _resume(project, None))


@acts.post("/projects/{project}/expiry/remediate")
async def remediate(request: Request, project: str) -> Response:
    async def act(operations: Operations, actor: str, form: Form) -> str:
        await operations.remediate(actor, project, dry_run=checkbox(form, "dry_run"))
        return noticed("/audit", "remediated")

    return await acting(request, act)


@acts.post("/projects/{project}/action")
async def run_action(request: Request, project: str) -> Response:
    async def act(operations: Operations, actor: str, form: Form) -> str:
        action = text_field(form, "action")
        if action is None:
            raise FormError("Action: name the action to trigger (as actions.json names it)")
        body = checked(
            ActionBody,
            input=json_field(form, "input", "Action input"),
            revision=text_field(form, "revision"),
            dry_run=checkbox(form, "dry_run"),
        )
        done = await operations.run_action(
            actor, project, action, body.input, revision=body.revision, dry_run=body.dry_run
        )
        return noticed("/audit", "action-dry-run" if done.dry_run else "action")

    return await acting(request, act)
