"""The hooks page: the hooks folder against the deployment (`/hooks`), and its fire form's POST,
which checks the payload against the hook's triggerSchema before anything is triggered.

The form is plain HTML (templates/hook_forms.html) posted urlencoded; who may fire follows the
API's tokens until the pages' sign-in sessions come, which add their CSRF check below.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from scheduler.config.model import ApiSettings
from scheduler.errors import Category, SchedulerError
from scheduler.hooks.definitions import HookKey
from scheduler.operations.acts import Operations
from scheduler.web.auth import authenticate, require
from scheduler.web.draining import Draining
from scheduler.web.pages import _html, _page
from scheduler.web.statuses import STATUS

hook_pages = APIRouter(include_in_schema=False)

FORM_TYPE = "application/x-www-form-urlencoded"
# The fields the fire form sends; anything else in the body is ignored.
FORM_FIELDS = 8
# A task id as the notice may show one (a slugid); anything else in the query is not shown.
TASK_ID = re.compile(r"[A-Za-z0-9_-]{22}")


class InvalidFormError(SchedulerError, category=Category.INVALID, code="invalid-form"):
    """A fire form that cannot be read: not urlencoded, or its payload is not a JSON object."""


@hook_pages.get("/hooks", response_class=HTMLResponse)
async def hooks_page(
    request: Request, fired: str | None = None, task: str | None = None, dry_run: str | None = None
) -> HTMLResponse:
    async def build(operations: Operations) -> dict[str, Any]:
        found = await operations.hooks_overview()
        return {
            "page": found,
            "now": found.now,
            "title": "Hooks",
            "notice": _notice(fired, task, dry_run == "1"),
        }

    return await _page(request, "hooks.html", build)


@hook_pages.post("/hooks/{hook_group_id}/{hook_id:path}/fire", response_model=None)
async def fire_hook_form(request: Request, hook_group_id: str, hook_id: str) -> Response:
    """Fire the hook with the form's payload, as an operator: a 303 back to `/hooks` with a
    notice, or a page saying why nothing was triggered (the payload's problems named)."""
    settings: ApiSettings = request.app.state.settings
    operations: Operations = request.app.state.operations
    draining: Draining = request.app.state.draining
    payload_text = "{}"
    dry_run = False
    try:
        who = authenticate(settings, request.headers.get("authorization"))
        require(settings, who, acting=True)
        # TODO(sessions): check the form's CSRF token against the session here, before the form
        # is acted on (the sign-in helper adds it, with the hidden field in hook_forms.html).
        key = _key(hook_group_id, hook_id)
        form = await _form(request)
        payload_text = form.get("payload", "{}")
        dry_run = form.get("dry_run") == "1"
        payload = _payload(payload_text)
        async with draining.act():
            fired = await operations.fire_hook(
                f"{who.name} (dashboard)", key, payload, dry_run=dry_run
            )
    except SchedulerError as error:
        status = STATUS[error.category]
        return _html(
            "hook_refused.html",
            status,
            status=status,
            now=operations.now(),
            title=f"Not fired: {hook_group_id}/{hook_id}",
            hook=f"{hook_group_id}/{hook_id}",
            message=str(error),
            details=error.details(),
            sign_in=error.category is Category.UNAUTHORIZED,
            form=_form_again(hook_group_id, hook_id, payload_text, dry_run),
        )
    query: dict[str, str] = {"fired": str(key)}
    if fired.dry_run:
        query["dry_run"] = "1"
    elif fired.task_id is not None:
        query["task"] = fired.task_id
    return RedirectResponse(f"/hooks?{urlencode(query)}", status_code=303)


def _key(group_id: str, hook_id: str) -> HookKey:
    try:
        return HookKey.parse(f"{group_id}/{hook_id}")
    except ValueError as error:
        raise InvalidFormError(f"no such hook to fire: {error}") from None


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form's fields (the last value of each)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise InvalidFormError(f"send the fire form as {FORM_TYPE}, as the hooks page does")
    try:
        text = (await request.body()).decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=FORM_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise InvalidFormError("the form is not urlencoded UTF-8 text") from None
    return {name: values[-1] for name, values in fields.items()}


def _payload(text: str) -> dict[str, Any]:
    """The payload field: a JSON object (empty text: `{}`)."""
    if not text.strip():
        return {}
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise InvalidFormError(
            f"the payload is not JSON: {error}; write a JSON object, like {{}}"
        ) from None
    if not isinstance(payload, dict):
        raise InvalidFormError("the payload must be a JSON object, like {}")
    return payload


def _form_again(group_id: str, hook_id: str, payload_text: str, dry_run: bool) -> dict[str, Any]:
    """The fire form as it was sent, to correct and send again."""
    return {
        "hook": f"{group_id}/{hook_id}",
        "hook_group_id": group_id,
        "hook_id": hook_id,
        "payload": payload_text,
        "dry_run": dry_run,
    }


def _notice(fired: str | None, task: str | None, dry_run: bool) -> dict[str, str] | None:
    """What the page says after a fire form redirected to it: which hook, and its task."""
    if fired is None:
        return None
    try:
        key = HookKey.parse(fired)
    except ValueError:
        return None
    if dry_run:
        return {"hook": str(key), "task": "", "said": "dry run: the payload matches its schema"}
    if task is not None and TASK_ID.fullmatch(task):
        return {"hook": str(key), "task": task, "said": "triggered"}
    return {"hook": str(key), "task": "", "said": "triggered; its task template made no task"}
