"""tc-scheduler: runs Taskcluster projects' `.cron.yml` jobs exactly once per slot.

The package layout and its contracts are described in DESIGN.md.
"""

__version__ = "0.1.0"
