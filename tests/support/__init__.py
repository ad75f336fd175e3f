"""What the tests share: helpers, seeds and the fake Slack and Sentry fixtures.

Test modules import from here (and from tests/emulator), never from one another.
"""
