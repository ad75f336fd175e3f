"""Triggering an action of a decision task: index -> public/actions.json -> the hook-action
guard -> hooks.triggerHook, exactly once.

The I/O half of actions/spec.py, shared by trigger-action cron jobs, operators' actions and the
expiry watch's rebuilds. Taskcluster cannot make a trigger idempotent, so `triggerHook` is never
retried blindly: when its outcome is unknown (no answer, a 5xx), the hook's last fires since the
trigger was sent say whether it made a task, and only a trigger shown to have made none is sent
again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from taskcluster.exceptions import TaskclusterRestFailure

from scheduler.actions.spec import (
    ActionError,
    HookTrigger,
    carries_fire,
    hook_action_scope,
    render_trigger,
)
from scheduler.clock import utc_now
from scheduler.config.model import LONGEST_CALL_TIMEOUT
from scheduler.cron.model import TriggerAction
from scheduler.errors import Category, SchedulerError
from scheduler.scopes import satisfies
from scheduler.taskcluster import Clients

# How far the hooks service's clock may be behind ours when it stamps a fire's taskCreateTime.
CLOCK_SKEW = timedelta(minutes=1)
# How long a service is given, after the client gave a call up, to finish what it received.
SETTLE_MARGIN = timedelta(seconds=30)
# Until this long after it was sent, a trigger may still be in the hooks service's hands (the
# client gives it up after taskcluster.call-timeout, at most a minute): not finding its task
# proves nothing yet.
SETTLE = LONGEST_CALL_TIMEOUT + SETTLE_MARGIN
# How many pages of a hook's last fires are read looking for a trigger's task.
LAST_FIRES_PAGES = 10


class TriggerError(SchedulerError):
    """The action could not be triggered; the message says why and what to check.

    `upstream`: Taskcluster failed or could not be reached (not the action or its input).
    `unindexed`: no decision task is indexed where its actions were looked for (yet).
    `transient`: trying again later may work (Taskcluster down, an outcome not known yet).
    `not_before`: the outcome of a trigger sent may not be known before then (see SETTLE).
    """

    def __init__(
        self,
        message: str,
        *,
        upstream: bool = False,
        unindexed: bool = False,
        transient: bool = False,
        not_before: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream = upstream
        self.unindexed = unindexed
        self.transient = transient
        self.not_before = not_before

    @property
    def category(self) -> Category:  # type: ignore[override]
        return Category.REFUSED_UPSTREAM if self.upstream else Category.REFUSED

    @property
    def error_code(self) -> str:  # type: ignore[override]
        return "taskcluster-error" if self.upstream else "cannot-trigger"


def _upstream(clients: Clients, error: BaseException, doing: str) -> TriggerError:
    explained = clients.explain(error, doing)
    return TriggerError(explained.message, upstream=True, transient=explained.transient)


@dataclass(frozen=True)
class Triggered:
    decision_task_id: str
    trigger: HookTrigger
    task_id: str | None  # None in a dry run, or when the hook made no task
    dry_run: bool = False

    def details(self) -> dict[str, Any]:
        """What the ledger keeps of a trigger: enough to look for its task later."""
        details = {
            "hookGroupId": self.trigger.hook_group_id,
            "hookId": self.trigger.hook_id,
            "payload": self.trigger.payload,
            "decisionTaskId": self.decision_task_id,
            "action": self.trigger.action_name,
        }
        if self.trigger.marker is not None:
            details["marker"] = self.trigger.marker
        return details

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> Triggered | None:
        """The trigger `details()` described (None if they describe none)."""
        try:
            trigger = HookTrigger(
                str(details["action"]),
                str(details["hookGroupId"]),
                str(details["hookId"]),
                dict(details["payload"]),
                details.get("marker"),
            )
            return cls(str(details["decisionTaskId"]), trigger, None)
        except (KeyError, TypeError, ValueError):
            return None


async def trigger_action(
    clients: Clients,
    index_path: str,
    kind: TriggerAction,
    *,
    cron_input: dict[str, Any] | None = None,
    dry_run: bool = False,
    missing_hint: str = "",
    clock: Callable[[], datetime] = utc_now,
) -> Triggered:
    """Find the decision task at `index_path`, render `kind`'s action and trigger its hook,
    if the decision task may have it triggered (the hook-action guard); once, even when the
    reply is lost (see `send`)."""
    prepared = await prepare_trigger(
        clients, index_path, kind, cron_input=cron_input, missing_hint=missing_hint
    )
    if dry_run:
        return Triggered(prepared.decision_task_id, prepared.trigger, None, dry_run=True)
    return await send(clients, prepared, sent_at=clock())


async def prepare_trigger(
    clients: Clients,
    index_path: str,
    kind: TriggerAction,
    *,
    cron_input: dict[str, Any] | None = None,
    missing_hint: str = "",
    marker: str | None = None,
) -> Triggered:
    """Everything before the trigger: the decision task at `index_path`, `kind`'s action
    rendered from its actions.json (carrying `marker` if its input schema allows) and the
    hook-action guard. Not sent (its `task_id` is None). Raises TriggerError."""
    try:
        found = await clients.index.findTask(index_path)
    except TaskclusterRestFailure as error:
        if error.status_code == 404:
            raise TriggerError(
                f"no decision task is indexed at {index_path}{missing_hint}, so its actions "
                "are unknown",
                unindexed=True,
            ) from None
        raise _upstream(clients, error, "index.findTask") from None
    except Exception as error:
        raise _upstream(clients, error, "index.findTask") from None
    decision_task_id = found["taskId"]
    try:
        actions_json = await clients.download_json(decision_task_id, "public/actions.json")
    except Exception as error:
        doing = f"fetching public/actions.json of {decision_task_id}"
        raise _upstream(clients, error, doing) from None
    try:
        trigger = render_trigger(
            actions_json,
            kind,
            decision_task_id=decision_task_id,
            cron_input=cron_input,
            marker=marker,
        )
    except ActionError as error:
        raise TriggerError(str(error)) from None
    await check_hook_action(clients, decision_task_id, trigger)
    return Triggered(decision_task_id, trigger, None)


async def send(clients: Clients, prepared: Triggered, *, sent_at: datetime) -> Triggered:
    """Trigger the prepared hook once: never retried by the client, and when the outcome is
    unknown, the task it made is looked for (`find_sent`) before anyone tries again.

    `sent_at`: now, by the caller's clock (recorded in the ledger before this call, for a fire).
    Raises TriggerError; `transient` when trying again later is safe and may work.
    """
    trigger = prepared.trigger
    what = f"hooks.triggerHook({trigger.hook_group_id}/{trigger.hook_id})"
    try:
        response = await clients.hooks_once.triggerHook(
            trigger.hook_group_id, trigger.hook_id, trigger.payload
        )
    except Exception as error:
        explained = clients.explain(error, what, retries=0)
        if not explained.uncertain:
            raise TriggerError(
                explained.message, upstream=True, transient=explained.transient
            ) from None
        settled = sent_at + SETTLE
        if explained.timed_out:
            # The hooks service let the trigger time out: asking it at once what the trigger
            # made would wait as long again, and could not settle it before SETTLE anyway.
            raise TriggerError(
                f"{explained.message}; whether it made a task is not known, so it is not "
                f"triggered again before {settled:%H:%M:%S} UTC, when the hook's last fires "
                "are looked at",
                upstream=True,
                transient=True,
                not_before=settled,
            ) from None
        try:
            task_id = await find_sent(clients, prepared, since=sent_at)
        except TriggerError as unknown:
            raise TriggerError(
                f"{explained.message}; whether it made a task is not known yet ({unknown}), "
                "so it is not triggered again until that is known",
                upstream=True,
                transient=True,
            ) from None
        if task_id is None:
            # The hooks service records a fire only once its task is made, and may still be
            # making it: not finding it proves nothing until SETTLE has passed.
            raise TriggerError(
                f"{explained.message}; the hook's last fires show no task for it yet, and it "
                f"may still be made: it is not triggered again before {settled:%H:%M:%S} UTC, "
                "when they are looked at again",
                upstream=True,
                transient=True,
                not_before=settled,
            ) from None
        return Triggered(prepared.decision_task_id, trigger, task_id)
    task_id = response.get("taskId") if isinstance(response, dict) else None
    return Triggered(
        prepared.decision_task_id, trigger, task_id if isinstance(task_id, str) else None
    )


async def find_sent(clients: Clients, sent: Triggered, *, since: datetime) -> str | None:
    """The task a trigger sent at `since` made, or None if the hook shows none.

    Looks at the hook's fires since then (`hooks.listLastFires`, newest first, as the hooks
    service lists them) and reads each one's task: a task carrying the trigger's marker is its
    task, one carrying another fire's marker is not, and an unmarked one (the hook's task shows
    nothing of the action's input) is taken as its task, so that nothing fires twice. Raises
    TriggerError (transient) when it cannot tell.
    """
    trigger = sent.trigger
    key = f"{trigger.hook_group_id}/{trigger.hook_id}"
    earliest = since - CLOCK_SKEW
    candidates: list[str] = []
    query: dict[str, Any] = {}
    try:
        for _ in range(LAST_FIRES_PAGES):
            page = await clients.hooks.listLastFires(
                trigger.hook_group_id, trigger.hook_id, query=query
            )
            fires = page.get("lastFires", [])
            # Fires recorded as errors count too: the hooks service records one when its
            # createTask fails, which can happen after the queue stored the task.
            recent = [
                fire
                for fire in fires
                if (created := _time(fire.get("taskCreateTime"))) is not None
                and created >= earliest
            ]
            candidates += [str(fire["taskId"]) for fire in recent if fire.get("taskId")]
            token = page.get("continuationToken")
            if not token or len(recent) < len(fires):  # newest first: the rest are older
                break
            query = {"continuationToken": token}
    except TaskclusterRestFailure as error:
        if error.status_code != 404:  # 404: the hook has never fired
            raise _unknown(clients, error, f"hooks.listLastFires({key})") from None
    except Exception as error:
        raise _unknown(clients, error, f"hooks.listLastFires({key})") from None
    for task_id in candidates:
        try:
            task = await clients.queue.task(task_id)
        except TaskclusterRestFailure as error:
            if error.status_code == 404:  # a fire whose task was never made
                continue
            raise _unknown(clients, error, f"queue.task({task_id})") from None
        except Exception as error:
            raise _unknown(clients, error, f"queue.task({task_id})") from None
        if carries_fire(task, trigger.marker):
            return task_id
    return None


def _unknown(clients: Clients, error: BaseException, doing: str) -> TriggerError:
    return TriggerError(clients.explain(error, doing).message, upstream=True, transient=True)


def _time(value: Any) -> datetime | None:
    """A Taskcluster timestamp as an aware datetime (None if it is not one)."""
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


async def check_hook_action(clients: Clients, decision_task_id: str, trigger: HookTrigger) -> None:
    """Refuse to trigger a hook that the decision task publishing `actions.json` may not name.

    As build-decision and Treeherder check, the decision task's scopes, expanded, must satisfy
    `in-tree:hook-action:<hookGroupId>/<hookId>`: whatever a repository writes into
    `actions.json`, only hooks its own roles grant it can be triggered.
    """
    required = hook_action_scope(trigger.hook_group_id, trigger.hook_id)
    try:
        task = await clients.queue.task(decision_task_id)
        expanded = await clients.auth.expandScopes({"scopes": task.get("scopes") or []})
    except Exception as error:
        doing = f"checking that decision task {decision_task_id} may trigger {required}"
        raise _upstream(clients, error, doing) from None
    if not satisfies(expanded.get("scopes") or [], required):
        raise TriggerError(
            f"refused to trigger action {trigger.action_name!r}: its hook "
            f"{trigger.hook_group_id}/{trigger.hook_id} is not one the decision task "
            f"{decision_task_id} may name (its scopes do not satisfy {required}); grant "
            f"{required} to the role the repository's decision tasks assume if the action is "
            "meant for it"
        )
