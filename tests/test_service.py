"""`tc-scheduler run` as a process: start-up tick, JSON logs, and a graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from scheduler.cron import format_slot
from scheduler.ledger import Ledger
from tests.conftest import REPOSITORY_ROOT
from tests.emulator import Emulator
from tests.repos import Repository

EVERY_SLOT = """\
jobs:
  - name: often
    job: {type: decision-task, treeherder-symbol: O, target-tasks-method: often}
    when: [{minute: 0}, {minute: 15}, {minute: 30}, {minute: 45}]
"""


def test_run_ticks_at_start_logs_json_and_stops_on_sigterm(
    emulator: Emulator, tmp_path: Path
) -> None:
    repository = Repository(
        tmp_path / "repo",
        {
            ".cron.yml": EVERY_SLOT,
            ".taskcluster.yml": (REPOSITORY_ROOT / ".taskcluster.yml").read_text(),
        },
    )
    config = tmp_path / "service.yml"
    config.write_text(
        "projects:\n"
        "  - name: demo\n"
        "    repository: https://github.com/example/demo\n"
        f"    fetch-from: {repository.url}\n"
        "    trust-domain: tcs\n"
    )
    env = {
        **os.environ,
        "TASKCLUSTER_ROOT_URL": emulator.root_url,
        "TASKCLUSTER_CLIENT_ID": emulator.root_credentials["clientId"],
        "TASKCLUSTER_ACCESS_TOKEN": emulator.root_credentials["accessToken"],
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "scheduler", "run", "--config", str(config)],
        cwd=REPOSITORY_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict[str, object]] = []
    evaluated = threading.Event()

    def read_logs() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(json.loads(line))
            if lines[-1].get("event") == "slot evaluated":
                evaluated.set()

    reader = threading.Thread(target=read_logs, daemon=True)
    reader.start()
    try:
        assert evaluated.wait(timeout=60), lines
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    reader.join(timeout=10)

    events = [line["event"] for line in lines]
    assert events[0] == "starting"
    assert events[-1] == "stopped"
    [fired] = [line for line in lines if line["event"] == "fired"]
    assert {"project", "job", "slot", "task_id", "timestamp", "level"} <= set(fired)
    assert fired["task_id"] in {task.task_id for task in emulator.tasks()}
    assert emulator.root_credentials["accessToken"] not in json.dumps(lines)
    ledger = Ledger.open(f"sqlite:///{tmp_path / '.tc-scheduler' / 'ledger.db'}")
    try:
        last = ledger.last_evaluated_slot("demo")
    finally:
        ledger.close()
    assert last is not None
    assert format_slot(last) == fired["slot"]
