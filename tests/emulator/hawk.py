"""Hawk authentication of requests, as Taskcluster's auth service does it.

Verifies the signature (header or bewit) with mohawk, then applies `ext`: temporary-credential
certificates and `authorizedScopes`. The result is the caller's expanded scopes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import mohawk
import mohawk.base
import mohawk.bewit
import mohawk.exc
import mohawk.util

from tests.emulator import scopes
from tests.emulator.api import ApiError, Identity

TIMESTAMP_SKEW_SECONDS = 15 * 60
CERTIFICATE_SKEW = timedelta(minutes=5)
MAX_TEMPORARY_LIFETIME = timedelta(days=31)


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
        if request.authorization is None:
            if "bewit=" in request.url:
                return self._identify_bewit(request)
            return Identity(None, self._expand(["assume:anonymous"]))
        try:
            header = mohawk.util.parse_authorization_header(request.authorization)
        except mohawk.exc.HawkFail:
            raise _failed("the Authorization header is not a valid Hawk header") from None
        client_id = header.get("id", "")
        ext = _decode_ext(header.get("ext"))
        credentials = self._credentials(client_id, ext)
        try:
            mohawk.Receiver(
                lambda _id: {
                    "id": client_id,
                    "key": credentials.access_token,
                    "algorithm": "sha256",
                },
                request.authorization,
                request.url,
                request.method,
                content=request.content,
                content_type=request.content_type,
                seen_nonce=self._seen_nonce,
                timestamp_skew_in_seconds=TIMESTAMP_SKEW_SECONDS,
                accept_untrusted_content=True,
            )
        except mohawk.exc.TokenExpired:
            raise _failed("the Hawk timestamp is too far from the server's time") from None
        except mohawk.exc.AlreadyProcessed:
            raise _failed("this Hawk nonce was already used (a replayed request)") from None
        except mohawk.exc.HawkFail:
            raise _failed(
                f"the request signature of client {client_id} is wrong "
                "(wrong accessToken, or the request was changed in transit)"
            ) from None
        return Identity(client_id, self._authorized(client_id, credentials.scopes, ext))

    def _identify_bewit(self, request: Request) -> Identity:
        found: dict[str, Credentials] = {}

        def lookup(client_id: str) -> dict[str, str]:
            found["credentials"] = self._credentials(client_id, {})
            return {
                "id": client_id,
                "key": found["credentials"].access_token,
                "algorithm": "sha256",
            }

        try:
            mohawk.bewit.check_bewit(request.url, lookup, now=time.time())
        except ApiError:
            raise
        except mohawk.exc.TokenExpired:
            raise _failed("the signed URL has expired") from None
        except (mohawk.exc.HawkFail, ValueError, binascii.Error):
            raise _failed("the signed URL's bewit is not valid") from None
        credentials = found["credentials"]
        return Identity(credentials.client_id, self._expand(credentials.scopes))

    def _credentials(self, client_id: str, ext: dict[str, Any]) -> Credentials:
        certificate = ext.get("certificate")
        if certificate is None:
            client = self._lookup(client_id)
            if client is None:
                raise _failed(f"client {client_id} does not exist, is disabled or has expired")
            return client
        return self._temporary(client_id, certificate)

    def _temporary(self, client_id: str, certificate: Any) -> Credentials:
        if isinstance(certificate, str):
            try:
                certificate = json.loads(certificate)
            except ValueError:
                raise _failed("ext.certificate is not valid JSON") from None
        if not isinstance(certificate, dict) or certificate.get("version") != 1:
            raise _failed("ext.certificate must be an object with version 1")
        try:
            seed = str(certificate["seed"])
            start = _from_millis(certificate["start"])
            expiry = _from_millis(certificate["expiry"])
            cert_scopes = [str(scope) for scope in certificate["scopes"]]
            signature = str(certificate["signature"])
        except (KeyError, TypeError, ValueError):
            raise _failed(
                "ext.certificate needs seed, start, expiry, scopes and signature"
            ) from None
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
        issuer_scopes = self._expand(issuer.scopes)
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

    def _authorized(self, client_id: str, granted: Sequence[str], ext: dict[str, Any]) -> list[str]:
        expanded = self._expand(granted)
        if "authorizedScopes" not in ext:
            return expanded
        authorized = ext["authorizedScopes"]
        if not isinstance(authorized, list) or not all(isinstance(s, str) for s in authorized):
            raise _failed("ext.authorizedScopes must be a list of strings")
        beyond = [scope for scope in authorized if not scopes.satisfies(expanded, scope)]
        if beyond:
            raise _failed(
                f"ext.authorizedScopes oversteps the scopes of client {client_id}: "
                + ", ".join(beyond)
            )
        return self._expand(authorized)

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


def _decode_ext(ext: str | None) -> dict[str, Any]:
    if not ext:
        return {}
    try:
        padded = ext + "=" * (-len(ext) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")))
    except (ValueError, binascii.Error):
        raise _failed("the Hawk ext is not base64-encoded JSON") from None
    if not isinstance(decoded, dict):
        raise _failed("the Hawk ext must encode a JSON object")
    return decoded


def _from_millis(value: Any) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError("not a number")
    return datetime.fromtimestamp(value / 1000, UTC)


def _failed(message: str) -> ApiError:
    return ApiError("AuthenticationFailed", message)
