"""Git's pkt-line framing and the two answers a branch's head is read from over smart HTTP: a
protocol v2 `ls-refs` request and its answer, and a v0/v1 ref advertisement. Pure.

Written from gitprotocol-common, gitprotocol-http and gitprotocol-v2 (git-scm.com/docs).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from scheduler.git.parsing import is_revision

FLUSH = b"0000"
DELIMITER = b"0001"
# Four hex digits of length, themselves included; 65520 bytes at most (gitprotocol-common).
_HEADER = 4
_MAX_PACKET = 65520
_LENGTH = re.compile(rb"[0-9a-fA-F]{4}")
_SPECIAL = {0: "flush", 1: "delimiter", 2: "response-end"}


@dataclass(frozen=True)
class Advertisement:
    """What `info/refs?service=git-upload-pack` answered: protocol v2's capabilities, or the
    refs of a v0/v1 server (which lists them at once)."""

    version: int
    capabilities: frozenset[str]
    refs: dict[str, str]


def packet(text: str) -> bytes:
    """One data pkt-line: its length in four hex digits, then `text` and a newline."""
    payload = f"{text}\n".encode()
    if len(payload) + _HEADER > _MAX_PACKET:
        raise ValueError(f"a pkt-line of {len(payload)} bytes is longer than git allows")
    return f"{len(payload) + _HEADER:04x}".encode("ascii") + payload


def packets(body: bytes) -> Iterator[bytes | str]:
    """The pkt-lines of `body`: data without its trailing newline, or the name of a special
    packet ("flush", "delimiter", "response-end"); ValueError if it is not pkt-line framed."""
    at = 0
    while at < len(body):
        header = body[at : at + _HEADER]
        if not _LENGTH.fullmatch(header):
            raise ValueError(f"{header[:8]!r} at byte {at} is no pkt-line length")
        length = int(header, 16)
        if length in _SPECIAL:
            yield _SPECIAL[length]
            at += _HEADER
            continue
        if length < _HEADER or at + length > len(body):
            raise ValueError(f"a pkt-line at byte {at} claims {length} bytes, past the end")
        yield body[at + _HEADER : at + length].removesuffix(b"\n")
        at += length


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    return data.decode("utf-8", "replace")


def _refused(data: bytes | str) -> None:
    """A server's `ERR <message>` packet ends the conversation (gitprotocol-pack)."""
    if isinstance(data, bytes) and data.startswith(b"ERR "):
        raise ValueError(f"the server said: {_text(data[4:]).strip()}")


def parse_advertisement(body: bytes) -> Advertisement:
    """The answer to `info/refs?service=git-upload-pack`. A v2 server answers `version 2` and
    its capabilities; a v0/v1 one (that ignored `Git-Protocol`) lists its refs, the first with
    its capabilities after a NUL. Either may start with `# service=git-upload-pack` and a flush."""
    lines = list(packets(body))
    if lines and isinstance(lines[0], bytes) and lines[0].startswith(b"# service="):
        lines = lines[2:] if len(lines) > 1 and lines[1] == "flush" else lines[1:]
    if not lines:
        raise ValueError("the advertisement is empty")
    for line in lines:
        _refused(line)
    if lines[0] == b"version 2":
        if "flush" not in lines:
            # Cut short, it may lack the capability (`ls-refs`) it would have listed later.
            raise ValueError("the capabilities end without a flush packet")
        listed = frozenset(_text(line) for line in lines[1:] if isinstance(line, bytes))
        return Advertisement(version=2, capabilities=listed, refs={})
    version = 1 if lines[0] == b"version 1" else 0
    refs: dict[str, str] = {}
    capabilities: set[str] = set()
    advertised = lines[1:] if version == 1 else lines
    # Only a flush ends the list: without one the answer was cut short, and a branch it would
    # have listed later would pass for missing.
    if "flush" not in advertised:
        raise ValueError("the advertised refs end without a flush packet")
    for line in advertised:
        if line == "flush":
            break
        if not isinstance(line, bytes):
            raise ValueError(f"a {line} packet among the advertised refs")
        named, _, offered = line.partition(b"\0")
        capabilities.update(_text(offered).split())
        oid, _, name = _text(named).partition(" ")
        if not is_revision(oid):
            raise ValueError(f"{_text(named)[:80]!r} is not `<object id> <ref>`")
        # An empty repository advertises `capabilities^{}` at the null id.
        if name != "capabilities^{}":
            refs[name] = oid
    return Advertisement(version=version, capabilities=frozenset(capabilities), refs=refs)


def ls_refs_request(prefixes: Sequence[str], capabilities: frozenset[str]) -> bytes:
    """The body of a v2 `command=ls-refs` asking for refs starting with `prefixes`. It names the
    server's object format when that is not SHA-1 (the server would assume SHA-1 otherwise)."""
    lines = [packet("command=ls-refs")]
    formats = [c.partition("=")[2] for c in capabilities if c.startswith("object-format=")]
    if formats and formats[0] != "sha1":
        lines.append(packet(f"object-format={formats[0]}"))
    lines.append(DELIMITER)
    lines += [packet(f"ref-prefix {prefix}") for prefix in prefixes]
    lines.append(FLUSH)
    return b"".join(lines)


def parse_ls_refs(body: bytes) -> dict[str, str]:
    """The refs of an `ls-refs` answer, by name: `<oid> <refname>[ <attribute>...]` lines up
    to a flush (attributes such as `symref-target:` and `peeled:` are not needed here)."""
    refs: dict[str, str] = {}
    for line in packets(body):
        if line == "flush":
            return refs
        _refused(line)
        if not isinstance(line, bytes):
            raise ValueError(f"a {line} packet among the listed refs")
        oid, _, rest = _text(line).partition(" ")
        name = rest.split(" ", 1)[0]
        # An unborn HEAD is listed as `unborn HEAD symref-target:...`: no object yet.
        if oid == "unborn":
            continue
        if not is_revision(oid) or not name:
            raise ValueError(f"{_text(line)[:80]!r} is not `<object id> <ref>`")
        refs[name] = oid
    raise ValueError("the list of refs ends without a flush packet")
