"""`shipyard github`: install the GitHub App on an organization for a tenant, and list what an
installation reaches."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import urlencode

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import INTERRUPTED, POLL_SECONDS, TenantOption, run_api, tenant_of
from cli.output import Format, OutputOption, console, err, render

github_cli = typer.Typer(
    help="The GitHub App: install it on an organization for the tenant, list repositories."
)

OrgOption = Annotated[
    str | None,
    typer.Option(
        "--org",
        help="preselect this organization in the install URL (the sandbox's install page "
        "installs on it; on GitHub you choose in the browser)",
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=1, help="seconds to wait for the browser to come back")
]


@github_cli.command("install")
def github_install(
    ctx: typer.Context,
    tenant: TenantOption = None,
    org: OrgOption = None,
    timeout: TimeoutOption = 600,
    output: OutputOption = Format.table,
) -> None:
    """Print the App's install URL, wait until GitHub sent the browser back to Shipyard, then
    bind the new installation to the tenant."""
    slug = tenant_of(ctx, tenant)
    base = f"/tenants/{slug}/github-installations"
    started = run_api(ctx, lambda api: api.post(f"{base}/install-start"), slug)
    url = started["install_url"]
    if org:
        url += ("&" if "?" in url else "?") + urlencode({"org": org})
    # Instructions go to stderr, so `-o json` leaves stdout to the bound installation.
    err.print("Open this URL in a browser and install the App on your organization:")
    err.print(f"  {url}", markup=False)
    status_path = f"{base}/install-start/{started['state_id']}"
    installation_id = _wait_for_return(ctx, slug, status_path, timeout)
    body = {"state": started["state"], "installation_id": installation_id}
    bound = run_api(ctx, lambda api: api.post(f"{base}/install-complete", body), slug)
    render(
        bound,
        output,
        lambda: console.print(
            f"Installation {bound['installation_id']} ({escape(bound['account_login'])}) "
            f"bound to {slug}"
        ),
    )


def _wait_for_return(ctx: typer.Context, slug: str, status_path: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    try:
        with err.status("waiting for GitHub to send the browser back to Shipyard..."):
            while True:
                shown: dict[str, Any] = run_api(ctx, lambda api: api.get(status_path), slug)
                if shown["status"] in ("returned", "completed"):
                    return int(shown["installation_id"])
                if shown["status"] == "expired" or time.monotonic() > deadline:
                    err.print(
                        "[red]The install was not completed in time[/red]; nothing was bound. "
                        "Run `shipyard github install` again."
                    )
                    raise typer.Exit(1)
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        err.print("\nStopped waiting; nothing was bound. Run `shipyard github install` again.")
        raise typer.Exit(INTERRUPTED) from None


@github_cli.command("repositories")
def github_repositories(
    ctx: typer.Context,
    installation_id: Annotated[int, typer.Argument(help="an installation bound to the tenant")],
    tenant: TenantOption = None,
    output: OutputOption = Format.table,
) -> None:
    """The repositories an installation bound to the tenant can reach, as GitHub says now."""
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/github-installations/{installation_id}/repositories"
    page = run_api(ctx, lambda api: api.all_pages(path), slug)

    def table() -> None:
        rows = Table("repository", "default branch", "private", box=None)
        for item in page["items"]:
            rows.add_row(
                escape(item["full_name"]),
                escape(item["default_branch"]),
                "yes" if item["private"] else "no",
            )
        console.print(rows)

    render(page, output, table)
