"""The `shipyard` command line: operate Shipyard and drive its API."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Console

from core.doctor import run_checks
from core.migrate import prepare_database
from core.settings import load_settings

app = typer.Typer(help="Shipyard: deployment control plane.", no_args_is_help=True)
console = Console()


@app.command()
def doctor() -> None:
    """Check every configured dependency and say what is wrong."""
    settings = load_settings()
    results = asyncio.run(run_checks(settings))
    for result in results:
        mark = "[green]ok[/green]  " if result.ok else "[red]FAIL[/red]"
        console.print(f"{mark} {result.name:<10} {result.message}", highlight=False)
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Bring the database to this version's schema and refresh the built-in templates."""
    settings = load_settings()
    prepare_database(settings.database_url)
    console.print("database is up to date")


def main() -> None:
    app()
