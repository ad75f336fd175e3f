"""The worlds fault trials run in: projects whose jobs fire every slot, their configuration, the
trigger-action setup, and the counts of what Taskcluster holds for each (job, slot).

A decision task is found by its derived id; an action's task by the hook's fires (the task's
payload names the job) and the ledger row that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import taskcluster

from scheduler.cron import format_slot
from scheduler.ids import decision_task_id
from scheduler.ledger import FireState
from tests.emulator import Emulator
from tests.emulator.clock import parse_time
from tests.faults.harness import Figures, ledger_fires, report
from tests.support.corpus import REPOSITORY_ROOT
from tests.support.engine import seed_decision_with_actions
from tests.support.repos import Repository

TEMPLATE = (REPOSITORY_ROOT / ".taskcluster.yml").read_text()
EVERY_SLOT = "[{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]"
QUARTER = timedelta(minutes=15)
# The hook of the corpus actions.json's `add-new-jobs`, which seed_decision_with_actions makes.
ACTION_HOOK = ("project-mobile", "in-tree-action-3-generic/93267a5f84")
DONE = {FireState.CREATED, FireState.ALREADY_FIRED}


def decision_cron(jobs: Sequence[str]) -> str:
    """A `.cron.yml` of decision-task jobs that fire every slot."""
    return "jobs:\n" + "".join(
        f"  - name: {name}\n"
        f"    job: {{type: decision-task, treeherder-symbol: J{n}, target-tasks-method: j{n}}}\n"
        f"    when: {EVERY_SLOT}\n"
        for n, name in enumerate(jobs)
    )


def action_cron(jobs: Sequence[str]) -> str:
    """A `.cron.yml` of trigger-action jobs that fire every slot; each names itself in the
    action's input, so each task the hook makes says whose it is."""
    return "jobs:\n" + "".join(
        f"  - name: {name}\n"
        "    job:\n"
        "      type: trigger-action\n"
        "      action-name: add-new-jobs\n"
        f"      extra-input: {{tasks: [{name}]}}\n"
        f"    when: {EVERY_SLOT}\n"
        for name in jobs
    )


def decision_repository(path: Path, jobs: Sequence[str]) -> Repository:
    """A repository of `decision_cron(jobs)` and this repository's own `.taskcluster.yml`."""
    return Repository(path, {".cron.yml": decision_cron(jobs), ".taskcluster.yml": TEMPLATE})


def project_entry(name: str, repository: Repository | str) -> str:
    """One project of a service configuration: its tasks name https://github.com/example/<name>,
    git reads `repository` (or the URL given)."""
    fetch_from = repository if isinstance(repository, str) else repository.url
    return (
        f"  - name: {name}\n"
        f"    repository: https://github.com/example/{name}\n"
        f"    fetch-from: {fetch_from}\n"
        "    trust-domain: tcs\n"
    )


def write_config(path: Path, settings: str, *projects: str) -> Path:
    """A service configuration: top-level `settings` (YAML lines), then the projects."""
    path.write_text(settings + "projects:\n" + "".join(projects))
    return path


def seed_actions(emulator: Emulator, project: str, repository: Repository) -> str:
    """The completed decision task of the repository's head, with the corpus actions.json and
    the hook of its `add-new-jobs`; its task id."""
    route = f"index.tcs.v2.{project}.revision.{repository.head}.taskgraph.decision"
    return seed_decision_with_actions(emulator, route)


def slots_from(first: datetime, count: int) -> list[datetime]:
    return [first + QUARTER * n for n in range(count)]


# -- counting ---------------------------------------------------------------------------------


def hook_fires(emulator: Emulator, hook: tuple[str, str]) -> list[dict[str, Any]]:
    """Every fire of `hook`, as the hooks service lists them (none: it never fired)."""
    hooks = taskcluster.Hooks(emulator.options())
    fires: list[dict[str, Any]] = []
    query: dict[str, str] = {}
    while True:
        try:
            page = hooks.listLastFires(*hook, query=query)
        except taskcluster.TaskclusterRestFailure as error:
            if error.status_code == 404:
                return fires
            raise
        fires += page["lastFires"]
        if not page.get("continuationToken"):
            return fires
        query = {"continuationToken": page["continuationToken"]}


@dataclass
class Tally:
    """Per (job, slot): what Taskcluster holds against what should be there once."""

    expected: int
    duplicates: list[str] = field(default_factory=list)  # what was made more than once
    missing: list[str] = field(default_factory=list)  # (job, slot)s Taskcluster lacks
    wrong_states: list[str] = field(default_factory=list)  # ledger rows not created/fired
    late: timedelta | None = None

    def later(self, lateness: timedelta) -> None:
        if self.late is None or lateness > self.late:
            self.late = lateness

    @property
    def exact(self) -> bool:
        return not (self.duplicates or self.missing or self.wrong_states)

    def figures(self, scenario: str, **notes: object) -> Figures:
        """This tally as a trial's figures, reported (printed and summed up at the end)."""
        return report(
            Figures(
                scenario,
                fires=self.expected,
                duplicates=len(self.duplicates),
                missing=len(self.missing) + len(self.wrong_states),
                late=self.late,
                notes=dict(notes),
            )
        )

    def explain(self) -> str:
        return "\n".join(
            [
                *(f"duplicate: {d}" for d in self.duplicates),
                *(f"missing: {m}" for m in self.missing),
                *(f"ledger: {w}" for w in self.wrong_states),
            ]
        )


def every_fire(
    projects: Iterable[str], jobs: Iterable[str], slots: Iterable[datetime]
) -> list[tuple[str, str, datetime]]:
    """Each (project, job, slot) of jobs that every project has and that fire every slot."""
    jobs, slots = list(jobs), list(slots)
    return [(project, job, slot) for project in projects for job in jobs for slot in slots]


def tally_decision_tasks(
    emulator: Emulator,
    fires: Iterable[tuple[str, str, datetime]],
    *,
    ledger_url: str | None = None,
) -> Tally:
    """Each (project, job, slot)'s decision task exists under its derived id; any other task
    in the queue is one made twice. With `ledger_url`, each fire's row must say created or
    already-fired."""
    wanted = {
        decision_task_id(emulator.root_url, project, job, slot): (project, job, slot)
        for project, job, slot in fires
    }
    tasks = {task.task_id: task for task in emulator.tasks()}
    tally = Tally(len(wanted))
    for task_id, (project, job, slot) in sorted(wanted.items(), key=lambda item: item[1]):
        task = tasks.get(task_id)
        if task is None:
            tally.missing.append(f"{project} {job} {format_slot(slot)}")
        else:
            tally.later(parse_time(task.definition["created"]) - slot)
    tally.duplicates += [
        f"task {task_id} ({task.definition['metadata']['name']})"
        for task_id, task in tasks.items()
        if task_id not in wanted
    ]
    if ledger_url is not None:
        for project in {project for project, _, _ in wanted.values()}:
            keys = {(job, slot) for p, job, slot in wanted.values() if p == project}
            tally.wrong_states += _ledger_states(ledger_url, project, keys)
    return tally


def tally_actions(
    emulator: Emulator,
    project: str,
    jobs: Iterable[str],
    slots: Iterable[datetime],
    ledger_url: str,
) -> Tally:
    """Each (job, slot)'s action task was made once by the hook. A task the hook made that no
    ledger row names is a second fire of some (job, slot); one a row names that the hook did
    not make, or that another job's input asked for, counts its (job, slot) as missing."""
    fired = [fire for fire in hook_fires(emulator, ACTION_HOOK) if fire["result"] == "success"]
    tasks = {task.task_id: task for task in emulator.tasks()}
    made: dict[str, tuple[str, datetime]] = {}  # task id -> (job named by its input, when)
    for fire in fired:
        task = tasks[fire["taskId"]]
        [job] = task.definition["payload"]["user"]["input"]["tasks"]
        made[fire["taskId"]] = (job, parse_time(fire["taskCreateTime"]))
    wanted = {(job, slot) for job in jobs for slot in slots}
    tally = Tally(len(wanted))
    named: dict[str, str] = {}
    rows = {(row.job, row.slot): row for row in ledger_fires(ledger_url, project=project)}
    for job, slot in sorted(wanted, key=lambda key: (key[1], key[0])):
        where = f"{job} {format_slot(slot)}"
        row = rows.get((job, slot))
        if row is None or row.task_id is None or row.task_id not in made:
            state = "no fire recorded" if row is None else f"{row.state}, task {row.task_id}"
            tally.missing.append(f"{where} ({state})")
            continue
        made_for, created = made[row.task_id]
        if made_for != job:
            tally.missing.append(f"{where}: its task {row.task_id} was made for {made_for}")
            continue
        if row.task_id in named:
            tally.missing.append(f"{where}: its task {row.task_id} is {named[row.task_id]}'s")
            continue
        named[row.task_id] = where
        tally.later(created - slot)
    tally.duplicates += [
        f"{job}'s action task {task_id}, made at {created:%H:%M:%S}, named by no fire"
        for task_id, (job, created) in sorted(made.items())
        if task_id not in named
    ]
    tally.wrong_states += _ledger_states(ledger_url, project, wanted)
    return tally


def _ledger_states(ledger_url: str, project: str, wanted: set[tuple[str, datetime]]) -> list[str]:
    rows = {(row.job, row.slot): row for row in ledger_fires(ledger_url, project=project)}
    return [
        f"{job} {format_slot(slot)} is {row.state}: {row.error}"
        for (job, slot), row in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0]))
        if (job, slot) in wanted and row.state not in DONE
    ]
