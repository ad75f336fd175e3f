"""The configuration's projects resolved: each one's catch-up and overlap rules inherited from
the defaults, its repository and fetch-from checked, and no project configured twice. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.common.redaction import redact
from scheduler.common.schema_messages import shown
from scheduler.common.yamldoc import Document
from scheduler.config.errors import Problems
from scheduler.config.expiry import expiry_watch
from scheduler.config.model import CatchUp, OverlapPolicy, Project
from scheduler.config.urls import project_repository_problem, repository_problem
from scheduler.durations import parse_duration


def resolve_projects(
    data: Mapping[str, Any], document: Document, problems: Problems
) -> tuple[Project, ...]:
    """The valid configuration `data`'s projects, the top-level `catch-up` and `overlap`
    their defaults; records every problem found in `problems`."""
    default_catch_up = _catch_up(data.get("catch-up", {}), CatchUp())
    default_overlap = data.get("overlap", {}).get("policy", "allow")
    projects = tuple(
        _project(index, entry, default_catch_up, default_overlap, document, problems)
        for index, entry in enumerate(data["projects"])
    )
    _check_unique(projects, document, problems)
    return projects


def _catch_up(data: Mapping[str, Any], inherited: CatchUp) -> CatchUp:
    lateness = data.get("max-lateness")
    return CatchUp(
        policy=data.get("policy", inherited.policy),
        max_lateness=parse_duration(lateness) if lateness else inherited.max_lateness,
        max_slots=data.get("max-slots", inherited.max_slots),
    )


def _project(
    index: int,
    entry: Mapping[str, Any],
    default: CatchUp,
    default_overlap: OverlapPolicy,
    document: Document,
    problems: Problems,
) -> Project:
    catch_up_data = entry.get("catch-up", {})
    catch_up = _catch_up(catch_up_data, default)
    overlap_data = entry.get("overlap", {})
    overlap: OverlapPolicy = overlap_data.get("policy", default_overlap)
    scopes = entry.get("scopes")
    repository = entry["repository"]
    repository_type = entry.get("repository-type", "git")
    problem = project_repository_problem(
        entry["name"], repository, scopes is not None, repository_type
    )
    if problem:
        problems.error(document.position_of(("projects", index, "repository")), problem)
    _check_fetch_from(index, entry, repository_type, document, problems)
    return Project(
        name=entry["name"],
        repository=entry["repository"],
        trust_domain=entry["trust-domain"],
        # Mercurial's main branch is `default`, as build-decision reads it.
        branch=entry.get("branch", "default" if repository_type == "hg" else "main"),
        level=entry.get("level", 1),
        repository_type=repository_type,
        fetch_from=entry.get("fetch-from"),
        expiry=expiry_watch(entry.get("expiry", {})),
        expiry_watched="expiry" in entry,
        watch_task_groups=(
            groups
            if isinstance(groups := entry.get("watch-task-groups", False), bool)
            else tuple(groups)
        ),
        scopes=tuple(scopes) if scopes is not None else None,
        catch_up=catch_up,
        job_catch_up={
            job: _catch_up(overrides, catch_up)
            for job, overrides in catch_up_data.get("jobs", {}).items()
        },
        overlap=overlap,
        job_overlap={
            job: overrides.get("policy", overlap)
            for job, overrides in overlap_data.get("jobs", {}).items()
        },
    )


def _check_fetch_from(
    index: int,
    entry: Mapping[str, Any],
    repository_type: str,
    document: Document,
    problems: Problems,
) -> None:
    """A Mercurial project's `fetch-from` is read over HTTP(S) as its repository is (git
    reads whatever git takes: a path, a file:// or an ssh URL)."""
    url = entry.get("fetch-from")
    if url is None or repository_type != "hg":
        return
    problem = repository_problem(url, "hg")
    if problem is not None:
        problems.error(
            document.position_of(("projects", index, "fetch-from")),
            f"project {shown(entry['name'])}: fetch-from {shown(redact(url))} {problem}",
        )


def _check_unique(projects: tuple[Project, ...], document: Document, problems: Problems) -> None:
    seen: dict[str, int] = {}
    for index, project in enumerate(projects):
        if project.name in seen:
            first = document.position_of(("projects", seen[project.name], "name"))
            problems.error(
                document.position_of(("projects", index, "name")),
                f"project {shown(project.name)} is configured twice (first at line "
                f"{first.line}); give each project one entry",
            )
        seen.setdefault(project.name, index)
