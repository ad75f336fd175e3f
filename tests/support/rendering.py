"""The corpus's templates rendered for cron as their repository's level-3 project would, on
Firefox CI's root URL at one slot; the templates that cannot render, and why."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from scheduler.cron import DecisionTask, Job
from scheduler.render import Push, RenderedTask, Repository, render_decision_task
from tests.support.corpus import CORPUS, corpus_templates
from tests.support.loaded_corpus import corpus_cron

ROOT_URL = "https://firefox-ci-tc.services.mozilla.com"
SLOT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
REVISION = "3b2c1a0f" * 5

# Templates that cannot render with the cron context, with the error they fail with.
UNRENDERABLE = {
    # This .taskcluster.yml (from another commit than its .cron.yml) reads `event` whatever
    # tasks_for is, and a cron fire has no event.
    "taskcluster__taskcluster": "unknown context value event",
}


def first_decision_job(cron_path: Path) -> Job | None:
    cron = corpus_cron(cron_path)
    return next((job for job in cron.jobs if isinstance(job.kind, DecisionTask)), None)


def render_corpus(template_path: Path, job: Job) -> RenderedTask:
    """A corpus template rendered for `job`, as its repository's level-3 project would."""
    owner, name = template_path.name.removesuffix(".taskcluster.yml").split("__")[:2]
    return render_decision_task(
        template_path.read_bytes(),
        # Firefox CI's root URL: fxci-config's template switches on it with no default.
        root_url=ROOT_URL,
        repository=Repository(f"https://github.com/{owner}/{name}", name, "3"),
        push=Push(REVISION, branch="main"),
        job=job,
        slot=SLOT,
    )


def corpus_cases() -> list[tuple[Path, Job]]:
    """Each corpus template whose .cron.yml has a decision-task job, with the first such job."""
    cases = []
    for template in corpus_templates():
        cron = CORPUS / "cron" / template.name.replace(".taskcluster.yml", ".cron.yml")
        if cron.exists() and (job := first_decision_job(cron)):
            cases.append((template, job))
    return cases
