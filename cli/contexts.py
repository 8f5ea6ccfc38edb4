"""`shipyard login` and `shipyard context`: save where an API is and the key to use there, and
pick which saved context commands use. Keys are stored, never printed."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from cli.client import API, REQUEST_TIMEOUT, fail
from cli.config import Config, ConfigError, Context, config_path, load_config, save_config
from cli.output import Format, OutputOption, console, print_rows, render

context_cli = typer.Typer(help="Contexts: the saved APIs and keys, and which one is current.")


def redacted(key: str) -> str:
    """`shp_<id>_<secret>` with the secret hidden: enough to tell keys apart."""
    prefix, _, rest = key.partition("_")
    ident, _, _ = rest.partition("_")
    return f"{prefix}_{ident}_…" if prefix == "shp" and ident else "…"


def _config() -> Config:
    try:
        return load_config()
    except ConfigError as exc:
        fail(str(exc), "fix or remove the file, then `shipyard login` again")


def _check_key(url: str, key: str) -> None:
    """Refuse a key the API does not know; a key lacking a scope is still a key."""
    try:
        answer = httpx.get(
            f"{url}{API}/templates",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {key}"},
            timeout=REQUEST_TIMEOUT,
        )
    except httpx.TransportError:
        fail(
            f"the Shipyard API at {url} is not reachable",
            "check --url, or save the context anyway with --no-verify",
        )
    if answer.status_code == 401:
        fail(f"the API at {url} does not accept this key", "check --api-key")


def login(
    url: Annotated[str, typer.Option(help="the Shipyard API, e.g. https://shipyard.example.com")],
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key",
            help="your API key (asked for when left out)",
            prompt=True,
            hide_input=True,
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(help="the context's name (default: the API's host)", show_default=False),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant", "-t", help="the tenant commands act in by default", show_default=False
        ),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="check the API accepts the key first")
    ] = True,
) -> None:
    """Save a context (API URL, key, tenant) and make it the current one.

    Kept in $SHIPYARD_CONFIG or ~/.config/shipyard/config.yaml, readable by you only."""
    url = url.rstrip("/")
    if verify:
        _check_key(url, api_key)
    context_name = name or urlparse(url).netloc or url
    config = _config()
    config.contexts[context_name] = Context(context_name, url, api_key, tenant)
    config.current = context_name
    path = save_config(config)
    console.print(
        f"Logged in to {escape(url)} as context {escape(context_name)} "
        f"(key {redacted(api_key)}), saved in {path}"
    )


@context_cli.command("list")
def context_list(output: OutputOption = Format.table) -> None:
    """The saved contexts; the current one is marked."""
    config = _config()
    body = [
        {
            "name": context.name,
            "url": context.url,
            "tenant": context.tenant,
            "current": context.name == config.current,
        }
        for context in config.contexts.values()
    ]

    def table() -> None:
        if not body:
            console.print(f"no contexts saved in {config_path()}; `shipyard login` saves one")
            return
        rows = Table("", "name", "url", "tenant", box=None)
        for item in body:
            rows.add_row(
                "*" if item["current"] else "",
                escape(str(item["name"])),
                escape(str(item["url"])),
                escape(str(item["tenant"] or "-")),
            )
        console.print(rows)

    render(body, output, table)


@context_cli.command("use")
def context_use(name: Annotated[str, typer.Argument(help="the context to make current")]) -> None:
    """Make a saved context the current one."""
    config = _config()
    if name not in config.contexts:
        fail(f"no context named {name!r}", "`shipyard context list` shows the saved ones")
    config.current = name
    save_config(config)
    console.print(f"Now using context {escape(name)} ({escape(config.contexts[name].url)})")


@context_cli.command("show")
def context_show(output: OutputOption = Format.table) -> None:
    """The current context: its API, tenant and which key (never the key itself)."""
    config = _config()
    current = config.current_context()
    if current is None:
        fail(
            f"no current context in {config_path()}",
            "`shipyard login --url URL --api-key KEY` saves one",
        )
    body = {
        "name": current.name,
        "url": current.url,
        "tenant": current.tenant,
        "api_key": redacted(current.api_key),
        "file": str(config_path()),
    }
    render(body, output, lambda: print_rows([(k.capitalize(), v) for k, v in body.items()]))
