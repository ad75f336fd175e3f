"""The HTTP API `tc-scheduler run` serves, versioned under /api/v1, and its health checks.

It reads the ledger and acts through the engine and the ledger; it knows no firing internals.
"""
