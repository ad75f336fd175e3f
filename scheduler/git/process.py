"""Running git: the environment and options every command gets, one command within its timeout
(killed with the helpers it started after), and what git said, scrubbed; the retries with
backoff of every read from a remote, git's processes and HTTP requests (`remote_http.py`) alike.

Nothing here knows of cache repositories or files; `source.py` builds on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import unquote, urlsplit

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from scheduler.common.redaction import redact
from scheduler.common.wording import counted

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Only these of the caller's GIT_* variables reach git: how to reach hosts (ssh, TLS, proxies).
# The rest could point git at another repository or config, or trace credentials to stderr.
_KEPT_GIT_VARIABLES = ("GIT_SSH", "GIT_SSL_", "GIT_HTTP_", "GIT_PROXY_")
# Options of every git command: no credential helper or askpass from anywhere, paths taken
# literally, and the same protocol for every host (v2 lets a client fetch a commit by its id).
_GIT_OPTIONS = (
    "--no-pager",
    "--literal-pathspecs",
    "-c",
    "protocol.version=2",
    "-c",
    "credential.helper=",
    "-c",
    "core.askPass=",
)
# What git says on failure fits in far less; more would only be trimmed away.
_STDERR_LIMIT = 64 * 1024


class SourceError(Exception):
    """A repository, branch, revision or file could not be read; the message says what to check.

    Messages never contain the credentials of a repository URL.
    """


class RetryableSourceError(Exception):
    """A read from a remote failed in a way that may pass (a git command that talks to it, an
    HTTP 5xx or a lost connection); worth another attempt."""


@dataclass(frozen=True)
class Completed:
    """A git command that ran to its end: its exit status and what it printed."""

    returncode: int
    stdout: bytes
    stderr: bytes

    def said(self, command: str, url: str) -> str:
        """`git fetch exited with 128: ...`, without hints or the credentials of `url`."""
        return f"git {command} exited with {self.returncode}: {trimmed(self.stderr, url)}"


def _secrets_of(url: str) -> list[str]:
    """Credentials of `url` as they may appear in text, escaped or not."""
    parts = urlsplit(url)
    secret = parts.password
    if secret is None and parts.scheme in ("http", "https"):
        # Over HTTP a lone user name is a token (`https://<token>@host/...`).
        secret = parts.username
    if not secret:
        return []
    return sorted({secret, unquote(secret)}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` (from git, say) with no credentials of `url` left in it."""
    for secret in _secrets_of(url):
        text = text.replace(secret, "***")
    return redact(text)


def trimmed(stderr: bytes, url: str) -> str:
    """What git said, in a few lines, without hints or credentials."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    said = " ".join([line for line in lines if line and not line.startswith("hint:")][:4])
    said = said if len(said) <= 500 else said[:499] + "…"
    return scrub(said, url) or "nothing"


def git_environment(base: Mapping[str, str], cache_dir: Path) -> dict[str, str]:
    """The environment of every git command: C locale, no prompts, no system or user config."""
    environment = {
        name: value
        for name, value in base.items()
        if not name.startswith("GIT_") or name.startswith(_KEPT_GIT_VARIABLES)
    }
    environment.update(
        LC_ALL="C",
        GIT_TERMINAL_PROMPT="0",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_PAGER="cat",
        PAGER="cat",
        # Commands without --git-dir run in the cache directory; never find a repository above.
        GIT_CEILING_DIRECTORIES=str(cache_dir.parent),
    )
    if "GIT_SSH" not in environment and "GIT_SSH_COMMAND" not in environment:
        environment["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return environment


class GitRunner:
    """Runs git commands in `cache_dir`, at most `max_processes` at once per event loop, each
    within `timeout` seconds; counts them by command in `commands`."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        git: str,
        timeout: float,
        max_processes: int,
        commands: Counter[str],
    ) -> None:
        self.cache_dir = cache_dir
        self.git = git
        self.timeout = timeout
        self.commands = commands
        self._max_processes = max_processes
        self._environment = git_environment(os.environ, cache_dir)
        # asyncio primitives belong to one event loop; a runner may be used from several.
        self._processes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )

    async def run(
        self,
        command: str,
        *arguments: str,
        repository: Path | None = None,
        config: Sequence[str] = (),
        stdin: bytes | None = None,
    ) -> Completed:
        """Run one git command (never through a shell) within the timeout, killing it after.

        A timeout counts as a failure worth retrying; other exits are for the caller to judge.
        """
        argv = [self.git, *_GIT_OPTIONS]
        for setting in config:
            argv += ["-c", setting]
        if repository is not None:
            argv.append(f"--git-dir={repository}")
        argv += [command, *arguments]
        self.commands[command] += 1
        # Files rather than pipes: CPython 3.11 can wait forever for a process whose start or
        # `communicate` was cancelled, on pipes nobody reads. Without pipes, killing git always
        # ends the wait.
        with (
            # In the cache directory, which is writable where /tmp may not be.
            tempfile.TemporaryFile(dir=self.cache_dir) as request,
            tempfile.TemporaryFile(dir=self.cache_dir) as stdout,
            tempfile.TemporaryFile(dir=self.cache_dir) as stderr,
        ):
            if stdin is not None:
                request.write(stdin)
                request.seek(0)
            async with self._slots():
                try:
                    process = await asyncio.create_subprocess_exec(
                        *argv,
                        stdin=request if stdin is not None else asyncio.subprocess.DEVNULL,
                        stdout=stdout,
                        stderr=stderr,
                        cwd=self.cache_dir,
                        env=self._environment,
                        # Its own process group, so stopping git stops the helpers it started.
                        start_new_session=True,
                    )
                except OSError as error:
                    raise SourceError(
                        f"could not run {self.git!r}: {error}; is git installed?"
                    ) from None
                try:
                    async with asyncio.timeout(self.timeout):
                        returncode = await process.wait()
                except TimeoutError:
                    await _stop(process)
                    raise RetryableSourceError(
                        f"git {command} did not finish within {self.timeout:g} s and was stopped"
                    ) from None
                except BaseException:
                    await _stop(process)  # cancelled: leave no git running
                    raise
            return Completed(returncode, _read_back(stdout), _read_back(stderr, _STDERR_LIMIT))

    def _slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        slots = self._processes.get(loop)
        if slots is None:
            slots = self._processes[loop] = asyncio.Semaphore(self._max_processes)
        return slots


async def retrying(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    max_wait: float,
    failure: str,
    advice: str,
) -> T:
    """`operation` with up to `attempts` tries, waiting exponentially longer with jitter.

    Only RetryableSourceError is tried again; after the last attempt it becomes a SourceError
    that says what failed (`failure`), how often, and what to check (`advice`).
    """
    attempt = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=1, max=max_wait),
        retry=retry_if_exception_type(RetryableSourceError),
        before_sleep=_log_retry(failure, attempts),
        reraise=True,
    )
    try:
        return await attempt(operation)
    except RetryableSourceError as error:
        tries = counted(attempts, "attempt")
        raise SourceError(f"{failure} ({tries}): {error}; {advice}") from None


def _log_retry(failure: str, attempts: int) -> Callable[[RetryCallState], None]:
    def log(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s (attempt %d of %d), retrying in %.1f s: %s",
            failure,
            state.attempt_number,
            attempts,
            wait,
            error,
        )

    return log


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill git with whatever it started (remote helpers, ssh), and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


def _read_back(output: IO[bytes], limit: int = -1) -> bytes:
    output.seek(0)
    return output.read(limit)
