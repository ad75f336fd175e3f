"""Sentry: the SDK's setup with every event scrubbed of secrets, errors, and cron check-ins.

Owns what leaves the process for Sentry: what is masked, the monitor slugs and check-in ids.
"""

# sentry_sdk is imported by the functions that talk to it, not here: a process without Sentry
# configured (`tick`, most `run`s) never loads it (tens of milliseconds and threads of start-up).

from __future__ import annotations

import functools
import hashlib
import re
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from scheduler.common import logs
from scheduler.common.redaction import SECRET_KEY_NAMES, remember_secret, scrub_data

if TYPE_CHECKING:
    from sentry_sdk._types import Breadcrumb, BreadcrumbHint, Event, Hint, MonitorConfig
    from sentry_sdk.integrations import Integration
    from sentry_sdk.scrubber import EventScrubber

CheckInStatus = Literal["in_progress", "ok", "error"]

# Bound values of a log line that become tags of the Sentry event of the exception it logged.
SENTRY_TAGS = ("project", "job", "slot", "kind", "task_id")

# Sentry's own limit on monitor slugs, and what they may contain.
MAX_SLUG_LENGTH = 50
_SLUG_CHARACTERS = re.compile(r"[^a-z0-9_-]+")
_CLEAN_PROJECT = re.compile(r"[a-z0-9-]+")
_CLEAN_JOB = re.compile(r"[a-z0-9_-]+")
_HASH_LENGTH = 8
_CHECK_IN_ID = re.compile(r"[0-9a-f]{32}")

# Check-in ids derive from names in this namespace, so every replica derives the same one.
_CHECK_IN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:tc-scheduler:sentry-check-in")

# Keys whose values Sentry's scrubber masks, besides the SDK's own DEFAULT_DENYLIST.
OUR_DENYLIST = (
    *(name.lower() for name in SECRET_KEY_NAMES),
    "access-token",
    "sentry_dsn",
    "slack_token",
    "slack_webhook_url",
)


def denylist() -> list[str]:
    """The keys Sentry's scrubber masks: the SDK's and ours, each once."""
    from sentry_sdk.scrubber import DEFAULT_DENYLIST  # noqa: PLC0415 - see the top

    return list(dict.fromkeys([*DEFAULT_DENYLIST, *OUR_DENYLIST]))


@functools.cache
def _scrubber_type() -> type[EventScrubber]:
    from sentry_sdk.scrubber import EventScrubber  # noqa: PLC0415 - see the top

    class Scrubber(EventScrubber):
        """`scrub_data` over the event as captured, then Sentry's key denylist.

        This pass runs before the SDK's last serialization, which cuts strings longer than
        `max_value_length`: a token cut in half is one that no pattern recognises any more.
        """

        def scrub_event(self, event: Event) -> None:
            fields = cast(dict[str, Any], event)
            fields.update(_scrubbed(fields))
            super().scrub_event(event)

    return Scrubber


def _scrubbed(event: Mapping[str, Any]) -> dict[str, Any]:
    # `_meta` holds the SDK's remarks about the event (what was cut, what was filtered) as
    # nested objects keyed by field name: scrubbing would turn `token`'s remark into `***`.
    return {key: value if key == "_meta" else scrub_data(value) for key, value in event.items()}


def _before_send(event: Event, _hint: Hint) -> Event:
    # After serialization: objects (an extra, a context) are text now, their repr included.
    return cast("Event", _scrubbed(cast(dict[str, Any], event)))


def _before_breadcrumb(crumb: Breadcrumb, _hint: BreadcrumbHint) -> Breadcrumb:
    scrubbed: Breadcrumb = scrub_data(crumb)
    return scrubbed


def configure(
    dsn: str,
    *,
    environment: str,
    release: str | None = None,
    traces_sample_rate: float | None = None,
    default_integrations: bool = False,
    auto_enabling_integrations: bool = False,
    integrations: Sequence[Integration] | None = None,
    max_value_length: int | None = None,
) -> None:
    """Initialise the process-wide Sentry client; nothing it sends carries a secret we know of.

    By default only integrations that patch no library are installed (crashes, flushing at
    exit, deduplication): the service reports its errors through its log (see `common/logs.py`,
    which hands exceptions logged with a traceback to Sentry from here on), and patched HTTP
    servers and clients would outlive the client in tests and send noise.

    PII stays off by leaving `send_default_pii` unset (False is its default in every 2.x):
    recent releases (2.75) deprecate passing it, and its replacement, `data_collection`, would
    switch the event scrubber off.
    """
    import sentry_sdk  # noqa: PLC0415 - see the top

    _remember_dsn(dsn)
    # Passed only when set: the default (no limit, or 1024 in older 2.x) is the SDK's own.
    limits: dict[str, Any] = (
        {} if max_value_length is None else {"max_value_length": max_value_length}
    )
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        traces_sample_rate=traces_sample_rate,
        default_integrations=default_integrations,
        auto_enabling_integrations=auto_enabling_integrations,
        integrations=list(_QUIET_INTEGRATIONS() if integrations is None else integrations),
        **limits,
        include_local_variables=True,
        event_scrubber=_scrubber_type()(denylist=denylist(), recursive=True),
        before_send=_before_send,
        before_send_transaction=_before_send,
        before_breadcrumb=_before_breadcrumb,
    )
    logs.report_exceptions_to(_report_logged)


def _QUIET_INTEGRATIONS() -> list[Integration]:  # noqa: N802 - a constant, made fresh
    from sentry_sdk.integrations.atexit import AtexitIntegration  # noqa: PLC0415 - see the top
    from sentry_sdk.integrations.dedupe import DedupeIntegration  # noqa: PLC0415
    from sentry_sdk.integrations.excepthook import ExcepthookIntegration  # noqa: PLC0415

    return [AtexitIntegration(), DedupeIntegration(), ExcepthookIntegration()]


def _remember_dsn(dsn: str) -> None:
    remember_secret(dsn)
    parts = urllib.parse.urlsplit(dsn)
    # The key alone travels in the X-Sentry-Auth header and in envelope headers.
    for part in (parts.username, parts.password):
        if part:
            remember_secret(urllib.parse.unquote(part))


def close(timeout: float = 2.0) -> None:
    """Send what is queued (waiting at most `timeout` seconds) and drop the client."""
    import sentry_sdk  # noqa: PLC0415 - see the top

    logs.report_exceptions_to(None)
    sentry_sdk.get_client().close(timeout=timeout)
    sentry_sdk.get_global_scope().set_client(None)


def capture_exception(error: BaseException, *, tags: Mapping[str, str]) -> None:
    """Report `error` with `tags` (project, job, slot) on this event only."""
    import sentry_sdk  # noqa: PLC0415 - see the top

    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        scope.capture_exception(error)


def _report_logged(error: BaseException, bound: Mapping[str, Any]) -> None:
    """An exception the log got with its traceback, tagged with the fire it happened in."""
    capture_exception(error, tags={key: str(bound[key]) for key in SENTRY_TAGS if key in bound})


# Named after `tc-scheduler notify test`, which calls it; not a pytest test.
def test(timeout: float = 5.0) -> str | None:  # noqa: PT028
    """Send a test event (`tc-scheduler notify test`) and wait up to `timeout` s for it to go.

    Returns its event id, or None when no client is configured.
    """
    import sentry_sdk  # noqa: PLC0415 - see the top

    event_id = sentry_sdk.capture_message("tc-scheduler notify test: Sentry is set up", "info")
    sentry_sdk.flush(timeout=timeout)
    return event_id


def monitor_slug(project: str, job: str) -> str:
    """The Sentry monitor slug of `job` on `project`: `[a-z0-9_-]`, at most 50 characters.

    `project_job` when both are plain (the project has no `_`, so the split is unambiguous)
    and it fits; otherwise a readable prefix and a hash of the exact names, so that names
    differing only in case, punctuation or past the cut get different slugs.
    """
    plain = f"{project}_{job}"
    if (
        _CLEAN_PROJECT.fullmatch(project)
        and _CLEAN_JOB.fullmatch(job)
        and len(plain) <= MAX_SLUG_LENGTH
    ):
        return plain
    digest = hashlib.sha256(f"{project}\0{job}".encode()).hexdigest()[:_HASH_LENGTH]
    readable = _SLUG_CHARACTERS.sub("-", plain.lower())
    readable = readable[: MAX_SLUG_LENGTH - _HASH_LENGTH - 1].strip("-_")
    # A slug of digits alone is refused: keep a word in front of the hash.
    return f"{readable or 'job'}-{digest}"


def check_in_id_for(name: str) -> str:
    """A check-in id (32 hex digits) that every replica derives alike from `name`.

    Name the run, such as `project/job/slot`, so that the replica closing a check-in finds
    the id the opening one used without asking it.
    """
    return uuid.uuid5(_CHECK_IN_NAMESPACE, name).hex


def check_in(
    slug: str,
    status: CheckInStatus,
    *,
    check_in_id: str,
    schedule: str | None,
    max_runtime_minutes: int | None = None,
    checkin_margin_minutes: int | None = None,
    duration: float | None = None,
) -> None:
    """Send a cron check-in; with `schedule` (a crontab, UTC) it also upserts the monitor."""
    from sentry_sdk.crons import capture_checkin  # noqa: PLC0415 - see the top

    if not _CHECK_IN_ID.fullmatch(check_in_id):
        raise ValueError(f"a check-in id is 32 lowercase hex digits, not {check_in_id!r}")
    config: MonitorConfig | None = None
    if schedule is not None:
        config = {"schedule": {"type": "crontab", "value": schedule}, "timezone": "UTC"}
        if checkin_margin_minutes is not None:
            config["checkin_margin"] = checkin_margin_minutes
        if max_runtime_minutes is not None:
            config["max_runtime"] = max_runtime_minutes
    capture_checkin(
        monitor_slug=slug,
        check_in_id=check_in_id,
        status=status,
        duration=duration,
        monitor_config=config,
    )
