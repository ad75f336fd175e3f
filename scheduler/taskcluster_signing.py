"""Hawk signatures of the service's requests to Taskcluster, made in the session the client
library is given (taskcluster_session: an in-process taskcluster-proxy), with the library's own
`ext`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

import mohawk
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
# three quarters of what signing a createTask cost (benchmarks/per_fire.py). The signature here
# is mohawk's too, given the body as a stream, which it reads and hashes and prints as a name.
class Signer:
    """Signs each request a client of the library sends (each attempt of a call) with
    `credentials`, carrying `authorized_scopes` if given; the client is given no credentials,
    so it sends the request unsigned, as through the proxy (taskcluster_session signs it)."""

    def __init__(
        self, credentials: Mapping[str, str], authorized_scopes: Sequence[str] | None = None
    ) -> None:
        self._id = credentials["clientId"]
        self._key = credentials["accessToken"]
        self._ext = hawk_ext(credentials, authorized_scopes)

    def signed(
        self, method: str, url: Any, data: str | bytes | None, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        """`headers` with the request's signature (the library sends JSON as text, or nothing)."""
        body = data.encode() if isinstance(data, str) else data
        content_type = (headers or {}).get("Content-Type", "") if body else ""
        signature = mohawk.Sender(
            credentials={"id": self._id, "key": self._key, "algorithm": "sha256"},
            ext=self._ext,
            url=str(url),
            method=method,
            content=io.BytesIO(body) if body else "",
            content_type=content_type,
        )
        return {**(headers or {}), "Authorization": signature.request_header}
