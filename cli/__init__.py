"""The `shipyard` command: a client of Shipyard's REST API, one module per command group."""

from cli.app import main

__all__ = ["main"]
