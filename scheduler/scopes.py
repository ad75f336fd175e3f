"""Taskcluster scopes as the service reasons about them: whether a set satisfies a scope, a
project's default scopes, and the role a missing scope is granted in. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from taskcluster.utils import scopeMatch

ASSUME = "assume:"
# git@host:path and ssh://[user@]host[:port]/path, as well as http(s)://host/path.
_SCP_LIKE = re.compile(r"^[\w.-]+@(?P<host>[^:/]+):(?P<path>.+)$")
_URL = re.compile(r"^(?:https?|ssh)://(?:[^@/]+@)?(?P<host>[^:/]+)(?::\d+)?/(?P<path>.+)$")


def satisfies(granted: Iterable[str], scope: str) -> bool:
    """Whether `granted` (expanded) holds `scope`, a trailing `*` matching any suffix."""
    return bool(scopeMatch(list(granted), [[scope]]))


def repository_path(url: str) -> str | None:
    """`host/path` of a repository URL, as Taskcluster names repositories in roles
    (`github.com/mozilla-mobile/fenix`, `hg.mozilla.org/mozilla-central`); None for a URL
    that names no host (a local path or `file://`)."""
    found = _URL.match(url) or _SCP_LIKE.match(url)
    if found is None:
        return None
    path = found["path"].strip("/").removesuffix(".git")
    return f"{found['host'].lower()}/{path}" if path else None


def default_project_scopes(repository_url: str) -> tuple[str, ...] | None:
    """What a project may do unless configured otherwise: assume its repository's cron role,
    `repo:<host>/<path>:cron:*`, as Firefox CI names the role of a repository's cron tasks."""
    path = repository_path(repository_url)
    return None if path is None else (f"{ASSUME}repo:{path}:cron:*",)


def roles_of(scopes: Sequence[str]) -> tuple[str, ...]:
    """The roles `scopes` assume: where a deployment grants what a project may do."""
    return tuple(scope.removeprefix(ASSUME) for scope in scopes if scope.startswith(ASSUME))


def where_to_grant(scopes: Sequence[str], *, how_many: int = 1, what: str | None = None) -> str:
    """Where scopes that the holder of `scopes` lacks are to be granted, in words; `what`
    names the scope to grant, if not the missing ones themselves."""
    them = what or ("it" if how_many == 1 else "them")
    roles = roles_of(scopes)
    if roles:
        return f"grant {them} to role {roles[0]}"
    return f"add {them} to the project's `scopes` in the service configuration"


def lasting_form(scope: str, changing: Iterable[str]) -> str | None:
    """`scope` cut before the first of `changing` in it (a revision, a task id: parts that
    differ from push to push) and starred, which a role can hold for good; None if no part
    of it changes."""
    cuts = [scope.find(part) for part in changing if part and part in scope]
    return scope[: min(cuts)] + "*" if cuts else None
