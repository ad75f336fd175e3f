"""`tc-scheduler notify test`: a test message through the real path, to the local Slack and Sentry."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from click.testing import CliRunner, Result

from scheduler.cli import main
from tests.emulator.sentry import FakeSentry
from tests.emulator.slack import FakeSlack
from tests.support.fakes import SENTRY_KEY, SLACK_CHANNELS, SLACK_TOKEN


def write_config(tmp_path: Path, notify: dict[str, object]) -> Path:
    path = tmp_path / "service.yml"
    config = {
        "taskcluster": {"root-url": "https://tc.example.com"},
        "ledger": f"sqlite:///{tmp_path / 'ledger.db'}",
        "projects": [
            {"name": "demo", "repository": "https://github.com/example/demo", "trust-domain": "tcs"}
        ],
        "notify": notify,
    }
    path.write_text(json.dumps(config))
    return path


def invoke(config: Path, *arguments: str, env: dict[str, str] | None = None) -> Result:
    command = ["notify", "test", "--config", str(config), *arguments]
    return CliRunner().invoke(main, command, env=env, catch_exceptions=False)


def bot(slack: FakeSlack, **extra: object) -> dict[str, object]:
    return {"slack": {"api-url": slack.api_url, "channel": "#releng", **extra}}


def test_sends_a_test_message_to_the_configured_channel(slack: FakeSlack, tmp_path: Path) -> None:
    result = invoke(write_config(tmp_path, bot(slack)), env={"SLACK_BOT_TOKEN": SLACK_TOKEN})

    assert result.exit_code == 0, result.output
    assert "sent to #releng" in result.stdout
    [message] = slack.messages_in("releng")
    assert "Test message from tc-scheduler" in (message.text or "")
    assert "notifications work" in json.dumps(message.blocks)
    assert SLACK_TOKEN not in result.output


def test_channel_option_posts_elsewhere_and_each_test_is_a_new_message(
    slack: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path, bot(slack))
    for _ in range(2):
        result = invoke(config, "--channel", "#nightly", env={"SLACK_BOT_TOKEN": SLACK_TOKEN})
        assert result.exit_code == 0, result.output
    assert len(slack.messages_in("nightly")) == 2
    assert slack.messages_in("releng") == []


def test_a_channel_slack_does_not_know_fails_with_what_to_do(
    slack: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path, bot(slack))
    result = invoke(config, "--channel", "#nowhere", env={"SLACK_BOT_TOKEN": SLACK_TOKEN})

    assert result.exit_code == 1
    assert "not sent to #nowhere" in result.stderr
    assert "channel_not_found" in result.stderr
    assert "check the channel in the notification config" in result.stderr
    assert "not sent to #nowhere: " in result.stderr, "given up on: no retry can help"


def test_a_wrong_token_fails_without_showing_it(slack: FakeSlack, tmp_path: Path) -> None:
    wrong = "xoxb-0000-" + secrets.token_hex(12)
    result = invoke(write_config(tmp_path, bot(slack)), env={"SLACK_BOT_TOKEN": wrong})

    assert result.exit_code == 1
    assert "invalid_auth" in result.stderr
    assert "SLACK_BOT_TOKEN" in result.stderr
    assert wrong not in result.output


def test_an_incoming_webhook_works_and_takes_no_channel(tmp_path: Path) -> None:
    with FakeSlack.running(
        token=SLACK_TOKEN, channels=SLACK_CHANNELS, webhook_channel="nightly"
    ) as slack:
        config = write_config(tmp_path, {"slack": {}})
        env = {"SLACK_WEBHOOK_URL": slack.webhook_url}
        result = invoke(config, env=env)
        assert result.exit_code == 0, result.output
        assert "sent to the incoming webhook" in result.stdout
        [message] = slack.messages_in("nightly")
        assert "Test message" in (message.text or "")

        refused = invoke(config, "--channel", "#releng", env=env)
        assert refused.exit_code == 2
        assert "incoming webhook posts to one channel" in refused.stderr
        assert slack.webhook_url not in result.output + refused.output


def test_sentry_gets_a_test_event(fake_sentry: FakeSentry, tmp_path: Path) -> None:
    config = write_config(tmp_path, {"sentry": {}})
    result = invoke(config, env={"SENTRY_DSN": fake_sentry.dsn})
    assert result.exit_code == 0, result.output
    assert "sent a test event to Sentry" in result.stdout
    [event] = fake_sentry.wait_for("event")
    assert event.json["message"] == "tc-scheduler notify test: Sentry is set up"
    assert f"(event id {event.json['event_id']})" in result.stdout
    assert SENTRY_KEY not in result.output


def test_nothing_configured_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke(write_config(tmp_path, {}))
    assert result.exit_code == 2
    assert "configure notify.slack or notify.sentry" in result.stderr
