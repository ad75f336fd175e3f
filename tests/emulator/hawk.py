"""Hawk authentication of requests, as Taskcluster's auth service does it (signaturevalidator.js).

Loads the caller's credentials and applies `ext` (temporary-credential certificates, then
`authorizedScopes`), then verifies the signature (header or bewit) and the payload hash with
mohawk's MAC, as its Receiver would. Every call, with credentials or without, also holds `assume:anonymous`: the result is the caller's scopes plus
that role, expanded.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import re
import threading
import time
import types
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import mohawk.base
import mohawk.bewit
import mohawk.exc
import mohawk.util

from tests.emulator import scopes
from tests.emulator.api import ApiError, Identity

ANONYMOUS = "assume:anonymous"
TIMESTAMP_SKEW_SECONDS = 15 * 60
CERTIFICATE_SKEW = timedelta(minutes=5)
MAX_TEMPORARY_LIFETIME = timedelta(days=31)
_BEWIT = re.compile(r"[?&]bewit=")


@dataclass(frozen=True)
class Credentials:
    """A client's secret and scopes, as the auth service knows them."""

    client_id: str
    access_token: str
    scopes: Sequence[str]


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    authorization: str | None
    content: bytes
    content_type: str


class Authenticator:
    """Turns a signed request into an Identity, or a 401 `AuthenticationFailed`."""

    def __init__(
        self,
        lookup: Callable[[str], Credentials | None],
        expand: Callable[[Sequence[str]], list[str]],
        now: Callable[[], datetime],
    ) -> None:
        self._lookup = lookup
        self._expand = expand
        self._now = now
        self._nonces: dict[tuple[str, str, str], float] = {}
        self._nonce_lock = threading.Lock()

    def identify(self, request: Request) -> Identity:
        """The caller and its scopes; a 401 `AuthenticationFailed` if its credentials fail."""
        bewit = _BEWIT.search(request.url) is not None
        if request.authorization is not None and bewit:
            raise _failed(
                "Cannot use two authentication schemes at once this request has both bewit "
                "in querystring and 'authorization' header"
            )
        if request.authorization is not None:
            return self._identify_header(request)
        if bewit:
            return self._identify_bewit(request)
        return Identity(None, self._expand([ANONYMOUS]))

    def _identify_header(self, request: Request) -> Identity:
        assert request.authorization is not None
        header = _parsed_header(request.authorization)
        client_id = header["id"]
        ext = _decode_ext(header.get("ext"))
        # Like the auth service, settle the credentials (and what ext does to them) first.
        credentials = self._credentials(client_id, ext)
        held = self._limited(credentials.scopes, ext)
        _verify_header(header, credentials, request)
        if self._seen_nonce(client_id, header["nonce"], header["ts"]):
            raise _failed("this Hawk nonce was already used (a replayed request)")
        if abs(int(header["ts"]) - time.time()) > TIMESTAMP_SKEW_SECONDS:
            raise _failed("the Hawk timestamp is too far from the server's time")
        return Identity(client_id, held)

    def _identify_bewit(self, request: Request) -> Identity:
        bewit = Bewit.parse(request.url)
        if bewit.expiration <= time.time():
            raise _failed("the signed URL has expired")
        # A signed URL carries the signer's ext (certificate, authorizedScopes) in its bewit.
        ext = _decode_ext(bewit.ext)
        credentials = self._credentials(bewit.client_id, ext)
        held = self._limited(credentials.scopes, ext)
        if not bewit.signed_with(credentials.access_token):
            raise _failed("the signed URL's signature is wrong (or the URL was changed)")
        return Identity(credentials.client_id, held)

    def _credentials(self, client_id: str, ext: Mapping[str, Any]) -> Credentials:
        certificate = ext.get("certificate")
        if not _truthy(certificate):
            client = self._lookup(client_id)
            if client is None:
                raise _failed(f"client {client_id} does not exist, is disabled or has expired")
            return client
        return self._temporary(client_id, certificate)

    def _temporary(self, client_id: str, certificate: Any) -> Credentials:
        if not isinstance(certificate, dict):
            raise _failed("ext.certificate must be a JSON object")
        if certificate.get("version") != 1:
            raise _failed("ext.certificate.version must be 1")
        try:
            seed = str(certificate["seed"])
            start = _from_millis(certificate["start"])
            expiry = _from_millis(certificate["expiry"])
            cert_scopes = certificate["scopes"]
            signature = str(certificate["signature"])
        except (KeyError, TypeError, ValueError):
            raise _failed(
                "ext.certificate needs seed, start, expiry, scopes and signature"
            ) from None
        if not isinstance(cert_scopes, list) or not all(map(scopes.valid, cert_scopes)):
            raise _failed("ext.certificate.scopes must be an array of valid scopes")
        issuer_id = certificate.get("issuer", client_id)
        named = "issuer" in certificate
        if named and issuer_id == client_id:
            raise _failed("a named temporary credential cannot have its issuer's clientId")
        issuer = self._lookup(issuer_id)
        if issuer is None:
            raise _failed(f"the issuer of the temporary credentials, {issuer_id}, does not exist")
        if len(seed) != 44:
            raise _failed("ext.certificate.seed must be 44 characters")
        now = self._now()
        if start > now + CERTIFICATE_SKEW:
            raise _failed("the temporary credentials are not valid yet (certificate.start)")
        if expiry < now - CERTIFICATE_SKEW:
            raise _failed("the temporary credentials have expired (certificate.expiry)")
        if expiry - start > MAX_TEMPORARY_LIFETIME:
            raise _failed("temporary credentials cannot be valid for more than 31 days")
        lines = ["version:1"]
        if named:
            lines += [f"clientId:{client_id}", f"issuer:{issuer_id}"]
        lines += [
            f"seed:{seed}",
            f"start:{certificate['start']}",
            f"expiry:{certificate['expiry']}",
            "scopes:",
            *cert_scopes,
        ]
        key = issuer.access_token.encode()
        expected = base64.b64encode(
            hmac.new(key, "\n".join(lines).encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise _failed("ext.certificate has a bad signature")
        issuer_scopes = scopes.arranged(self._expand(issuer.scopes))
        if named and not scopes.satisfies(issuer_scopes, f"auth:create-client:{client_id}"):
            raise _failed(
                f"the issuer {issuer_id} lacks auth:create-client:{client_id} "
                "to name temporary credentials"
            )
        beyond = [scope for scope in cert_scopes if not scopes.satisfies(issuer_scopes, scope)]
        if beyond:
            raise _failed(
                f"the certificate grants scopes its issuer {issuer_id} does not have: "
                + ", ".join(beyond)
            )
        token = base64.urlsafe_b64encode(
            hmac.new(key, seed.encode(), hashlib.sha256).digest()
        ).decode()
        return Credentials(client_id, token.rstrip("="), cert_scopes)

    def _limited(self, granted: Sequence[str], ext: Mapping[str, Any]) -> list[str]:
        """The scopes of a request: its credentials' or, with `ext.authorizedScopes`, those.

        `assume:anonymous` is added twice, as the auth service does: before checking that the
        credentials cover `authorizedScopes` (so scopes the anonymous role grants may be
        authorized), and after the restriction (so no request loses the anonymous role).
        """
        authorized = ext.get("authorizedScopes")
        if _truthy(authorized):
            if not isinstance(authorized, list):
                raise _failed("ext.authorizedScopes must be an array")
            if not all(scopes.valid(scope) for scope in authorized):
                raise _failed("ext.authorizedScopes must be an array of valid scopes")
            held = self._expand([*granted, ANONYMOUS])
            arranged = scopes.arranged(held)
            if not all(arranged.grant(scope) for scope in authorized):
                raise _failed(_not_authorizable(held, authorized))
            granted = authorized
        return self._expand([*granted, ANONYMOUS])

    def _seen_nonce(self, sender_id: str, nonce: str, timestamp: str) -> bool:
        key = (sender_id, nonce, timestamp)
        horizon = time.time() - 2 * TIMESTAMP_SKEW_SECONDS
        with self._nonce_lock:
            if key in self._nonces:
                return True
            if len(self._nonces) > 100_000:
                self._nonces = {k: t for k, t in self._nonces.items() if t > horizon}
            self._nonces[key] = time.time()
        return False


def _parsed_header(authorization: str) -> dict[str, str]:
    """The attributes of a Hawk `Authorization` header, read as mohawk's parser reads them
    (which pretty-prints them into a debug message); a 401 if it is not one."""
    scheme, _, attributes = authorization.partition(" ")
    parsed: dict[str, str] = {}

    def take(match: re.Match[str]) -> str:
        key, value = match["key"], match["value"]
        if key not in mohawk.util.allowable_header_keys or key in parsed:
            raise mohawk.exc.HawkFail(f"unknown or repeated Hawk key {key}")
        mohawk.util.validate_header_attr(value, name=key)
        parsed[key] = value
        return ""

    try:
        if len(authorization) > mohawk.util.MAX_LENGTH or scheme.lower() != "hawk":
            raise mohawk.exc.HawkFail("not a Hawk header")
        if mohawk.util.HAWK_HEADER_RE.sub(take, attributes) != "":
            raise mohawk.exc.HawkFail("unparsed attributes")
    except mohawk.exc.HawkFail:
        raise _failed("the Authorization header is not a valid Hawk header") from None
    if not {"id", "ts", "nonce", "mac"} <= parsed.keys() or not parsed["ts"].isdigit():
        raise _failed("the Authorization header is not a valid Hawk header")
    return parsed


@dataclass(frozen=True)
class _Resource:
    """What mohawk's MAC covers, without its Resource's eager debug formatting (a pprint of the
    URL's parts; its Receiver's payload hash pretty-prints the whole body too)."""

    credentials: dict[str, str]
    timestamp: str
    nonce: str
    method: str
    name: str
    host: str
    port: str
    ext: str | None
    app: str | None
    dlg: str | None


def _verify_header(header: dict[str, str], credentials: Credentials, request: Request) -> None:
    """Check a request's Hawk MAC, then its payload hash, as mohawk's Receiver does (with
    untrusted content accepted: a request may leave its payload unhashed)."""
    url = urllib.parse.urlparse(request.url)
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    resource = _Resource(
        credentials={
            "id": credentials.client_id,
            "key": credentials.access_token,
            "algorithm": "sha256",
        },
        timestamp=header["ts"],
        nonce=header["nonce"],
        method=request.method.upper(),
        name=url.path + (f"?{url.query}" if url.query else ""),
        host=url.hostname or "",
        port=str(port),
        ext=header.get("ext"),
        app=header.get("app"),
        dlg=header.get("dlg"),
    )
    mac = mohawk.util.calculate_mac("header", resource, header.get("hash", ""))
    if not hmac.compare_digest(mac, header["mac"].encode()):
        raise _failed(
            f"the request signature of client {credentials.client_id} is wrong "
            "(wrong accessToken, or the request was changed in transit)"
        )
    if "hash" in header and not hmac.compare_digest(
        _payload_hash(request.content, request.content_type), header["hash"].encode()
    ):
        raise _failed(
            f"the payload hash of client {credentials.client_id}'s request is wrong "
            "(the body or its content type was changed in transit)"
        )


def _payload_hash(content: bytes, content_type: str) -> bytes:
    kind = mohawk.util.parse_content_type(content_type)
    digest = hashlib.sha256(b"hawk.1.payload\n" + kind.encode() + b"\n" + content + b"\n")
    return base64.b64encode(digest.digest())


@dataclass(frozen=True)
class Bewit:
    """The signature of a signed URL, read as the `hawk` library's uri.authenticate reads it.

    Clients send it as unpadded base64url, which mohawk's own bewit parser does not accept.
    """

    client_id: str
    expiration: int
    mac: str
    ext: str
    url: str  # the URL without its bewit: what was signed

    @classmethod
    def parse(cls, url: str) -> Bewit:
        match = _BEWIT_URL.fullmatch(url)
        if match is None or not re.fullmatch(r"[\w-]*", match["bewit"], re.ASCII):
            raise _failed("the signed URL's bewit is not valid")
        try:
            padded = match["bewit"] + "=" * (-len(match["bewit"]) % 4)
            parts = base64.urlsafe_b64decode(padded).decode("ascii").split("\\")
            client_id, expiration, mac, ext = parts
            return cls(client_id, int(expiration), mac, ext, _without_bewit(match))
        except (ValueError, binascii.Error):
            raise _failed("the signed URL's bewit is not valid") from None

    def signed_with(self, key: str) -> bool:
        resource = mohawk.base.Resource(
            credentials={"id": self.client_id, "key": key, "algorithm": "sha256"},
            method="GET",
            url=self.url,
            timestamp=str(self.expiration),
            nonce="",
            ext=self.ext,
        )
        expected = mohawk.util.calculate_mac("bewit", resource, None).decode("ascii")
        return hmac.compare_digest(expected, self.mac)


# hawk's own pattern: the URL, `?bewit=` or `&bewit=`, and what follows it.
_BEWIT_URL = re.compile(
    r"(?P<before>.*)(?P<separator>[?&])bewit=(?P<bewit>[^&]*)(?:&(?P<after>.+))?", re.DOTALL
)


def _without_bewit(match: re.Match[str]) -> str:
    after = match["after"]
    return match["before"] + (match["separator"] + after if after else "")


def signed_url(url: str, credentials: Credentials, lifetime_seconds: int = 15 * 60) -> str:
    """`url` with a bewit, as a service signs a redirect for a caller without credentials."""
    resource = mohawk.base.Resource(
        credentials={
            "id": credentials.client_id,
            "key": credentials.access_token,
            "algorithm": "sha256",
        },
        method="GET",
        url=url,
        timestamp=int(time.time()) + lifetime_seconds,
        nonce="",
        ext="",
    )
    bewit = mohawk.bewit.get_bewit(resource).rstrip("=")
    return f"{url}{'&' if '?' in url else '?'}bewit={bewit}"


def _decode_ext(ext: str | None) -> Mapping[str, Any]:
    return _decoded_ext(ext) if ext else {}


@functools.lru_cache(maxsize=1024)
def _decoded_ext(ext: str) -> Mapping[str, Any]:
    """A client sends the same ext (its authorizedScopes) with every call: decoded once, and
    read-only since it is shared."""
    try:
        padded = ext + "=" * (-len(ext) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")))
    except (ValueError, binascii.Error):
        raise _failed("the Hawk ext is not base64-encoded JSON") from None
    if not isinstance(decoded, dict):
        raise _failed("the Hawk ext must encode a JSON object")
    return types.MappingProxyType(decoded)


def _truthy(value: Any) -> bool:
    """JavaScript's truthiness, which the auth service applies to ext's members: null, false,
    0 and "" are as good as absent, while [] and {} count (an empty authorizedScopes restricts
    to nothing)."""
    return value is not None and value is not False and value != 0 and value != ""


def _from_millis(value: Any) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("not a number")
    return datetime.fromtimestamp(value / 1000, UTC)


def _not_authorizable(held: Sequence[str], authorized: Sequence[str]) -> str:
    """The auth service's words when credentials do not cover their `authorizedScopes`."""
    return "\n".join(
        [
            "Supplied credentials do not satisfy authorizedScopes; credentials have scopes:",
            "",
            "```",
            *held,
            "```",
            "",
            "authorizedScopes are:",
            "",
            "```",
            *authorized,
            "```",
        ]
    )


def _failed(message: str) -> ApiError:
    return ApiError("AuthenticationFailed", message)
