"""A Slack outage, then `kill -9` while a message is being sent: the held notices go out once,
soon after Slack answers again.

Projects whose template renders no task make notices as soon as the service starts. Slack
answers 5xx (the outage) until the letters have failed and wait for their next attempt; then
it holds the next call unanswered (mid-send) and the service is killed. Slack answers again
and the service restarts: under the same `replica` name it takes its letters back at once;
under a new name, once their lease runs out. The lateness is from Slack answering again to the
last notice sent, by the service's clock.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.responses import PlainTextResponse

from scheduler.cron.timing import slot_of
from scheduler.ledger import Letter, LetterState
from scheduler.notify.routing import SLACK_PREFIX
from tests.emulator import Emulator
from tests.emulator.slack import FakeSlack
from tests.faults.harness import (
    Cli,
    Figures,
    environment,
    opened,
    poll,
    report,
    same_or_new_replica_name,
    sized,
    sqlite_url,
)
from tests.faults.worlds import EVERY_SLOT, project_entry, write_config
from tests.support.repos import Repository

TOKEN = "xoxb-1111-outage-trial-token"
NO_TASKS = "version: 1\ntasks: []\n"


class GatedSlack(FakeSlack):
    """The fake Slack behind a gate the trial works: `open`, `down` (every call answered 503,
    as a proxy in front of a dead Slack does) or `hold` (calls wait, unanswered, until the gate
    moves; then they get a 503: whoever sent them is gone)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = "open"
        self.refused = 0
        self.held = 0
        slack = self.app

        async def gate(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http" and self.mode != "open":
                if self.mode == "hold":
                    self.held += 1
                    while self.mode == "hold":
                        await asyncio.sleep(0.05)
                else:
                    self.refused += 1
                await PlainTextResponse("slack is down", 503)(scope, receive, send)
                return
            await slack(scope, receive, send)

        self.app = gate


def slack_letters(ledger_url: str) -> list[Letter]:
    with opened(ledger_url) as ledger:
        return [
            letter for letter in ledger.letters() if letter.destination.startswith(SLACK_PREFIX)
        ]


@same_or_new_replica_name
def test_held_notices_go_out_once_after_an_outage_and_a_kill_mid_send(
    emulator: Emulator, tmp_path: Path, same_name: bool
) -> None:
    # Halfway through a slot, so that no boundary passes while the quick form runs: the
    # restarted service then evaluates the slot the victim did, and makes no new notices.
    emulator.clock.set(slot_of(emulator.clock.now()) + timedelta(minutes=7, seconds=30))
    projects = [f"broken-{n}" for n in range(sized(2, 4))]
    cron = (
        "jobs:\n  - name: often\n"
        "    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}\n"
        f"    when: {EVERY_SLOT}\n"
    )
    entries = [
        project_entry(
            name, Repository(tmp_path / name, {".cron.yml": cron, ".taskcluster.yml": NO_TASKS})
        )
        for name in projects
    ]
    ledger_url = sqlite_url(tmp_path / "ledger.db")
    env = environment(emulator, SLACK_BOT_TOKEN=TOKEN)
    with GatedSlack.running(token=TOKEN, channels={"C0RELENG": "releng"}) as slack:

        def config(replica: str) -> Path:
            settings = (
                f"ledger: {ledger_url}\nstate-dir: {tmp_path / 'state'}\nreplica: {replica}\n"
                "api: {listen: 'off'}\n"
                f"notify: {{slack: {{api-url: '{slack.api_url}', channel: '#releng'}}}}\n"
            )
            return write_config(tmp_path / f"{replica}.yml", settings, *entries)

        # The outage: each attempt waits for the outbox's backoff, so the quick form has none.
        failed_attempts = sized(0, 3)
        slack.mode = "down" if failed_attempts else "hold"
        victim = Cli(["run", "--config", str(config("first"))], env)
        if failed_attempts:
            poll(
                lambda: (
                    victim.alive()
                    and any(
                        letter.attempts >= failed_attempts for letter in slack_letters(ledger_url)
                    )
                ),
                f"{failed_attempts} failed delivery attempts",
            )
            slack.mode = "hold"
        poll(lambda: victim.alive() and slack.held > 0, "a delivery attempt in flight")
        victim.kill()
        held = {letter.id: letter for letter in slack_letters(ledger_url)}
        answering_again = emulator.clock.now()
        slack.mode = "open"

        name = "first" if same_name else "second"
        restarted = Cli(["run", "--config", str(config(name))], env)
        try:
            poll(
                lambda: (
                    bool(held)
                    and all(
                        letter.state is LetterState.SENT for letter in slack_letters(ledger_url)
                    )
                ),
                "the held notices going out",
                every=0.5,
            )
        finally:
            assert restarted.stop() == 0, restarted.text
        letters = slack_letters(ledger_url)
        messages = slack.messages

    sent = [letter for letter in letters if letter.sent_at is not None]
    posted = {(letter.posted or {}).get("ts") for letter in sent}
    last_sent = max(letter.sent_at for letter in sent if letter.sent_at is not None)
    report(
        Figures(
            f"slack outage, kill mid-send, {'same' if same_name else 'new'} replica name",
            fires=len(letters),
            duplicates=len(messages) - len(posted),
            missing=len(letters) - len(sent),
            late=last_sent - answering_again,
            notes={"refused_calls": slack.refused, "held_calls": slack.held},
        )
    )
    assert held, "no notice was held: the trial proved nothing"
    assert {message.ts for message in messages} == posted, "each notice posted once"
    if same_name:
        # Taken back at once, not when the dead process's leases ran out. (A letter made after
        # the kill, as a slot boundary in the full form makes, was never the victim's.)
        for letter in (letter for letter in sent if letter.id in held):
            lease = held[letter.id].lease_until
            assert lease is None or (letter.sent_at is not None and letter.sent_at < lease), (
                letter,
                lease,
            )
    assert TOKEN not in victim.text + restarted.text
