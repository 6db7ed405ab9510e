"""`python -m taskservice.cli` is `task-cli`."""

from taskservice.cli import main

main()
