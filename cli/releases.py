"""`shipyard releases`: list an app's releases, show one, move one through its lifecycle, and
register an image a CI job built."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from cli.client import AppOption, KeyOption, app_id_of, run_api, use_key, version_number
from cli.deployments import Watch, follow_deployment
from cli.output import Format, OutputOption, console, local_time, print_rows, render, short_digest
from cli.promotions import VersionOption, print_promotion_next, watch_promotion

releases_cli = typer.Typer(
    help="Releases: list them, show one, move one through its lifecycle, register one CI built."
)


@releases_cli.command("list")
def releases_list(
    ctx: typer.Context,
    app: AppOption,
    api_key: KeyOption = None,
    output: OutputOption = Format.table,
) -> None:
    """The app's releases, newest first.

    Each with its commit, digest, lifecycle state, where it runs now and the lifecycle actions
    its state allows."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    page = run_api(ctx, lambda api: api.all_pages(f"/apps/{app_id}/releases"))

    def table() -> None:
        if not page["items"]:
            console.print(f"app {app} has no releases yet")
            return
        rows = Table(
            "version", "commit", "digest", "state", "active in", "allowed actions", "created",
            box=None,
        )  # fmt: skip
        for item in page["items"]:
            rows.add_row(
                f"v{item['version']}",
                item["commit_sha"][:12],
                short_digest(item["image_digest"]),
                item["lifecycle"],
                ", ".join(item["active_in"]) or "-",
                ", ".join(item["allowed_actions"]) or "-",
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


@releases_cli.command("show")
def releases_show(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="release version: 3 or v3")],
    app: AppOption,
    output: OutputOption = Format.table,
) -> None:
    """One release: commit, digest, lifecycle state and where it runs."""
    app_id = app_id_of(ctx, app)
    number = version_number(version)
    found = run_api(ctx, lambda api: api.get(f"/apps/{app_id}/releases/{number}"))

    def table() -> None:
        print_rows(
            [
                ("Version", f"v{found['version']}"),
                ("Commit", found["commit_sha"]),
                ("Image", found.get("image_ref") or found["image_digest"]),
                ("State", found["lifecycle"]),
                ("Active in", ", ".join(found["active_in"]) or "-"),
                ("Next", ", ".join(found["allowed_actions"]) or "-"),
                ("Created", local_time(found["created_at"], seconds=False)),
            ]
        )

    render(found, output, table)


@releases_cli.command("lifecycle")
def releases_lifecycle(
    ctx: typer.Context,
    action: Annotated[
        str,
        typer.Argument(
            help="declare-rc, accept-rc, reject-rc, declare-stable, declare-rejected or "
            "deploy-stable"
        ),
    ],
    app: AppOption,
    version: VersionOption,
    environment: Annotated[
        str | None,
        typer.Option(help="deploy-stable only: staging or prod", show_default=False),
    ] = None,
    note: Annotated[str, typer.Option(help="why; kept in the audit log")] = "",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            "--watch",
            help="follow the promotion a deploying action starts until it ends",
        ),
    ] = False,
    api_key: KeyOption = None,
) -> None:
    """Move a release through its lifecycle.

    accept-rc (to qa) and deploy-stable (to --environment) start a promotion, so approvals and
    freeze windows apply; the release takes its new state once that promotion has deployed
    it."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    number = version_number(version)
    body: dict[str, Any] = {"action": action, "note": note}
    if environment is not None:
        body["environment"] = environment
    path = f"/apps/{app_id}/releases/{number}/lifecycle"
    answer = run_api(ctx, lambda api: api.post(path, body))
    if "promotion" not in answer:
        allowed = ", ".join(answer["allowed_actions"]) or "none"
        console.print(f"Release v{number} is now {answer['lifecycle']} (next: {allowed})")
        return
    promotion = answer["promotion"]
    console.print(
        f"{action} of v{number} started promotion {promotion['id']} to "
        f"{promotion['environment']}; v{number} stays {answer['release']['lifecycle']} "
        "until it is deployed"
    )
    print_promotion_next(promotion, app)
    if wait:
        watch_promotion(ctx, app_id, promotion["id"])


@releases_cli.command("register")
def releases_register(
    ctx: typer.Context,
    app: AppOption,
    image: Annotated[
        str,
        typer.Option(help="the image your CI pushed, by digest: registry/repository@sha256:..."),
    ],
    commit: Annotated[
        str | None, typer.Option(help="the commit it was built from", show_default=False)
    ] = None,
    note: Annotated[str, typer.Option(help="kept in the audit log")] = "",
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="follow its deployment until it ends")
    ] = False,
    api_key: KeyOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Register an image your CI built (what a CI job runs after pushing it).

    It becomes the app's next release and is deployed to the first environment like a push;
    the same digest again is the same release. Needs a key with the releases:write scope."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    body: dict[str, Any] = {"image": image, "note": note}
    if commit:
        body["commit_sha"] = commit
    answer = run_api(ctx, lambda api: api.post(f"/apps/{app_id}/releases", body))
    release, deployment = answer["release"], answer["deployment"]

    def table() -> None:
        console.print(f"Release v{release['version']} is {release['image_ref']}")
        if deployment is None:
            console.print("  registered before: nothing new to deploy")
        else:
            console.print(
                f"  deployment {deployment['id']} to {deployment['environment']} started; "
                f"follow it: shipyard deployments watch --app {app} -d {deployment['id']}"
            )

    render(answer, output, table)
    if wait and deployment is not None:
        follow_deployment(ctx, Watch(app_id, str(deployment["id"]), set(), None, False))
