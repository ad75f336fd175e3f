"""The ledger's settings in the configuration: retention (defaults, durations, what is too short)
and how long `run` waits for the ledger at start; and the ledger-only loading prune uses."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from scheduler.config.errors import ConfigError
from scheduler.config.loading import load_config, load_ledger_settings, load_ledger_url
from scheduler.config.model import Retention

MINIMAL = """\
taskcluster:
  root-url: https://tc.example.com
ledger: postgresql+psycopg://scheduler@db:5432/scheduler
projects:
  - name: mozilla-central
    repository: https://hg.mozilla.org/mozilla-central
    trust-domain: gecko
"""


def problems(load: object, text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(textwrap.dedent(text), "service.yml", {})  # type: ignore[operator]
    return [str(diagnostic) for diagnostic in raised.value.diagnostics]


def test_retention_defaults_to_90_days_of_fires_30_of_letters_and_a_year_of_audit() -> None:
    config = load_config(MINIMAL, "service.yml", {})

    assert config.retention == Retention(
        fires=timedelta(days=90), letters=timedelta(days=30), audit=timedelta(days=365)
    )
    assert config.ledger_wait == timedelta(minutes=10)
    assert config.masked()["retention"] == {"fires": "90d", "letters": "30d", "audit": "365d"}
    assert config.masked()["ledger-wait"] == "10m"


def test_retention_and_ledger_wait_are_written_as_durations() -> None:
    text = MINIMAL + "retention: {fires: 14d, audit: 730d}\nledger-wait: 1h30m\n"

    config = load_config(text, "service.yml", {})

    assert config.retention == Retention(
        fires=timedelta(days=14), letters=timedelta(days=30), audit=timedelta(days=730)
    )
    assert config.ledger_wait == timedelta(hours=1, minutes=30)
    settings = load_ledger_settings(text, "service.yml", {})
    assert settings.retention == config.retention
    assert settings.url == "postgresql+psycopg://scheduler@db:5432/scheduler"


def test_a_retention_shorter_than_a_day_is_refused_where_it_is_written() -> None:
    text = MINIMAL + "retention:\n  fires: 2h\n  letters: 1d\n"

    [message] = problems(load_config, text)
    assert message.startswith("service.yml:9:10: error: retention.fires: 2h is too short")
    assert "write 1d or more, like 90d" in message
    # Pruning refuses it too, even though reading the ledger needs no retention.
    assert problems(load_ledger_settings, text) == [message]
    assert load_ledger_url(text, "service.yml", {}).startswith("postgresql")


def test_retention_that_is_not_a_duration_or_not_known_says_what_to_write() -> None:
    text = MINIMAL + "retention: {fires: 3 months, slots: 10d}\nledger-wait: soon\n"

    messages = problems(load_config, text)

    assert any(":8:20:" in m and "fires must be a duration like 6h, 90m, 1d" in m for m in messages)
    assert any(":8:30:" in m and "unknown key `slots` in retention" in m for m in messages)
    assert any(":9:14:" in m and "ledger-wait must be a duration" in m for m in messages)


def test_pruning_needs_the_ledger_and_retention_and_nothing_else() -> None:
    # No Taskcluster root URL: every other command that runs the service would refuse it.
    text = "projects: []\nretention: {letters: 7d}\n"

    settings = load_ledger_settings(text, "service.yml", {})

    assert settings.retention.letters == timedelta(days=7)
    assert settings.url.endswith("ledger.db")


def test_fires_are_kept_longer_than_any_slot_may_still_be_fired() -> None:
    text = MINIMAL.replace(
        "    trust-domain: gecko\n",
        "    trust-domain: gecko\n    catch-up: {max-lateness: 10d}\n",
    )
    assert problems(load_config, text + "retention: {fires: 5d}\n") == [
        "service.yml:9:20: error: retention.fires: 5d would forget fires whose slots may still "
        "be fired (project mozilla-central has a max-lateness of 10d); keep fires at least 11d, "
        "or shorten that max-lateness"
    ]
    assert load_config(text + "retention: {fires: 11d}\n", "service.yml", {}).retention.fires == (
        timedelta(days=11)
    )
