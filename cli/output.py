"""How the `shipyard` command prints: rich tables and lines for people, or the API's own body
as JSON or YAML (`-o json|yaml`) for scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

WIDE_OUTPUT = 240

# Soft wrap: URLs, ids and commands must stay on one line so they can be copied.
console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)
if not console.is_terminal:
    # Piped output is read by scripts and tests: no squeezing table columns to a guessed 80.
    console.width = WIDE_OUTPUT


class Format(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    Format,
    typer.Option(
        "--output",
        "-o",
        help="table for people; json or yaml print the API's body for scripts",
        case_sensitive=False,
    ),
]


def render(body: Any, output: Format, table: Callable[[], None]) -> None:
    """Print `body` as JSON or YAML exactly as the API gave it, or call `table` to show it to
    a person."""
    if output is Format.json:
        typer.echo(json.dumps(body, indent=2))
    elif output is Format.yaml:
        typer.echo(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), nl=False)
    else:
        table()


def print_rows(rows: list[tuple[str, Any]], width: int = 10) -> None:
    """Label-value lines of a `show` command."""
    for label, value in rows:
        console.print(f"{label:<{width}} {escape(str(value))}")


def parsed_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def local_time(value: str | None, *, seconds: bool = True) -> str:
    """An API timestamp in this machine's time zone: `14:03:07`, or `2024-05-01 14:03`."""
    moment = parsed_time(value) if value else None
    if moment is None:
        return value or ""
    return moment.astimezone().strftime("%H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def date_of(value: str) -> str:
    """The local date of a timestamp when it is not today, else nothing."""
    moment = parsed_time(value)
    if moment is None:
        return ""
    local = moment.astimezone()
    return "" if local.date() == datetime.now().astimezone().date() else local.strftime("%Y-%m-%d")


def now() -> str:
    return datetime.now().astimezone().strftime("%H:%M:%S")


def paint(status: str, width: int, failed: tuple[str, ...]) -> str:
    """The status padded to a column, green once it succeeded and red when it ended otherwise."""
    padded = f"{status:<{width}}"
    if status in ("succeeded", "done"):
        return f"[green]{padded}[/green]"
    if status in failed:
        return f"[red]{padded}[/red]"
    return padded


def short_digest(digest: str) -> str:
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest[:19]
