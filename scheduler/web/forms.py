"""The one path of every dashboard form that acts (`acting`): an operator's session, the form's
CSRF token, the form parsed and checked as the API checks its body, one operation counted by
the draining API, then a 303 to the page that shows what came of it; and the parsing of fields.

Whatever fails before the operation runs does nothing; whatever the operation raises is an
error page with the status the API would give.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from scheduler.errors import Category, SchedulerError
from scheduler.operations.acts import Operations
from scheduler.web.auth import ForbiddenError, UnauthorizedError
from scheduler.web.draining import Draining
from scheduler.web.pages import error_page
from scheduler.web.sessions import CSRF_FIELD, Reader, from_this_site, reader_of, same_csrf

Form = Mapping[str, str]
# An act of a form: (operations, the actor to audit, the form's fields) -> the page to go to.
Act = Callable[[Operations, str, Form], Awaitable[str]]
# A page saying why an act was refused, with the form as it was sent (to correct and resend).
Refused = Callable[[Request, "Reader | None", SchedulerError, Form], Response]
Body = TypeVar("Body", bound=BaseModel)
# Fields a form of the dashboard has at most: a body with more is not one of its forms.
MAX_FIELDS = 50
FORM_TYPE = "application/x-www-form-urlencoded"
OTHER_SITE = (
    "this form was posted from another site's page: nothing was done; use the dashboard's own pages"
)


class FormError(SchedulerError, category=Category.INVALID, code="invalid-form"):
    """A form whose fields cannot be taken as they are: names the field and the fix."""


async def acting(
    request: Request,
    act: Act,
    *,
    link: Callable[[SchedulerError], tuple[str, str] | None] = lambda error: None,
    refused: Refused | None = None,
) -> Response:
    """Carry out `act(operations, actor, form)` for the operator signed in, and send the browser
    to the path it answers (303). `link`: for an error `act` raised, what to look at (the
    fire a failed fire made, say), shown on the error page; `refused`: the page of an error
    instead, given the form as sent."""
    reader: Reader | None = None
    form: Form = {}
    try:
        if not from_this_site(request):
            raise ForbiddenError(OTHER_SITE)
        reader = await reader_of(request)
        if not reader.signed_in:
            raise UnauthorizedError("acting from the dashboard needs you signed in: sign in first")
        try:
            form = await form_of(request)
        except FormError:  # not a form of this dashboard, so no CSRF token either
            form = {}
        if not same_csrf(reader, form.get(CSRF_FIELD)):
            raise ForbiddenError(
                "the form's CSRF token is missing or not this session's: nothing was done; "
                "reload the page and submit the form again"
            )
        if not reader.operator:
            raise ForbiddenError(
                f"{reader.principal.name!r} is a viewer; acting needs an operator's token: "
                "nothing was done"
            )
        draining: Draining = request.app.state.draining
        operations: Operations = request.app.state.operations
        async with draining.act():
            location = await act(operations, f"{reader.principal.name} (dashboard)", form)
        return RedirectResponse(location, status_code=303)
    except SchedulerError as error:
        if refused is not None:
            return refused(request, reader, error, form)
        return error_page(request, reader, error, link(error))


async def form_of(request: Request) -> Form:
    """The fields of a plain HTML form; FormError for a body that is not one."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != FORM_TYPE:
        raise FormError(f"send the form as {FORM_TYPE}, as a browser's form does")
    try:
        text = (await request.body()).decode("utf-8")
        return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise FormError(
            f"the form is not readable: UTF-8, at most {MAX_FIELDS} fields, as a browser sends"
        ) from None


def text_field(form: Form, name: str) -> str | None:
    """A text field, stripped; None when absent or blank."""
    value = form.get(name, "").strip()
    return value or None


def checkbox(form: Form, name: str) -> bool:
    """Whether a checkbox was ticked (a browser sends it only then)."""
    return name in form


def json_field(form: Form, name: str, label: str) -> dict[str, Any] | None:
    """A JSON object typed in a text area; None when left empty."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise FormError(
            f"{label}: not JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            'write an object such as {"key": "value"}, or leave it empty. Nothing was done.'
        ) from None
    if not isinstance(value, dict):
        raise FormError(
            f"{label}: a JSON object is needed, not {type(value).__name__}; write it as "
            '{"key": "value"}, or leave it empty. Nothing was done.'
        )
    return value


def utc_field(form: Form, name: str, label: str) -> datetime | None:
    """A time typed as UTC (a datetime-local field: 2026-12-01T10:30); one with an offset is
    taken as it says. None when empty."""
    text = form.get(name, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise FormError(
            f"{label}: {text!r} is not a time in UTC's range; write it as 2026-12-01T10:30 "
            "(UTC), or leave it empty. Nothing was done."
        ) from None


def checked(body: type[Body], **fields: Any) -> Body:
    """The form's fields checked as the API checks its JSON body of the same act."""
    try:
        return body.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()
        )
        raise FormError(f"{problems}. Nothing was done.") from None
