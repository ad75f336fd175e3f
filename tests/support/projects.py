"""Projects and configurations the tests run the engine and the service on: this repository's
own jobs, a few small ones, corpus projects in real git repositories, and service.yml files."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scheduler.config.model import Config, Credentials, Project
from tests.emulator import Emulator
from tests.support.corpus import CORPUS, REPOSITORY_ROOT
from tests.support.repos import Repository

DAY = datetime(2026, 12, 1, tzinfo=UTC)  # a Tuesday
OWN_CRON = (REPOSITORY_ROOT / ".cron.yml").read_text()
OWN_TEMPLATE = (REPOSITORY_ROOT / ".taskcluster.yml").read_text()
OWN_SCOPES = "                          - assume:repo:${repoPath}:cron:${cron.job_name}\n"
# A level-1 repository asking for more than its role grants: a level-3 secret and another
# project's cron role.
GREEDY_TEMPLATE = OWN_TEMPLATE.replace(
    OWN_SCOPES,
    OWN_SCOPES
    + "                          - secrets:get:project/releng/level-3/*\n"
    + "                          - assume:repo:github.com/example/trusted:cron:*\n",
)
# What each project's cron role grants: tasks of its own level only, and no secrets.
CRON_ROLE = ["queue:create-task:*", "queue:route:*", "queue:scheduler-id:*"]

HOURLY = """\
jobs:
  - name: hourly
    job: {type: decision-task, treeherder-symbol: H, target-tasks-method: hourly}
    when: [{minute: 0}]
"""
NIGHTLY = """\
jobs:
  - name: nightly
    job: {type: decision-task, treeherder-symbol: N, target-tasks-method: nightly}
    when: [{hour: 2, minute: 0}]
"""


def make_config(emulator: Emulator, tmp_path: Path, *projects: Project, **changes: Any) -> Config:
    config = Config(
        root_url=emulator.root_url,
        credentials=Credentials(
            **{
                "client_id": emulator.root_credentials["clientId"],
                "access_token": emulator.root_credentials["accessToken"],
            }
        ),
        ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        state_dir=tmp_path / "state",
        concurrency=8,
        dry_run=False,
        replica="replica-1",
        claim_lease=timedelta(minutes=10),
        projects=projects,
        source="test",
    )
    return replace(config, **changes)


def project(name: str, repository: Repository, **changes: Any) -> Project:
    """A project whose tasks name a GitHub URL, fetched from the local repository."""
    configured = Project(
        name=name,
        repository=f"https://github.com/example/{name}",
        fetch_from=repository.url,
        trust_domain="tcs",
    )
    return replace(configured, **changes)


def own_project(tmp_path: Path, cron: str = OWN_CRON, name: str = "tc-scheduler") -> Project:
    repository = Repository(
        tmp_path / "repos" / name, {".cron.yml": cron, ".taskcluster.yml": OWN_TEMPLATE}
    )
    return project(name, repository)


# Corpus projects whose template renders for cron on any root URL, by repository name.
CORPUS_PROJECTS = {
    "fenix": "mozilla-mobile__fenix__at-c0f9f3b3",
    "application-services": "mozilla__application-services",
    "translations": "mozilla__translations",
    "mozilla-vpn-client": "mozilla-mobile__mozilla-vpn-client",
    "reference-browser": "mozilla-mobile__reference-browser",
    "fx-desktop-qa-automation": "mozilla__fx-desktop-qa-automation",
}


def corpus_repository(tmp_path: Path, name: str, stem: str) -> Repository:
    template_stem = stem.split("__at-", maxsplit=1)[0]
    return Repository(
        tmp_path / "repos" / name,
        {
            ".cron.yml": (CORPUS / "cron" / f"{stem}.cron.yml").read_text(),
            ".taskcluster.yml": (
                CORPUS / "taskcluster-yml" / f"{template_stem}.taskcluster.yml"
            ).read_text(),
        },
    )


def write_service_config(
    tmp_path: Path,
    repository: Repository,
    *,
    project: str = "demo",
    ledger: str | None = None,
    extra: str = "",
    settings: str = "",
) -> Path:
    """A service configuration of one project, whose tasks name
    https://github.com/example/<project> and whose git reads `repository`; `extra` is more of
    the project's entry (indented as it is), `settings` more of the top level. The ledger is
    SQLite in `tmp_path` by default."""
    ledger = ledger or f"sqlite:///{tmp_path / 'ledger.db'}"
    path = tmp_path / "service.yml"
    path.write_text(
        settings + f"ledger: {ledger}\n"
        "projects:\n"
        f"  - name: {project}\n"
        f"    repository: https://github.com/example/{project}\n"
        f"    fetch-from: {repository.url}\n"
        "    trust-domain: tcs\n" + extra
    )
    return path
