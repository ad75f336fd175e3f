"""The `tc-scheduler` command line, a face of the operations: each command parses its
arguments, calls one operation, and presents the answer. `main` is the command.
"""

from scheduler.cli.registry import main

__all__ = ["main"]
