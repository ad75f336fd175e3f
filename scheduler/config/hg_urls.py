"""What a Mercurial project's URL must be: read over HTTPS (json-pushes, raw-file), or plain
HTTP from this machine only. Pure."""

from __future__ import annotations

from urllib.parse import urlsplit

from scheduler.common.hosts import is_loopback


def hg_url_problem(url: str) -> str | None:
    """Why `url` cannot be read as a Mercurial repository, or None."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname and is_loopback(parts.hostname):
        return None
    return (
        "is not an https:// URL; a Mercurial repository is read over HTTPS (its json-pushes "
        "and raw-file), or over http:// from this machine only (127.0.0.1, localhost)"
    )
