"""The dashboard: server-rendered pages (overview, a project, a fire, the audit log) over the
operations' models, with their stylesheet served from the package; every page masked in `html`.

Who may read follows the API's tokens (`auth.pages_public` says when no token is needed): a
session signed in with one (`web/sessions.py`), or the Authorization header. The operator's
forms (`web/forms.py`, `web/acting.py`) and the hooks page (`web/hook_pages.py`) answer with
these pages too (`html`, `error_page`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel

from scheduler.common.redaction import scrub_data, scrub_remembered
from scheduler.config.model import ApiSettings
from scheduler.errors import Category, SchedulerError
from scheduler.operations.acts import Operations
from scheduler.web.auth import ANONYMOUS, Principal, UnauthorizedError, pages_public
from scheduler.web.notices import NOTICES
from scheduler.web.sessions import Reader, reader_of
from scheduler.web.statuses import STATUS

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
AUDIT_ENTRIES = 200
# Every page: its own scripts and styles only, framed by no other page (clickjacking), posting
# its forms only here, and telling other sites nothing of where a link was followed from.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

pages = APIRouter(include_in_schema=False)


class NoSuchPageError(SchedulerError, category=Category.NOT_FOUND, code="not-found"):
    """A page of something that does not exist (a fire id that is not a number, say)."""


def utc(moment: datetime | None) -> str:
    """A time as the pages show it: UTC, to the minute."""
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def age(moment: datetime | None, now: datetime) -> str:
    """How long ago (or from now) `moment` is, roughly: "5 min ago", "in 2 h"."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    late, seconds = seconds < 0, abs(seconds)
    if seconds < 1:
        return "just now"
    if seconds < 60:
        said = f"{int(seconds)} s"
    elif seconds < 3600:
        said = f"{int(seconds // 60)} min"
    elif seconds < 2 * 86400:
        said = f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    else:
        said = f"{int(seconds // 86400)} days"
    return f"{said} ago" if late else f"in {said}"


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["utc"] = utc
    environment.globals["age"] = age
    return environment


TEMPLATES = _environment()


def _shown(value: Any) -> Any:
    """A model (or models) as the templates read it: plain data, every secret masked."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    elif isinstance(value, list):
        value = [item.model_dump() if isinstance(item, BaseModel) else item for item in value]
    return scrub_data(value)


def html(
    request: Request, reader: Reader | None, template: str, status: int = 200, /, **context: Any
) -> HTMLResponse:
    """The page `template` for `reader` (None: not known) with `context`, every secret masked,
    saying the notice the query names (`web/notices.py`)."""
    me = (reader or Reader(Principal(ANONYMOUS, None))).shown()
    notice = NOTICES.get(request.query_params.get("notice", ""))
    # The data is masked before HTML escaping could hide a secret from the patterns. The page
    # is masked again of the secrets the service knows by value, wherever a template put them;
    # the patterns are not applied to HTML, where they would take the markup for a secret.
    shown = {k: _shown(v) for k, v in context.items()}
    body = TEMPLATES.get_template(template).render(me=me, notice=notice, **shown)
    return HTMLResponse(scrub_remembered(body), status_code=status, headers=PAGE_HEADERS)


def error_page(
    request: Request,
    reader: Reader | None,
    error: SchedulerError,
    link: tuple[str, str] | None = None,
) -> HTMLResponse:
    """An error an operator can act on, as a page with the status the API would give; `link`:
    (path, text) of what to look at next."""
    operations: Operations = request.app.state.operations
    status = STATUS[error.category]
    response = html(
        request,
        reader,
        "error.html",
        status,
        status=status,
        now=operations.now(),
        title=f"Error {status}",
        message=error.describe(),
        sign_in=error.category is Category.UNAUTHORIZED,
        link=link,
        # A link from another site (a chat message) brings no SameSite=Strict cookie: asked
        # again from this page, the browser sends it, so a signed-in reader gets the page.
        reload=error.category is Category.UNAUTHORIZED
        and request.method == "GET"
        and request.headers.get("sec-fetch-site") == "cross-site",
    )
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(int(error.retry_after.total_seconds()) + 1)
    return response


async def read_page(
    request: Request, template: str, build: Callable[[Operations], Awaitable[dict[str, Any]]]
) -> HTMLResponse:
    """The page `template` of what `build` reads, for a reader the API's rules let in; an
    error an operator can act on is a page of its own, with the status the API would give."""
    settings: ApiSettings = request.app.state.settings
    operations: Operations = request.app.state.operations
    reader = None
    try:
        reader = await reader_of(request)
        if reader.principal.role is None and not pages_public(
            settings, request.headers.get("host")
        ):
            raise UnauthorizedError(
                "this deployment's pages need an API token: sign in with one, send it as "
                "a bearer token in the Authorization header, or set api.public-reads"
            )
        return html(request, reader, template, **await build(operations))
    except SchedulerError as error:
        return error_page(request, reader, error)


@pages.get("/", response_class=HTMLResponse)
async def overview_page(request: Request) -> HTMLResponse:
    async def build(operations: Operations) -> dict[str, Any]:
        found = await operations.overview()
        return {"page": found, "now": found.now, "title": "Overview"}

    return await read_page(request, "overview.html", build)


@pages.get("/projects/{name}", response_class=HTMLResponse)
async def project_page(request: Request, name: str) -> HTMLResponse:
    async def build(operations: Operations) -> dict[str, Any]:
        found = await operations.project_detail(name)
        return {"page": found, "now": found.now, "title": name}

    return await read_page(request, "project.html", build)


@pages.get("/fires/{fire_id}", response_class=HTMLResponse)
async def fire_page(request: Request, fire_id: str) -> HTMLResponse:
    async def build(operations: Operations) -> dict[str, Any]:
        if not fire_id.isdigit() or not 0 < int(fire_id) < 2**63:
            raise NoSuchPageError(f"no fire {fire_id!r}: fire ids are numbers")
        found = await operations.fire_page(int(fire_id))
        fire = found.fire
        sent = json.dumps(scrub_data(fire.details), indent=2, sort_keys=True, default=str)
        return {
            "fire": fire,
            "page": found,
            "sent": sent if fire.details is not None else None,
            "root_url": operations.root_url,
            "group": found.task_group_id,
            "now": operations.now(),
            "title": f"Fire {fire.id}",
        }

    return await read_page(request, "fire.html", build)


@pages.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> HTMLResponse:
    async def build(operations: Operations) -> dict[str, Any]:
        entries = await operations.ledger.audit(limit=AUDIT_ENTRIES)
        for entry in entries:
            entry.input = scrub_data(entry.input)
        shown = [
            {**entry.model_dump(), "given": json.dumps(entry.input, sort_keys=True, default=str)}
            for entry in entries
        ]
        return {
            "entries": shown,
            "limit": AUDIT_ENTRIES,
            "now": operations.now(),
            "title": "Audit log",
        }

    return await read_page(request, "audit.html", build)
