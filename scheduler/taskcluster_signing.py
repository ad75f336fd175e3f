"""Hawk signatures of the service's requests to Taskcluster, made by the session the client
library is given (an in-process taskcluster-proxy), with the library's own `ext`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import mohawk.util
from taskcluster import utils


def hawk_ext(credentials: Mapping[str, str], authorized_scopes: Sequence[str] | None) -> str:
    """The `ext` of each signature, as the client library's `makeHawkExt` writes it."""
    ext: dict[str, Any] = {}
    if certificate := credentials.get("certificate"):
        ext["certificate"] = json.loads(certificate)
    if authorized_scopes is not None:
        ext["authorizedScopes"] = list(authorized_scopes)
    encoded: bytes = utils.makeB64UrlSafe(utils.encodeStringForB64Header(utils.dumpJson(ext)))
    return encoded.decode()


# Why not the library's own signing: mohawk, which it signs with, pretty-prints every request
# body (`pprint.pformat`) into a debug message before the logger is asked whether debug is on:
# three quarters of what signing a createTask cost (benchmarks/per_fire.py). Its Sender also
# pretty-prints the URL's parts and the payload hash's parts, so the header is built here, as
# mohawk builds it, from mohawk's own MAC over the request it describes.
class SigningSession:
    """The one aiohttp session as a client of the library sees it: each request it sends (each
    attempt of a call) signed with `credentials`, carrying `authorized_scopes` if given. The
    client is given no credentials, so it sends the request unsigned, as through the proxy."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Mapping[str, str],
        authorized_scopes: Sequence[str] | None = None,
    ) -> None:
        self._session = session
        self._id = mohawk.util.prepare_header_val(credentials["clientId"])
        self._key = credentials["accessToken"]
        self._ext = hawk_ext(credentials, authorized_scopes)

    def request(
        self,
        method: str,
        url: Any,
        *,
        data: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """`aiohttp.ClientSession.request`, signed (the library sends JSON as text, or nothing)."""
        body = data.encode() if isinstance(data, str) else data
        content_type = (headers or {}).get("Content-Type", "") if body else ""
        signed = {
            **(headers or {}),
            "Authorization": self.authorization(method, str(url), body or b"", content_type),
        }
        return self._session.request(method, url, data=data, headers=signed, **options)

    def authorization(self, method: str, url: str, body: bytes, content_type: str) -> str:
        """The `Authorization` header mohawk's Sender would write, always hashing the body."""
        parts = urllib.parse.urlparse(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        resource = _Resource(
            credentials={"id": self._id, "key": self._key, "algorithm": "sha256"},
            timestamp=str(mohawk.util.utc_now()),
            nonce=mohawk.util.random_string(6).decode(),
            method=method.upper(),
            name=parts.path + (f"?{parts.query}" if parts.query else ""),
            host=parts.hostname or "",
            port=str(port),
            ext=self._ext,
        )
        kind = mohawk.util.parse_content_type(content_type).encode()
        digest = hashlib.sha256(b"hawk.1.payload\n" + kind + b"\n" + body + b"\n").digest()
        content_hash = base64.b64encode(digest).decode()
        mac = mohawk.util.calculate_mac("header", resource, content_hash).decode()
        header = (
            f'Hawk mac="{mac}", hash="{content_hash}", id="{self._id}", '
            f'ts="{resource.timestamp}", nonce="{resource.nonce}"'
        )
        return f'{header}, ext="{self._ext}"' if self._ext else header


@dataclass(frozen=True)
class _Resource:
    """What mohawk's MAC covers (its `calculate_mac` reads these attributes), without its
    Resource's eager formatting."""

    credentials: dict[str, str]
    timestamp: str
    nonce: str
    method: str
    name: str
    host: str
    port: str
    ext: str
    app: None = None
    dlg: None = None


def for_the_library(
    session: aiohttp.ClientSession, options: Mapping[str, Any]
) -> tuple[aiohttp.ClientSession | SigningSession, dict[str, Any]]:
    """The session and options to make a client of the library with, from the options it would
    be given (`credentials`, `authorizedScopes`): without credentials, as they are; with them,
    a session that signs and options without them."""
    if "credentials" not in options:
        return session, dict(options)
    signing = SigningSession(session, options["credentials"], options.get("authorizedScopes"))
    unsigned = {k: v for k, v in options.items() if k not in ("credentials", "authorizedScopes")}
    return signing, unsigned
