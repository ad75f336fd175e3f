"""Keeping secrets out of what people read: URL credentials, known secrets, secret-looking text.

Logs, the ledger, Slack, Sentry and error messages show text through `scrub` (or URLs through
`redact`); the secrets the service was configured with are registered with `remember_secret`.
"""

from __future__ import annotations

import functools
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

MASK = "***"

# Shorter values would mask ordinary words wherever they appear; no real credential is that short.
MIN_SECRET_LENGTH = 8

# Names (matched case-insensitively, as the end of a key: `slack_token`, `accessToken`,
# `SENTRY_DSN`) whose values are secrets whatever they look like.
SECRET_KEY_NAMES = (
    "access_token",
    "accessToken",
    "token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "secret_key",
    "api_key",
    "apikey",
    "private_key",
    "sentry_key",
    "dsn",
    "authorization",
    "credentials",
    "certificate",
    "webhook_url",
)

# Userinfo of any `scheme://userinfo@host`, credentials or a login name: what identifies a
# repository leaves out.
_USERINFO = re.compile(r"(?<=://)[^/\s]*@")
# The same, in a URL or in text a tool printed, with its scheme. Greedy up to the last `@`
# before the path, so an unescaped `@` in a password does not leave half of it.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)?://(?P<userinfo>[^/\s]*)@")
# Schemes whose user name alone is a login name (ssh keys, a database's own password) rather
# than a credential. Over http(s) a lone user is a token (`https://<token>@github.com`, a
# Sentry DSN's key), so `git+https://` and the like stay masked.
_LOGIN_SCHEMES = frozenset({"ssh", "sftp", "git", "svn", "postgres", "postgresql", "mysql"})
_TOKEN_SCHEMES = frozenset({"http", "https"})
# `user:password@host` without a scheme, as text derived from a URL has it
# (`assume:repo:bot:pass@github.com/org/repo`). The password may hold `:` and `@`, so the match
# runs from the first word of the colon-joined run to the last `@` before a host name; what it
# masks beyond the credentials is at worst a prefix like `assume:repo:`.
_BARE_USERINFO = re.compile(
    r"(?<![A-Za-z0-9._~%!$&*+,;=:/-])[A-Za-z0-9._~%!$&*+,;=-]+:[^\s/\"'<>`]+@"
    r"(?=(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+|localhost\b|\[[0-9A-Fa-f:.]+\])"
)

_KEYWORD = (
    r"(?:access[_-]?token|token|passw(?:or)?d|secret|secret[_-]?(?:access[_-]?)?key"
    r"|api[_-]?key|private[_-]?key|sentry[_-]?key|dsn|authorization|credentials|certificate"
    r"|webhook[_-]?url)"
)
# A key is a word ending in a keyword: the prefix lets `slack_token` and `SENTRY_DSN` in while
# `tokens` or `token_count` (the keyword not at the end) stay out.
_KEY = rf"[A-Za-z0-9_.-]*?{_KEYWORD}"
_SECRET_KEY = re.compile(rf"{_KEY}", re.IGNORECASE)
_KEY_START = r"(?<![A-Za-z0-9_.-])"
_QUOTED = r"\"(?:\\.|[^\"\\])*\"|'(?:\\.|[^'\\])*'"

# `"token": "..."` (JSON) and `'token': '...'` (a Python repr, bytes too): one quoted string.
_QUOTED_PAIR = re.compile(
    rf"(?P<kq>[\"'])(?P<key>{_KEY})(?P=kq)(?P<sep>\s*[:=]\s*)(?P<vb>[bB]?)(?P<vq>[\"'])"
    rf"(?:\\.|(?!(?P=vq))[^\\])*(?P=vq)",
    re.IGNORECASE,
)
# `Authorization: Hawk id="...", mac="..."`: a header value runs to the end of the line.
# Inside quotes (`-H "Authorization: ..."`) it stops at the closing quote.
_AUTHORIZATION_HEADER = re.compile(
    rf"(?P<open>[\"'])?{_KEY_START}(?P<key>[A-Za-z0-9_.-]*?authorization)(?P<sep>\s*[:=]\s*)"
    rf"(?![\s\"'])(?(open)(?:(?!(?P=open))[^\r\n])+|[^\r\n]+)",
    re.IGNORECASE,
)
# `token=...`, `password: ...`, `api_key="..."`: one word, or one quoted string. A value stops
# at what ends a query parameter or a repr field so that what follows it stays readable.
_PAIR = re.compile(
    rf"{_KEY_START}(?P<key>{_KEY})(?P<sep>\s*[:=]\s*)(?:{_QUOTED}|[^\s&,;\"')\]}}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(?P<scheme>Bearer)\s+[A-Za-z0-9._~+/-]+=*", re.IGNORECASE)
# Bot, user, app, refresh and configuration tokens (`xoxe.xoxp-1-...` included).
_SLACK_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])(?P<prefix>(?:xox[abeoprs]\.)?(?:xox[abeoprs]|xapp)-)[A-Za-z0-9-]+"
)
# The path of an incoming webhook (or workflow trigger) is the credential; the host is not.
_SLACK_WEBHOOK = re.compile(
    r"(?P<prefix>hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+"
)
# Taskcluster's access tokens are two slugids: 44 characters of base64url standing alone. Both
# cases are required so that long lowercase names (`release-notify-promote-...`) survive; a
# random token lacks either with a probability of about 1e-10.
_TASKCLUSTER_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]{0,43}[A-Z])(?=[A-Za-z0-9_-]{0,43}[a-z])"
    r"[A-Za-z0-9_-]{44}(?![A-Za-z0-9_-])"
)


def _mask_userinfo(match: re.Match[str]) -> str:
    """`scheme://***@`, unless the userinfo is only a login name (`ssh://git@host`)."""
    userinfo, scheme = match["userinfo"], match["scheme"] or ""
    parts = set(scheme.lower().split("+"))
    login_only = ":" not in userinfo and parts & _LOGIN_SCHEMES and not parts & _TOKEN_SCHEMES
    if not userinfo or login_only:
        return match[0]
    return f"{scheme}://{MASK}@"


def _keep_key(match: re.Match[str]) -> str:
    return f"{match['key']}{match['sep']}{MASK}"


def _keep_header(match: re.Match[str]) -> str:
    return f"{match['open'] or ''}{_keep_key(match)}"


def _keep_quoted_key(match: re.Match[str]) -> str:
    quote, value_quote = match["kq"], match["vb"] + match["vq"]
    return f"{quote}{match['key']}{quote}{match['sep']}{value_quote}{MASK}{match['vq']}"


# What a rule needs in the text before its pattern can match, looked for first because that is
# far cheaper than the pattern on a long text (a page): where it is absent the pattern cannot
# match, so skipping the rule masks the same.
_KEYED = re.compile(rf"{_KEYWORD}[\"']?\s*[:=]")
_SCHEMED_USERINFO = re.compile(r"://[^/\s]*@")
# The runs `_BARE_USERINFO`'s password part cannot leave (split in linear time; a search for
# `:[^...]+@` backtracks quadratically over a long run of colons).
_USERINFO_BREAKS = re.compile(r"[\s/\"'<>`]+")
# The characters other than A-Z that a case-insensitive pattern takes for an ASCII letter
# (tests/test_redaction.py checks the list against every code point).
_ASCII_TWINS = (("\u0130", "i"), ("\u0131", "i"), ("\u017f", "s"), ("\u212a", "k"))
# The bytes a Taskcluster token is made of as "a", every other byte (UTF-8's too) as " ".
_TOKEN_BYTES = bytes(
    ord("a") if chr(byte).isascii() and (chr(byte).isalnum() or chr(byte) in "_-") else ord(" ")
    for byte in range(256)
)


@functools.lru_cache(maxsize=2)
def _folded(text: str) -> str:
    """`text` with every character a case-insensitive pattern matches to an ASCII letter as
    that letter in lowercase (other characters may change too: a hint then only runs a rule)."""
    if not text.isascii():
        for twin, letter in _ASCII_TWINS:
            text = text.replace(twin, letter)
    return text.lower()


def _keyed(text: str) -> bool:
    """Whether a secret's key word is followed by `:` or `=` (maybe after a quote)."""
    return _KEYED.search(_folded(text)) is not None


def _schemed_userinfo(text: str) -> bool:
    return _SCHEMED_USERINFO.search(text) is not None


def _colon_userinfo(text: str) -> bool:
    """Whether a run without a break has a `:`, then at least one character, then `@`."""
    if ":" not in text or "@" not in text:
        return False
    return any(-1 < run.find(":") < run.rfind("@") - 1 for run in _USERINFO_BREAKS.split(text))


def _bearer(text: str) -> bool:
    return "bearer" in _folded(text)


def _slack_prefix(text: str) -> bool:
    return "xox" in text or "xapp-" in text


def _token_run(text: str) -> bool:
    """Whether 44 characters in a row are letters, digits, `_` or `-`, as a token's are."""
    return b"a" * 44 in text.encode("utf-8", "surrogatepass").translate(_TOKEN_BYTES)


class _Rule(NamedTuple):
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    hint: Callable[[str], bool] | None  # None: always run the pattern


# Most specific first: a quoted pair or a header keeps its key and structure, and what is masked
# once is `***`, which none of the later patterns matches again.
_RULES = (
    _Rule(_QUOTED_PAIR, _keep_quoted_key, _keyed),
    _Rule(_AUTHORIZATION_HEADER, _keep_header, _keyed),
    _Rule(_SLACK_WEBHOOK, rf"\g<prefix>{MASK}", None),
    _Rule(_URL_USERINFO, _mask_userinfo, _schemed_userinfo),
    _Rule(_BARE_USERINFO, f"{MASK}@", _colon_userinfo),
    _Rule(_BEARER, rf"\g<scheme> {MASK}", _bearer),
    _Rule(_PAIR, _keep_key, _keyed),
    _Rule(_SLACK_TOKEN, rf"\g<prefix>{MASK}", _slack_prefix),
    _Rule(_TASKCLUSTER_TOKEN, MASK, _token_run),
)


class _Registry:
    """The secret values this process was given, as one alternation rebuilt when one is added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            before = len(self._values)
            self._values.update(values)
            if len(self._values) != before:
                # Longest first, so that a secret containing another is masked whole.
                ordered = sorted(self._values, key=lambda value: (-len(value), value))
                self._pattern = re.compile("|".join(map(re.escape, ordered)))

    @property
    def pattern(self) -> re.Pattern[str] | None:
        """The values as one pattern: a new one each time a value is added."""
        return self._pattern


_REMEMBERED = _Registry()


def remember_secret(value: str) -> None:
    """From now on, mask `value` (and its URL-encoded form) wherever `scrub` sees it."""
    if len(value) < MIN_SECRET_LENGTH:
        return
    # A token in a query string or a URL path arrives percent-encoded.
    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    _REMEMBERED.add(forms)


def remember_secret_variables(environ: Mapping[str, str]) -> None:
    """Remember the value of every variable of `environ` whose name says it holds a secret
    (`*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `*_DSN`, ...)."""
    for name, value in environ.items():
        if is_secret_key(name) or name.endswith("_WEBHOOK_URL"):
            remember_secret(value)


@functools.lru_cache(maxsize=1024)  # pages and payloads ask about the same few names
def is_secret_key(name: str) -> bool:
    """Whether a field called `name` holds a secret whatever its value looks like."""
    return _SECRET_KEY.fullmatch(name) is not None


def scrub_remembered(text: str) -> str:
    """`text` with every remembered secret as `***`: exact values only, so markup around them
    (a page's HTML, say) keeps its shape."""
    remembered = _REMEMBERED.pattern
    return text if remembered is None else remembered.sub(MASK, text)


def scrub(text: str) -> str:
    """`text` with every remembered secret and everything that looks like a secret as `***`."""
    remembered = _REMEMBERED.pattern  # One read: a concurrent `add` swaps in a new pattern.
    if len(text) <= _SHORT:
        return _scrub_short(text, remembered)
    return _scrub(text, remembered)


# A page masks thousands of short strings, most of them many times (names, states, ids): those
# are remembered with the secrets' pattern they were masked with, so a new secret masks anew.
_SHORT = 256


@functools.lru_cache(maxsize=4096)
def _scrub_short(text: str, remembered: re.Pattern[str] | None) -> str:
    return _scrub(text, remembered)


# Digits and the punctuation of ISO 8601 times (a slot, a date, a count): every rule needs some
# other character (a letter of a key word or a token, `@`, `/`, a quote), so none is run over
# text made only of these (tests/test_redaction.py holds them to it); remembered secrets are.
_INERT = re.compile(r"[0-9:.+TZ-]*")


def _scrub(text: str, remembered: re.Pattern[str] | None) -> str:
    if remembered is not None:
        text = remembered.sub(MASK, text)
    if _INERT.fullmatch(text):
        return text
    found: dict[Callable[[str], bool], bool] = {}  # the hints looked for in the text as it is
    for pattern, replacement, hint in _RULES:
        if hint is not None:
            if hint not in found:
                found[hint] = hint(text)
            if not found[hint]:
                continue
        masked = pattern.sub(replacement, text)
        if masked is not text:  # a new text: what was found in the old one no longer holds
            text = masked
            found.clear()
    return text


def scrub_data(value: Any) -> Any:
    """A copy of `value` with `scrub` applied to every string in its dicts, lists and tuples.

    The value of a key that names a secret is masked whole, unless it is None, a boolean or
    `SET`, which say only whether the secret is set.
    """
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {
            scrub_data(key): scrub_field(key, item) if isinstance(key, str) else scrub_data(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [scrub_data(item) for item in value]
    if isinstance(value, tuple):
        return tuple(scrub_data(item) for item in value)
    return value


def scrub_field(key: str, value: Any) -> Any:
    """The value of a dict's `key` as `scrub_data` masks it: whole if the key names a secret
    (see `scrub_data`), else as `scrub_data` masks any value."""
    if is_secret_key(key) and not _says_nothing(value):
        return MASK
    return scrub_data(value)


# What a masked view (the resolved configuration) shows for a secret that is set.
SET = "<set>"


def _says_nothing(value: Any) -> bool:
    return value is None or isinstance(value, bool) or value == SET


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it (a token, or user and password, and a
    query parameter that names a secret, `?password=...`) as `***`; a login name alone
    (`ssh://git@host`, `git@host:org/repo`) stays."""
    text = _BARE_USERINFO.sub(f"{MASK}@", _URL_USERINFO.sub(_mask_userinfo, text))
    return _PAIR.sub(_keep_key, text)


def without_userinfo(url: str) -> str:
    """`url` with no userinfo at all: what identifies a repository, whatever its credentials."""
    return _USERINFO.sub("", url)
