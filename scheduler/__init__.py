"""tc-scheduler: runs Taskcluster projects' `.cron.yml` jobs exactly once per slot.

The package's layers and what each module owns are in docs/architecture.md.
"""

__version__ = "0.1.0"
