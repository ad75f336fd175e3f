"""The URLs a configuration names, judged before anything uses them: the Taskcluster root URL, a
project's repository (`repository_problem`: the one scheme check), the ledger's (no password).
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from scheduler.common.hosts import is_loopback
from scheduler.common.redaction import redact, without_userinfo
from scheduler.common.schema_messages import shown
from scheduler.scopes import default_project_scopes

# libpq reads PGPASSWORD itself (the deployments set it); ledger-password-file is read here and
# given to the driver in the URL, as a mounted secret's file is for Slack and Sentry.
SET_LEDGER_PASSWORD = "set PGPASSWORD (libpq reads it), or ledger-password-file"
# A repository as git reads it and the queue lets a task name it (`metadata.source` must
# match ^(https?://|ssh://|git@)): https and ssh URLs, and `user@host:path` as scp writes it.
# A `file://` repository names no host: it is for a project with `scopes` (and tasks that do
# not name it as their source).
REPOSITORY_SCHEMES = ("https", "ssh", "file")
_SCP_LIKE = re.compile(r"^[\w.-]+@[^:/]+:.+$")
EXAMPLE_ROOT_URL = "https://firefox-ci-tc.services.mozilla.com"


def root_url_problem(url: str) -> str | None:
    """Why `url` is no Taskcluster root URL (an http(s) URL of a host, nothing after its path),
    or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"is not a URL; give the deployment's root URL, like {EXAMPLE_ROOT_URL}"
    if parts.query or parts.fragment or parts.username or parts.password:
        return f"is not a root URL (no query, fragment or user); like {EXAMPLE_ROOT_URL}"
    return None


def repository_problem(url: str, repository_type: str = "git") -> str | None:
    """Why a project's `repository` (or `fetch-from`) cannot be one (a scheme git or Mercurial
    would not read, or tasks could not name), or None. The one check of a repository's scheme."""
    if repository_type == "hg":
        return _hg_problem(url)
    if _SCP_LIKE.match(url):
        return None
    scheme = urlsplit(url).scheme.lower()
    if scheme in REPOSITORY_SCHEMES and (scheme == "file" or urlsplit(url).hostname):
        return None
    if _is_local_http(url):
        return None
    allowed = "https://host/path, ssh://[user@]host/path, user@host:path or file:///path"
    if scheme == "http":
        return (
            f"is plain http, which anyone on the way can change; use https ({allowed}), or "
            "http:// from this machine only (127.0.0.1, localhost)"
        )
    return f"is not a repository URL git reads here; give {allowed}"


def _hg_problem(url: str) -> str | None:
    """A Mercurial repository is read over HTTPS (json-pushes, raw-file), or over plain HTTP
    from this machine only (a local `hg serve`), where nothing travels the network."""
    parts = urlsplit(url)
    if (parts.scheme == "https" and parts.hostname) or _is_local_http(url):
        return None
    return (
        "is not an https:// URL; a Mercurial repository is read over HTTPS (its json-pushes "
        "and raw-file), or over http:// from this machine only (127.0.0.1, localhost)"
    )


def _is_local_http(url: str) -> bool:
    """Plain HTTP to this machine (a local `hg serve` or `git http-backend`): nothing on the
    way to change what it answers."""
    parts = urlsplit(url)
    return parts.scheme == "http" and bool(parts.hostname) and is_loopback(parts.hostname or "")


def project_repository_problem(
    project: str, repository: str, has_scopes: bool, repository_type: str = "git"
) -> str | None:
    """What is wrong with the project's `repository`, the URL tasks name: a scheme git would
    not read, credentials in it, or (without `scopes`) no host to name its role by."""
    if redact(repository) != repository:
        # Tasks name this URL (task definitions are public), and the ledger, the API and
        # logs show it; credentials go where only git reads them.
        plain = without_userinfo(repository)
        return (
            f"project {shown(project)}: repository {shown(redact(repository))} holds "
            "credentials, and tasks name this URL in public; give it without them"
            + (f" ({shown(plain)})" if redact(plain) == plain else "")
            + " and put the URL with credentials in fetch-from, which only git reads"
        )
    unusable = repository_problem(repository, repository_type)
    if unusable:
        return f"project {shown(project)}: repository {shown(repository)} {unusable}"
    if not has_scopes and default_project_scopes(repository) is None:
        return (
            f"repository {shown(repository)} names no host, so the project's "
            "scopes cannot be assume:repo:<host>/<path>:cron:*; give the URL tasks should "
            "name (https://...) and read a local clone with fetch-from, or set scopes"
        )
    return None


def ledger_password_problem(url: str) -> str | None:
    """Why the ledger URL must not be written so: a password inline (the file is read by
    many and shown in places), or None."""
    if urlsplit(url).password is None:
        return None
    return (
        f"the ledger URL {shown(redact(url))} holds a password, and secrets never go in the "
        f"configuration file; write it without the password and {SET_LEDGER_PASSWORD}"
    )


def with_password(url: str, password: str) -> str | None:
    """`url` (a server's database URL naming its user) with `password` in it, for the driver;
    None when it names no user to give the password for."""
    parts = urlsplit(url)
    if not parts.username or parts.hostname is None:
        return None
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user}:{quote(password, safe='')}@{host}"
    return parts._replace(netloc=netloc).geturl()
