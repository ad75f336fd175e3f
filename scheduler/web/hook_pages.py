"""The hooks page: the hooks folder against the deployment (`/hooks`), and its fire form's POST,
which checks the payload against the hook's triggerSchema before anything is triggered.

The form is plain HTML (templates/hook_forms.html) posted urlencoded through `forms.acting`: an
operator signed in, the session's CSRF token, then the one operation.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from scheduler.errors import Category, SchedulerError
from scheduler.hooks.definitions import HookKey
from scheduler.operations.acts import Operations
from scheduler.web.forms import Form, FormError, acting, checkbox, json_field
from scheduler.web.notices import noticed
from scheduler.web.pages import html, read_page
from scheduler.web.sessions import Reader
from scheduler.web.statuses import STATUS

hook_pages = APIRouter(include_in_schema=False)


@hook_pages.get("/hooks", response_class=HTMLResponse)
async def hooks_page(request: Request) -> HTMLResponse:
    async def build(operations: Operations) -> dict[str, Any]:
        found = await operations.hooks_overview()
        return {"page": found, "now": operations.now(), "title": "Hooks"}

    return await read_page(request, "hooks.html", build)


@hook_pages.post("/hooks/{hook_group_id}/{hook_id:path}/fire", response_model=None)
async def fire_hook_form(request: Request, hook_group_id: str, hook_id: str) -> Response:
    """Fire the hook with the form's payload, as the operator signed in: a 303 to the audit log,
    whose newest entry names the task; or a page saying why nothing was triggered (the
    payload's problems named), with the form again."""

    async def fire(operations: Operations, actor: str, form: Form) -> str:
        key = _key(hook_group_id, hook_id)
        payload = json_field(form, "payload", "the payload") or {}
        fired = await operations.fire_hook(actor, key, payload, dry_run=checkbox(form, "dry_run"))
        return noticed("/audit", "hook-dry-run" if fired.dry_run else "hook-fired")

    def refused(
        request: Request, reader: Reader | None, error: SchedulerError, form: Form
    ) -> Response:
        operations: Operations = request.app.state.operations
        status = STATUS[error.category]
        return html(
            request,
            reader,
            "hook_refused.html",
            status,
            status=status,
            now=operations.now(),
            title=f"Not fired: {hook_group_id}/{hook_id}",
            hook=f"{hook_group_id}/{hook_id}",
            message=str(error),
            details=error.details(),
            sign_in=error.category is Category.UNAUTHORIZED,
            form=_form_again(
                hook_group_id, hook_id, form.get("payload", "{}"), checkbox(form, "dry_run")
            ),
        )

    return await acting(request, fire, refused=refused)


def _key(group_id: str, hook_id: str) -> HookKey:
    try:
        return HookKey.parse(f"{group_id}/{hook_id}")
    except ValueError as error:
        raise FormError(f"no such hook to fire: {error}") from None


def _form_again(group_id: str, hook_id: str, payload_text: str, dry_run: bool) -> dict[str, Any]:
    """The fire form as it was sent, to correct and send again."""
    return {
        "hook": f"{group_id}/{hook_id}",
        "hook_group_id": group_id,
        "hook_id": hook_id,
        "payload": payload_text,
        "dry_run": dry_run,
    }
