"""`python -m scheduler` is the `tc-scheduler` command."""

from scheduler.cli import main

main()
