"""Keeping secrets out of what people read: the one place that hides credentials in URLs.

Logs, the ledger, messages and pages show URLs through `redact`, never as configured.
"""

from __future__ import annotations

import re

# Userinfo of any `scheme://user:password@host` in a URL or in text a tool printed. Greedy up
# to the last `@` before the path, so an unescaped `@` in a password does not leave half of it.
_USERINFO = re.compile(r"(?<=://)[^/\s]*@")


def redact(text: str) -> str:
    """`text` with the userinfo of every URL in it (a token, or user and password) as `***`."""
    return _USERINFO.sub("***@", text)


def without_userinfo(url: str) -> str:
    """`url` with no userinfo at all: what identifies a repository, whatever its credentials."""
    return _USERINFO.sub("", url)
