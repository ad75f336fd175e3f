"""Loading the service configuration: reading its file, refusing secrets in it, validating it
against the schema and resolving it; the embedded default; remembering its secrets.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scheduler.common.diagnostics import Diagnostic, Position, Severity
from scheduler.common.redaction import remember_secret, remember_secret_variables
from scheduler.common.schema_messages import shown
from scheduler.common.yamldoc import Document, YamlError, parse
from scheduler.config.errors import ConfigError, Problems
from scheduler.config.model import Config, LedgerSettings
from scheduler.config.resolving import Resolver
from scheduler.config.schema import (
    EXPLAINER,
    SECRET_HINTS,
    SECRET_KEYS,
    SET_CREDENTIALS,
    VALIDATOR,
)
from scheduler.config.urls import ledger_password_problem


def read_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """The configuration in the file at `path`, loaded as `load_config` does."""
    environ = os.environ if environ is None else environ
    return load_config(_read(path), str(path), environ, base_dir=path.parent)


def read_ledger_url(path: Path, environ: Mapping[str, str] | None = None) -> str:
    """`load_ledger_url` of the configuration file at `path`."""
    environ = os.environ if environ is None else environ
    return load_ledger_url(_read(path), str(path), environ, base_dir=path.parent)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(
            [Diagnostic(str(path), Position(1, 1), Severity.ERROR, f"cannot read: {reason}")]
        ) from None


def load_config(
    text: str | bytes, path: str, environ: Mapping[str, str], *, base_dir: Path | None = None
) -> Config:
    """Parse, validate and resolve a configuration, then remember its secrets (the one
    process-global effect of loading: `remember_secrets`). Raises ConfigError listing every
    problem."""
    config = parse_config(text, path, environ, base_dir=base_dir)
    remember_secrets(config, environ)
    return config


def remember_secrets(config: Config, environ: Mapping[str, str]) -> None:
    """From now on, `redaction.scrub` masks every secret `config` holds and the value of every
    variable of `environ` whose name says it holds one (`*_TOKEN`, `*_SECRET`, `*_PASSWORD`,
    `*_DSN`, ...), wherever they show up. Process-global: `load_config` does it, once."""
    remember_secret_variables(environ)
    for secret in config.secrets:
        remember_secret(secret)


def parse_config(
    text: str | bytes, path: str, environ: Mapping[str, str], *, base_dir: Path | None = None
) -> Config:
    """Parse, validate and resolve a configuration, reading the files it names; no
    process-global effect. Raises ConfigError listing every problem."""
    data, document, problems = _valid(text, path)
    return Resolver(data, document, problems, environ, base_dir or Path(path).parent).resolve()


def load_ledger_url(
    text: str | bytes, path: str, environ: Mapping[str, str], *, base_dir: Path | None = None
) -> str:
    """Only the ledger URL of a configuration: what reading the ledger needs, with no other
    setting required. The secrets it names are remembered all the same, as far as they can be
    read, so that nothing read back from the ledger shows them. Raises ConfigError if the
    configuration is not valid."""
    return _ledger_resolver(text, path, environ, base_dir).ledger_url()


def load_hooks_dir(
    text: str | bytes, path: str, environ: Mapping[str, str], *, base_dir: Path | None = None
) -> Path | None:
    """Only the hooks folder a configuration names (None: none): what checking the folder
    needs, with no other setting required (no credentials, no Slack token). Raises
    ConfigError if the configuration is not valid or the folder not one."""
    data, document, problems = _valid(text, path)
    if problems.diagnostics:  # a secret written in the file: refused for any use
        raise ConfigError(problems.diagnostics)
    base_dir = base_dir or Path(path).parent
    return Resolver(data, document, problems, environ, base_dir).hooks_dir()


def read_hooks_dir(path: Path, environ: Mapping[str, str] | None = None) -> Path | None:
    """`load_hooks_dir` of the configuration file at `path`."""
    environ = os.environ if environ is None else environ
    return load_hooks_dir(_read(path), str(path), environ, base_dir=path.parent)


def load_ledger_settings(
    text: str | bytes, path: str, environ: Mapping[str, str], *, base_dir: Path | None = None
) -> LedgerSettings:
    """`load_ledger_url`, with the retention and the ledger-wait: what pruning and upgrading the
    ledger need. Raises ConfigError if the configuration is not valid or its retention not
    usable."""
    return _ledger_resolver(text, path, environ, base_dir).ledger_settings()


def read_ledger_settings(path: Path, environ: Mapping[str, str] | None = None) -> LedgerSettings:
    """`load_ledger_settings` of the configuration file at `path`."""
    environ = os.environ if environ is None else environ
    return load_ledger_settings(_read(path), str(path), environ, base_dir=path.parent)


def _ledger_resolver(
    text: str | bytes, path: str, environ: Mapping[str, str], base_dir: Path | None
) -> Resolver:
    """A resolver of the ledger's settings, once the secrets the configuration names are
    remembered (as far as they can be read)."""
    data, document, problems = _valid(text, path)
    if problems.diagnostics:  # a secret written in the file: refused for any use
        raise ConfigError(problems.diagnostics)
    base_dir = base_dir or Path(path).parent
    resolver = Resolver(data, document, problems, environ, base_dir)
    # Resolved only for the secrets it reads: a setting missing here does not stop a read.
    with contextlib.suppress(ConfigError):
        resolver.resolve()
    for secret in resolver.secrets_read:
        remember_secret(secret)
    # A fresh one: the problems of the settings the ledger does not need are not its own.
    return Resolver(data, document, Problems(path), environ, base_dir)


def _valid(text: str | bytes, path: str) -> tuple[dict[str, Any], Document, Problems]:
    """The configuration's data, checked against the schema (and for secrets written in it)."""
    problems = Problems(path)
    try:
        document = parse(text)
    except YamlError as error:
        problems.error(error.position, error.message)
        raise ConfigError(problems.diagnostics) from None
    data = document.data
    if data is None:
        data = {}
    secrets_at = _secret_problems(data, document, problems)
    # One pass: the schema's problems too, but not again for a secret's key (which the schema
    # knows no more than the secret's place). With no other, the resolver's are added.
    schema_broken = False
    for invalid in sorted(VALIDATOR.iter_errors(data), key=lambda e: list(map(str, e.path))):
        for position, message in EXPLAINER.explain(invalid, document):
            if position not in secrets_at:
                problems.error(position, message)
                schema_broken = True
    if schema_broken:
        raise ConfigError(problems.diagnostics)
    return data, document, problems


def _secret_problems(data: Any, document: Document, problems: Problems) -> set[Position]:
    """Every secret written in the file (a key that holds one, a password in the ledger URL),
    recorded in `problems`; the places of the keys."""
    at: set[Position] = set()
    for key_path, position in document.keys.items():
        if key_path and key_path[-1] in SECRET_KEYS:
            hint = next(
                (hint for at, hint in SECRET_HINTS.items() if _within(key_path, at)),
                SET_CREDENTIALS,
            )
            problems.error(
                position,
                f"{shown(key_path[-1])}: secrets never go in the configuration file; {hint}",
            )
            at.add(position)
    ledger = data.get("ledger") if isinstance(data, dict) else None
    problem = ledger_password_problem(ledger) if isinstance(ledger, str) else None
    if problem:
        problems.error(document.position_of(("ledger",)), problem)
    return at


def _within(key_path: tuple[Any, ...], at: tuple[str, ...]) -> bool:
    """Whether `key_path` lies under `at`, or, when `at` ends in a key, is that key."""
    if key_path[: len(at)] == at:
        return True
    return len(at) == 3 and key_path[:2] == at[:2] and key_path[-1] == at[2]


# The URL tasks of the embedded default name when this clone has no public origin: the queue
# requires `metadata.source` to be an http(s), ssh or git@ URL, never a `file://` one.
DEFAULT_PUBLIC_URL = "https://github.com/taskcluster/tc-scheduler"


def embedded_default(repository_root: Path, public_url: str = DEFAULT_PUBLIC_URL) -> str:
    """The configuration `make run` uses: this repository as its own project, SQLite, dry-run,
    and its `hooks/` folder, when it has one.

    Tasks name `public_url` (the clone's origin); git reads the clone itself.
    """
    hooks = repository_root / "hooks"
    hooks_dir = f"hooks-dir: {hooks}\n" if hooks.is_dir() else ""
    return f"""\
# tc-scheduler's embedded default: schedule this repository's own .cron.yml.
taskcluster:
  root-url: https://taskcluster.example.com
state-dir: {repository_root / ".tc-scheduler"}
{hooks_dir}projects:
  - name: tc-scheduler
    repository: {public_url}
    fetch-from: {repository_root.resolve().as_uri()}
    branch: main
    level: 1
    trust-domain: tcs
"""
