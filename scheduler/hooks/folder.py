"""Reading the `hooks/` folder from disk: every hook file under it, parsed and checked, and the
groups (one sub-folder each) it manages."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from scheduler.common.diagnostics import START, Diagnostic
from scheduler.common.yamldoc import MAX_BYTES
from scheduler.hooks.definitions import (
    GROUP_ID_PATTERN,
    SUFFIX,
    DeclaredHook,
    HookFolder,
    error_at,
    id_problem,
    parse_hook,
)


def load_folder(directory: Path) -> HookFolder:
    """Read and validate every hook file under `directory`. Never raises for bad content."""
    hooks: list[DeclaredHook] = []
    groups: set[str] = set()
    diagnostics: list[Diagnostic] = []
    for path in sorted(directory.rglob("*")):
        relative = PurePosixPath(path.relative_to(directory).as_posix())
        if any(part.startswith(".") for part in relative.parts):
            continue  # .gitkeep, editor swap files, .DS_Store
        display = str(path)
        if path.is_dir():
            if len(relative.parts) == 1:
                problem = id_problem("the group folder's name", relative.name, GROUP_ID_PATTERN)
                if problem:
                    diagnostics.append(error_at(display, START, problem))
                else:
                    groups.add(relative.name)
            continue
        if path.suffix == ".yaml":
            diagnostics.append(
                error_at(
                    display, START, f"hook files end in {SUFFIX}; rename it to {path.stem}.yml"
                )
            )
            continue
        if path.suffix != SUFFIX:
            continue  # README.md and other notes
        try:
            source = _read_bounded(path)
        except OSError as error:
            diagnostics.append(error_at(display, START, f"cannot read: {error.strerror or error}"))
            continue
        hook, problems = parse_hook(source, display, relative)
        diagnostics.extend(problems)
        if hook is not None:
            hooks.append(hook)
    return HookFolder(
        directory=str(directory),
        hooks=tuple(hooks),
        groups=frozenset(groups),
        diagnostics=tuple(sorted(diagnostics, key=lambda d: (d.path, *d.sort_key()))),
    )


def _read_bounded(path: Path) -> bytes:
    """The file, but never more than one byte past what the YAML parser accepts."""
    with path.open("rb") as stream:
        return stream.read(MAX_BYTES + 1)
