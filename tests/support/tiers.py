"""Each test's tier, marked as it is collected: `unit` (the pure core: no server, database,
repository or process), `integration`, `process` or `conformance`; and `property` on top for a
Hypothesis property. `--fast` (`make test-fast`) runs the unit tests that are not properties.

A test's tier is, first that matches:
- the tier it is marked with (`@pytest.mark.process` on a test, say);
- `conformance` under tests/conformance, `process` under tests/faults or in PROCESS_MODULES;
- `integration` if it uses a fixture of SERVICE_FIXTURES (directly or through another fixture);
- `unit` in a module of PURE_MODULES;
- `integration` otherwise: a new module runs in the fast tier only once it is listed as pure.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import is_hypothesis_test

TIERS = ("unit", "integration", "process", "conformance")
TESTS = Path(__file__).resolve().parents[1]
FAST_OPTION = "--fast"

# Modules whose tests start processes: tc-scheduler services and commands, their children.
PROCESS_MODULES = frozenset(
    {
        "test_api_service.py",
        "test_dashboard_browser.py",
        "test_dashboard_hooks_browser.py",
        "test_service.py",
        "test_service_cli.py",
    }
)

# Fixtures that bring up a server (the emulator, the fake Slack or Sentry) or a ledger database.
SERVICE_FIXTURES = frozenset(
    {"emulator", "ledger", "ledger_url", "slack", "slack_server", "fake_sentry", "sentry_server"}
)

# Modules of tests of pure code (the cron language, rendering, the configuration, hook and
# risk models, message rendering, the emulator's own parsers); any of their tests that uses a
# SERVICE_FIXTURES fixture is an integration test all the same.
PURE_MODULES = frozenset(
    {
        "test_cli.py",
        "test_clock.py",
        "test_config.py",
        "test_config_notify.py",
        "test_config_retention.py",
        "test_cron_corpus.py",
        "test_cron_language.py",
        "test_cron_properties.py",
        "test_cron_words.py",
        "test_crontab.py",
        "test_deadlines.py",
        "test_emulator_cron_parser.py",
        "test_emulator_scopes.py",
        "test_engine.py",
        "test_expiry.py",
        "test_hooks.py",
        "test_logs.py",
        "test_metrics_recording.py",
        "test_notify_sentry.py",
        "test_notify_slack.py",
        "test_queue_rules.py",
        "test_recent.py",
        "test_redaction.py",
        "test_render.py",
        "test_retrying.py",
        "test_slot_plan.py",
        "test_wording.py",
    }
)


def add_fast_option(parser: pytest.Parser) -> None:
    parser.addoption(
        FAST_OPTION,
        action="store_true",
        help="only unit tests that are not Hypothesis properties; no other test module is "
        "imported (make test-fast)",
    )


def holds_no_fast_test(path: Path, config: pytest.Config) -> bool:
    """Whether `path` (a directory or a module) can be left alone under --fast."""
    if not config.getoption(FAST_OPTION):
        return False
    if path.is_dir():
        return path.parent == TESTS and path.name in ("conformance", "faults")
    if not (path.name.startswith("test_") and path.suffix == ".py"):
        return False
    return path.parent != TESTS or path.name not in PURE_MODULES


def tier_of(item: pytest.Item) -> str:
    marked = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
    if marked:
        return marked[0]
    place = item.path.resolve().relative_to(TESTS)
    if place.parts[0] == "conformance":
        return "conformance"
    if place.parts[0] == "faults" or place.name in PROCESS_MODULES:
        return "process"
    if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return "integration"
    return "unit" if place.name in PURE_MODULES else "integration"


def mark_tiers(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each item's tier (and `property`); under --fast, deselects all but the fast."""
    fast: list[pytest.Item] = []
    slow: list[pytest.Item] = []
    for item in items:
        tier = tier_of(item)
        if tier not in (mark.name for mark in item.iter_markers()):
            item.add_marker(tier)
        prop = is_hypothesis_test(getattr(item, "obj", None))
        if prop:
            item.add_marker("property")
        (fast if tier == "unit" and not prop else slow).append(item)
    if config.getoption(FAST_OPTION) and slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = fast
