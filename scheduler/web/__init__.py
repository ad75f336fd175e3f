"""The HTTP API `tc-scheduler run` serves, versioned under /api/v1, and its health checks.

A face of the operations: each route parses, calls one operation and presents its answer.
"""
