"""Reusable plumbing that knows nothing of scheduling: diagnostics, YAML with positions,
schema messages, secret redaction, structured logs, waiting with a deadline."""
