"""Every real .cron.yml loads as build-decision loads it, and fires when it fires there."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from scheduler.cron import CronFile, DecisionTask, TriggerAction, due_jobs, fires_between, load_cron
from tests.support.corpus import CORPUS, corpus_cron_files
from tests.support.loaded_corpus import corpus_cron

REJECTED_BY_BUILD_DECISION = "mozilla-l10n__android-l10n-tooling.cron.yml"


def load(name: str) -> CronFile:
    return corpus_cron(CORPUS / "cron" / name)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def due(cron: CronFile, project: str, moment: str) -> list[str]:
    plan = due_jobs(cron, project, at(moment))
    assert plan.problems == ()
    return [fire.job_name for fire in plan.fires]


def test_corpus_is_all_there() -> None:
    assert len(corpus_cron_files()) == 22


@pytest.mark.parametrize("path", corpus_cron_files(), ids=lambda path: path.name)
def test_corpus_file_loads_as_build_decision_loads_it(path: Path) -> None:
    cron = load_cron(path.read_bytes(), path.name)
    if path.name == REJECTED_BY_BUILD_DECISION:
        [error] = cron.errors
        assert "jobs must be a list" in error.message
        assert (error.line, error.column) == (6, 7)
        assert cron.jobs == ()
    else:
        assert cron.errors == ()
        assert len(cron.jobs) == len({job.name for job in cron.jobs})


def test_corpus_job_count_matches_the_corpus_readme() -> None:
    assert sum(len(load(path.name).jobs) for path in corpus_cron_files()) == 127


def test_gecko_nightly_all_fires_at_ten_and_twenty_two_on_mozilla_central() -> None:
    cron = load("mozilla__gecko-dev.cron.yml")
    assert "nightly-all" in due(cron, "mozilla-central", "2026-11-24T10:00")
    assert "nightly-all" in due(cron, "mozilla-central", "2026-11-24T22:00")
    assert "nightly-all" in due(cron, "mozilla-central", "2026-11-24T10:14:59")
    assert "nightly-all" not in due(cron, "mozilla-central", "2026-11-24T10:15")
    assert "nightly-all" not in due(cron, "mozilla-central", "2026-11-24T09:59:59")
    # run-on-projects names only mozilla-central.
    assert "nightly-all" not in due(cron, "mozilla-beta", "2026-11-24T10:00")
    fires = fires_between(cron, "mozilla-central", at("2026-11-24T00:00"), at("2026-11-25T00:00"))
    assert [f.slot.hour for f in fires.fires if f.job_name == "nightly-all"] == [10, 22]


def test_gecko_by_project_without_default_fires_only_where_listed() -> None:
    cron = load("mozilla__gecko-dev.cron.yml")
    # l10n-bumper: autoland at 6:45 and 18:45, mozilla-beta at 9:00.
    assert "l10n-bumper" in due(cron, "autoland", "2026-11-24T06:45")
    assert "l10n-bumper" in due(cron, "autoland", "2026-11-24T18:45")
    assert "l10n-bumper" not in due(cron, "autoland", "2026-11-24T09:00")
    assert "l10n-bumper" in due(cron, "mozilla-beta", "2026-11-24T09:00")
    assert "l10n-bumper" not in due(cron, "mozilla-beta", "2026-11-24T06:45")
    assert "l10n-bumper" not in due(cron, "mozilla-central", "2026-11-24T09:00")


def test_gecko_weekday_schedules() -> None:
    cron = load("mozilla__gecko-dev.cron.yml")
    # 2026-11-23 is a Monday; daily-releases fires Mon/Wed/Fri at 13:00 on mozilla-beta.
    assert "daily-releases" in due(cron, "mozilla-beta", "2026-11-23T13:00")
    assert "daily-releases" not in due(cron, "mozilla-beta", "2026-11-24T13:00")
    assert "daily-releases" in due(cron, "mozilla-beta", "2026-11-25T13:00")
    assert "daily-releases" in due(cron, "mozilla-beta", "2026-11-27T13:00")
    assert "daily-releases" not in due(cron, "mozilla-beta", "2026-11-28T13:00")


def test_yaml_octal_hour_reads_as_build_decision_reads_it() -> None:
    # `hour: 01` is YAML 1.1 octal for 1.
    cron = load("mozilla__gecko-dev.cron.yml")
    assert "custom-car-perf-testing" in due(cron, "mozilla-central", "2026-11-24T01:00")


def test_by_project_default_applies_to_other_projects() -> None:
    cron = load("mozilla__application-services.cron.yml")
    assert due(cron, "application-services", "2026-11-24T05:00") == ["nightly"]
    # `default: []` means never, and is not an error.
    assert due(cron, "some-fork", "2026-11-24T05:00") == []


def test_every_hour_at_a_quarter_past() -> None:
    cron = load("mozilla__fx-desktop-qa-automation.cron.yml")
    fires = fires_between(
        cron, "fx-desktop-qa-automation", at("2026-11-24T00:00"), at("2026-11-25T00:00")
    )
    beta = [fire.slot for fire in fires.fires if fire.job_name == "new-beta-qa"]
    assert beta == [at(f"2026-11-24T{hour:02d}:15") for hour in range(24)]
    assert due(cron, "any", "2026-11-24T11:15") == ["new-beta-qa", "new-devedition-qa"]


def test_jobs_without_run_on_projects_run_everywhere() -> None:
    cron = load("mozilla__crash-ping-ingest.cron.yml")
    assert due(cron, "crash-ping-ingest", "2026-11-24T06:00") == ["daily-update"]
    assert due(cron, "another-name", "2026-11-24T06:00") == ["daily-update"]
    assert due(cron, "crash-ping-ingest", "2026-11-24T06:15") == []


def test_when_absent_or_empty_never_fires_on_schedule() -> None:
    training = load("mozilla-releng__staging-firefox-translations-training.cron.yml")
    [job] = training.jobs
    assert isinstance(job.kind, TriggerAction)
    assert job.kind.extra_input == {"wandb-publication": False}
    assert job.kind.include_cron_input
    year = fires_between(training, "staging", at("2026-01-01T00:00"), at("2027-01-01T00:00"))
    assert year.fires == ()

    fenix = load("mozilla-mobile__fenix.cron.yml")
    year = fires_between(fenix, "fenix", at("2026-01-01T00:00"), at("2027-01-01T00:00"))
    assert year.fires == ()


def test_trigger_action_jobs_are_planned_like_decision_tasks() -> None:
    cron = load("mozilla__enterprise-firefox.cron.yml")
    # 2026-11-25 is a Wednesday.
    names = due(cron, "mozilla-beta", "2026-11-25T07:00")
    assert "merge-beta-to-release-dry-run" in names
    job = cron.job("merge-beta-to-release-dry-run")
    assert job is not None
    assert isinstance(job.kind, TriggerAction)
    assert job.kind.action_name == "merge-automation"
    assert dict(job.kind.extra_input) == {"force-dry-run": True, "behavior": "beta-to-release"}
    assert not job.kind.include_cron_input


def test_decision_task_settings_are_read() -> None:
    cron = load("mozilla__gecko-dev.cron.yml")
    condprof = cron.job("condprof")
    assert condprof is not None
    assert isinstance(condprof.kind, DecisionTask)
    assert condprof.kind.include_push_tasks
    assert condprof.kind.optimize_target_tasks is False
    assert condprof.kind.target_tasks_method == "condprof"
