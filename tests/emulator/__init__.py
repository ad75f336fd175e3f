"""A local Taskcluster (queue, index, hooks, auth) and local Slack and Sentry, for tests and benchmarks.

They speak the real wire protocols, so the real `taskcluster`, `slack_sdk` and `sentry_sdk`
clients talk to them unchanged. `python -m tests.emulator` runs the Taskcluster one standalone.
"""

from tests.emulator.clock import Clock
from tests.emulator.server import ROOT_CLIENT_ID, Emulator

__all__ = ["ROOT_CLIENT_ID", "Clock", "Emulator"]
