"""Telling people: its own settings, events, where they go (routing), the outbox's delivery,
Slack and Sentry.

Knows nothing of scheduling, nor of the service configuration that holds its settings: the
watcher hands it events; it delivers them once, in order.
"""
