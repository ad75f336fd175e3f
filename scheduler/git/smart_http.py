"""A branch's head read over git's smart HTTP, without a process: protocol v2's `ls-refs`
through the engine's one HTTP session, or the refs a v0/v1 server lists in its advertisement.

The framing is `pkt_line.py`'s; `source.GitSource` decides which URLs come here.
"""

from __future__ import annotations

from yarl import URL

from scheduler.git.pkt_line import (
    Advertisement,
    ls_refs_request,
    parse_advertisement,
    parse_ls_refs,
)
from scheduler.git.process import SourceError, scrub
from scheduler.git.remote_http import Answer, RemoteHttp, said_by

ADVERTISEMENT_TYPE = "application/x-git-upload-pack-advertisement"
RESULT_TYPE = "application/x-git-upload-pack-result"
REQUEST_TYPE = "application/x-git-upload-pack-request"
_V2 = {"Git-Protocol": "version=2"}
# A v0/v1 advertisement lists every ref of the repository; a v2 answer only those asked for.
_LIMIT = 64 * 1024 * 1024
_INFO_REFS = "/info/refs"


class NotSmartError(Exception):
    """The server answered `info/refs` as only git itself reads it: as a dumb HTTP server
    does, or from another host it redirected to."""


class SmartHttpHeads:
    """Reads branch heads over `http`. A v2 server's capabilities are remembered by repository,
    so an unchanged head costs one request; any failure of that request forgets them."""

    def __init__(self, http: RemoteHttp) -> None:
        self.http = http
        self._capabilities: dict[str, tuple[URL, frozenset[str]]] = {}

    async def head(self, url: str, ref: str, *, failure: str) -> str | None:
        """The object id `ref` (a full ref name) points at, None if the server lists no such ref.

        Raises NotSmartError for a dumb server, SourceError for an answer that will not change.
        """
        known = self._capabilities.get(url)
        if known is None:
            base, advertisement = await self._advertisement(url, failure=failure)
            if advertisement.version != 2:
                return advertisement.refs.get(ref)
            known = self._capabilities[url] = (base, advertisement.capabilities)
        base, capabilities = known
        try:
            return await self._ls_refs(url, base, capabilities, ref, failure=failure)
        except SourceError:
            self._capabilities.pop(url, None)
            raise

    async def _advertisement(self, url: str, *, failure: str) -> tuple[URL, Advertisement]:
        """`GET info/refs?service=git-upload-pack` asking for v2, and the base URL it came from
        (a server may redirect a repository it renamed)."""
        try:
            address = URL(url.rstrip("/") + _INFO_REFS).with_query(service="git-upload-pack")
        except ValueError as error:  # a port out of range, a broken IPv6 address
            raise SourceError(f"{failure}: it is not a URL ({error}); check it") from None
        answer = await self.http.request(
            "info/refs", url, address, failure=failure, limit=_LIMIT, headers=_V2
        )
        if answer.url.origin() != address.origin():
            # Git follows the redirect and asks the new host the rest, without the URL's
            # credentials; the requests after this one would ask the old host, which moves
            # a POST as a GET (or carry the credentials along). Git reads it as it always did.
            raise NotSmartError(f"info/refs was redirected to {answer.url.origin()}")
        self._check(answer, url, "info/refs", failure)
        if answer.content_type != ADVERTISEMENT_TYPE:
            raise NotSmartError(f"info/refs answered {answer.content_type or 'no content type'}")
        try:
            advertisement = parse_advertisement(answer.body)
        except ValueError as error:
            said = scrub(str(error), url)
            raise SourceError(f"{failure}: its info/refs answer is not git's: {said}") from None
        return _base(address, answer.url), advertisement

    async def _ls_refs(
        self, url: str, base: URL, capabilities: frozenset[str], ref: str, *, failure: str
    ) -> str | None:
        if "ls-refs" not in capabilities and not any(
            capability.startswith("ls-refs=") for capability in capabilities
        ):
            raise SourceError(f"{failure}: the server speaks git protocol v2 without ls-refs")
        answer = await self.http.request(
            "git-upload-pack",
            url,
            base / "git-upload-pack",
            failure=failure,
            limit=_LIMIT,
            data=ls_refs_request([ref], capabilities),
            headers={**_V2, "Content-Type": REQUEST_TYPE, "Accept": RESULT_TYPE},
        )
        self._check(answer, url, "git-upload-pack", failure)
        if answer.content_type != RESULT_TYPE:
            raise SourceError(
                f"{failure}: git-upload-pack answered {answer.content_type or 'no content type'}"
                f", not {RESULT_TYPE}"
            )
        try:
            return parse_ls_refs(answer.body).get(ref)
        except ValueError as error:
            # What the server said (an ERR packet, a line quoted) may quote the credentials.
            said = scrub(str(error), url)
            raise SourceError(f"{failure}: its ls-refs answer is not git's: {said}") from None

    @staticmethod
    def _check(answer: Answer, url: str, kind: str, failure: str) -> None:
        if answer.status != 200:
            raise SourceError(
                f"{failure}: {kind} answered HTTP {answer.status}: {said_by(answer.body, url)}; "
                "check the repository's URL and its credentials"
            )


def _base(asked: URL, answered: URL) -> URL:
    """The repository's URL the next requests go to: where `info/refs` was answered from, if
    a redirect kept to the same origin (credentials are never sent elsewhere), else as asked.
    Credentials stay those of the URL asked."""
    path = answered.path
    if answered.origin() != asked.origin() or not path.endswith(_INFO_REFS):
        path = asked.path
    return asked.with_path(path.removesuffix(_INFO_REFS)).with_query(None)
