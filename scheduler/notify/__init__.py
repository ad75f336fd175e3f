"""Telling people: events, where they go (routing), the outbox's delivery, Slack and Sentry.

Knows nothing of scheduling: the watcher hands it events; it delivers them once, in order.
"""
