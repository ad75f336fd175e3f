"""A notice as Slack shows it: an `Event` rendered as a Block Kit message within Slack's
limits, every text escaped and clipped. Pure: `slack.py` posts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from scheduler.notify.events import Event, EventSeverity, FailedTask

# Block Kit's limits (https://api.slack.com/reference/block-kit/blocks), with room to spare.
MAX_BLOCKS = 50
MAX_FIELDS = 10
FIELD_SECTIONS = 3
"""Sections of fields at most: the details, then the event's facts, 10 to a section."""
FIELD_LIMIT = 2000
SECTION_LIMIT = 3000
TITLE_LIMIT = 300
ERROR_LIMIT = 2000
"""Escaped characters of an error shown; the rest is cut, and the message says so."""
LISTED_TASKS = 10
TASK_NAME_LIMIT = 80
REASON_LIMIT = 100

EMOJI = {
    EventSeverity.FAILURE: ":red_circle:",
    EventSeverity.RECOVERY: ":large_green_circle:",
    EventSeverity.WARNING: ":warning:",
    EventSeverity.INFO: ":information_source:",
}
_SPECIAL_MENTIONS = {"@here": "<!here>", "@channel": "<!channel>", "@everyone": "<!everyone>"}
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


@dataclass(frozen=True)
class SlackMessage:
    """What `chat.postMessage` or a webhook takes: the notification line and the blocks."""

    text: str
    blocks: list[dict[str, Any]]


def render(event: Event, *, root_url: str, mentions: Sequence[str] = ()) -> SlackMessage:
    """The message a sheriff reads at 3 a.m.: what broke, the link to click first, the details.

    `mentions` are in Slack syntax (`<!subteam^S123>`, `<@U123>`; `@here`, `@channel` are
    converted) and apply to failures only. Text from the event is escaped; links are built from
    `root_url` and the event's task and task group ids.
    """
    links = _Links(root_url)
    emoji = EMOJI[event.severity]
    title = _clip(event.title.strip() or event.kind.value, TITLE_LIMIT)
    summary = _failure_summary(event)
    tags = _mentions(mentions) if event.severity is EventSeverity.FAILURE else []

    primary = links.task(event.task_id) or links.group(event.task_group_id)
    head = f"*<{primary}|{title}>*" if primary else f"*{title}*"
    lines = [" ".join(tags)] if tags else []
    lines.append(f"{emoji} {head}")
    if summary:
        lines.append(summary)
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]

    fields = _fields(event, links)
    shown = fields[: MAX_FIELDS * FIELD_SECTIONS]
    for start in range(0, len(shown), MAX_FIELDS):
        chunk = shown[start : start + MAX_FIELDS]
        blocks.append({"type": "section", "fields": [_mrkdwn(f) for f in chunk]})
    if len(fields) > len(shown):
        blocks.append(_section(f"…and {len(fields) - len(shown)} more facts"))
    if event.error:
        label = "Error" if event.severity is EventSeverity.FAILURE else "Details"
        blocks.append(_section(_error(event.error, label)))
    if event.advice:
        blocks.append(_section(f"*What to do:* {_clip(event.advice.strip(), SECTION_LIMIT - 100)}"))
    if event.failed_tasks:
        blocks.append(_section(_failed_tasks(event, links)))
    blocks.append(
        {
            "type": "context",
            "elements": [
                _mrkdwn(f"`{escape(event.kind.value)}` · {_when(event.at, seconds=True)}")
            ],
        }
    )

    text = " ".join([*tags, emoji, title] + ([f"({summary})"] if summary else []))
    return SlackMessage(text=text, blocks=blocks[:MAX_BLOCKS])


def escape(text: str) -> str:
    """`text` as Slack wants it in any text field: `&`, `<` and `>` as entities."""
    return "".join(_ESCAPES.get(char, char) for char in text)


class _Links:
    """Taskcluster UI links under one root URL."""

    def __init__(self, root_url: str) -> None:
        self.root = root_url.rstrip("/")

    def task(self, task_id: str | None) -> str | None:
        return f"{self.root}/tasks/{quote(task_id, safe='')}" if task_id else None

    def group(self, task_group_id: str | None) -> str | None:
        return (
            f"{self.root}/tasks/groups/{quote(task_group_id, safe='')}" if task_group_id else None
        )


def _fields(event: Event, links: _Links) -> list[str]:
    """`*Label*\\nvalue` for each detail the event has, then its facts."""
    values: list[tuple[str, str | None]] = [
        ("Project", escape(event.project) if event.project else None),
        ("Job", escape(event.job) if event.job else None),
        ("Slot", _when(event.slot) if event.slot else None),
        ("Revision", f"`{escape(event.revision[:12])}`" if event.revision else None),
        ("Fire kind", escape(event.fire_kind) if event.fire_kind else None),
        ("Task", _link(links.task(event.task_id), event.task_id)),
        ("Task group", _link(links.group(event.task_group_id), event.task_group_id)),
    ]
    fields = [f"*{label}*\n{value}" for label, value in values if value]
    for label, value in event.facts:
        label_text = _clip(label, 100)
        fields.append(f"*{label_text}*\n{_clip(value, FIELD_LIMIT - len(label_text) - 10)}")
    return fields


def _link(url: str | None, label: str | None) -> str | None:
    return f"<{url}|{escape(label)}>" if url and label else None


def _failure_summary(event: Event) -> str | None:
    """ "3 of 412 tasks failed", unless the title says so already."""
    if not event.failed_tasks or event.total_tasks is None:
        return None
    count = f"{len(event.failed_tasks)} of {event.total_tasks}"
    return None if count in event.title else f"{count} tasks failed"


def _failed_tasks(event: Event, links: _Links) -> str:
    lines = ["*Failed tasks*"]
    size = len(lines[0])
    listed = 0
    for task in event.failed_tasks[:LISTED_TASKS]:
        line = _failed_task(task, links)
        # Room is kept for the "and N more" line.
        if size + 1 + len(line) > SECTION_LIMIT - 200:
            break
        lines.append(line)
        size += 1 + len(line)
        listed += 1
    more = len(event.failed_tasks) - listed
    if more > 0:
        group = links.group(event.task_group_id)
        where = f" in <{group}|the task group>" if group else ""
        lines.append(f"…and {more} more{where}")
    return "\n".join(lines)


def _failed_task(task: FailedTask, links: _Links) -> str:
    name = _clip(task.name or task.task_id, TASK_NAME_LIMIT)
    line = f"• <{links.task(task.task_id)}|{name}> {_clip(task.state, 20)}"
    if task.reason and task.reason != task.state:
        line += f" ({_clip(task.reason, REASON_LIMIT)})"
    return line


def _error(error: str, label: str) -> str:
    # A ``` inside would close the code block early; a zero-width space keeps it looking alike.
    shown, cut = _escape_within(error.strip("\n").replace("```", "`\u200b`\u200b`"), ERROR_LIMIT)
    note = ""
    if cut:
        note = f" (truncated: {cut:,} more characters; the ledger keeps it all)"
    return f"*{label}*{note}\n```{shown}```"


def _mentions(mentions: Sequence[str]) -> list[str]:
    tags = (m.strip() for m in mentions)
    return [_SPECIAL_MENTIONS.get(tag, tag) for tag in tags if tag]


def _when(at: datetime, *, seconds: bool = False) -> str:
    """`2024-05-01 03:15 UTC`; a naive time is taken as UTC already."""
    utc = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def _clip(text: str, limit: int) -> str:
    """`text` escaped, at most `limit` characters, with `…` where it was cut."""
    shown, cut = _escape_within(text, limit)
    if not cut:
        return shown
    shown, _ = _escape_within(text, limit - 1)
    return shown + "…"


def _escape_within(text: str, limit: int) -> tuple[str, int]:
    """`text` escaped and cut so the escaped form fits `limit`; and how many characters were cut.

    Cuts between characters, never inside an entity such as `&amp;`.
    """
    out: list[str] = []
    size = 0
    for index, char in enumerate(text):
        piece = _ESCAPES.get(char, char)
        if size + len(piece) > limit:
            return "".join(out), len(text) - index
        out.append(piece)
        size += len(piece)
    return "".join(out), 0


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text[:SECTION_LIMIT])}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}
