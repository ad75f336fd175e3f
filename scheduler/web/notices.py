"""What a page says after an act sent the browser to it: a fixed sentence per code, named in the
query (`?notice=paused`), so that no link can make a page say something else.
"""

from __future__ import annotations

from urllib.parse import quote

NOTICES = {
    "signed-in": "Signed in.",
    "signed-out": "Signed out.",
    "fired": "Fired: this is the fire you made.",
    "fired-dry-run": "Dry run: the task was rendered and recorded here, not created.",
    "paused": "Paused: it fires no more until resumed (or until the time given).",
    "resumed": "Resumed: it fires again as its schedule says.",
    "still-paused": "Resumed, but another pause still holds it (see Pauses).",
    "not-paused": "Nothing was paused there: nothing changed.",
    "action": "Action triggered: its task is in the newest entry below.",
    "action-dry-run": "Dry run: the action's hook payload was rendered, nothing triggered.",
    "remediated": "Expiry scan done: what it found and did is in the newest entry below.",
    "hook-fired": "Hook fired: its task is in the newest entry below.",
    "hook-dry-run": "Dry run: the payload matches the hook's triggerSchema; nothing triggered.",
}


def noticed(path: str, notice: str) -> str:
    """The URL of the page at `path` saying the notice `notice`."""
    if notice not in NOTICES:
        raise ValueError(f"no notice {notice!r}")
    return f"{path}?notice={notice}"


def project_path(project: str) -> str:
    return f"/projects/{quote(project, safe='')}"
