"""Starting the emulator as its own process, as benchmarks do (`python -m tests.emulator`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def start_standalone(*arguments: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The running process and its credentials line (`rootUrl`, `clientId`, `accessToken`)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.emulator", *arguments],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())
