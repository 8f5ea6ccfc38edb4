"""`python -m cli` runs the `shipyard` command."""

from cli.app import main

main()
