"""`shipyard promotions`: request one, approve or reject it, let it through a freeze, cancel it,
watch it, list and show them, export its evidence."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.client import (
    INTERRUPTED,
    POLL_SECONDS,
    ApiClient,
    AppOption,
    KeyOption,
    TenantOption,
    app_id_of,
    hint_for,
    run_api,
    tenant_of,
    use_key,
    version_number,
)
from cli.output import (
    Format,
    OutputOption,
    console,
    date_of,
    err,
    local_time,
    now,
    paint,
    render,
)

promotions_cli = typer.Typer(
    help="Promotions: request one, approve or reject it, watch it, read its evidence."
)

PROMOTION_OPEN = ("pending_approval", "waiting_window", "deploying", "verifying")
PROMOTION_FAILED = ("failed", "rejected", "cancelled", "expired")

VersionOption = Annotated[str, typer.Option("--version", help="release version: 3 or v3")]
PromotionArgument = Annotated[str, typer.Argument(help="the promotion's id")]


@promotions_cli.command("create")
def promotions_create(
    ctx: typer.Context,
    app: AppOption,
    version: VersionOption,
    environment: Annotated[str, typer.Option(help="the environment to promote to")],
    note: Annotated[str, typer.Option(help="what and why, for the approvers")] = "",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            "--watch",
            help="follow it until it ends (through approvals and freeze windows), or return "
            "once requested",
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="promote although the app is paused")
    ] = False,
    api_key: KeyOption = None,
) -> None:
    """Ask for a release to be promoted to an environment.

    The promotion waits for the approvals and freeze windows of that environment's policy,
    then deploys the same digest and verifies it for the soak time."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    number = version_number(version)
    body: dict[str, Any] = {"version": number, "environment": environment, "note": note}
    if force:
        body["force"] = True
    promotion = run_api(ctx, lambda api: api.post(f"/apps/{app_id}/promotions", body))
    console.print(
        f"Promotion {promotion['id']}: v{number} to {environment}, "
        f"requested by {escape(promotion['requested_by'])}"
    )
    print_promotion_next(promotion, app)
    if wait:
        watch_promotion(ctx, app_id, promotion["id"])


def print_promotion_next(promotion: dict[str, Any], app: str) -> None:
    ident = promotion["id"]
    console.print(f"  workflow  {promotion['workflow_id']}")
    needed = promotion["required_approvals"]
    if needed:
        console.print(
            f"  needs {needed} approval{'s' if needed != 1 else ''} from people other than the "
            f"requester: shipyard promotions approve {ident} --app {app} --api-key <their key>"
        )
    else:
        console.print("  needs no approval")
    console.print(f"  watch it: shipyard promotions watch {ident} --app {app}")


@promotions_cli.command("preflight")
def promotions_preflight(
    ctx: typer.Context,
    app: AppOption,
    version: VersionOption,
    environment: Annotated[str, typer.Option(help="the environment to promote to")],
    output: OutputOption = Format.table,
) -> None:
    """Whether a release can be promoted to an environment now, and why not.

    Names every reason it cannot; exits 1 when it cannot."""
    app_id = app_id_of(ctx, app)
    number = version_number(version)
    path = f"/apps/{app_id}/promotions/preflight"
    found = run_api(ctx, lambda api: api.get(path, version=number, environment=environment))

    def table() -> None:
        verdict = "can be promoted" if found["promotable"] else "cannot be promoted now"
        console.print(f"v{number} ({found['lifecycle_state']}) {verdict} to {environment}")
        for reason in found["reasons"]:
            console.print(f"  - {escape(reason)}")
        console.print(f"  needs {found['required_approvals']} approval(s)")

    render(found, output, table)
    if not found["promotable"]:
        raise typer.Exit(1)


@promotions_cli.command("approve")
def promotions_approve(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    comment: Annotated[str, typer.Option(help="kept with the approval in the evidence")] = "",
    digest: Annotated[
        str | None,
        typer.Option(help="the digest you reviewed; default: the promotion's, shown before"),
    ] = None,
    api_key: KeyOption = None,
) -> None:
    """Approve a promotion with your own key.

    The approval is bound to the digest shown (or given with --digest): if the promotion is
    not of that digest it is refused. It is refused too for the requester, for a second
    approval by the same person and for a key without the approver scope."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    base = f"/apps/{app_id}/promotions/{promotion_id}"
    if digest is None:
        found = run_api(ctx, lambda api: api.get(base))
        digest = str(found["release_digest"])
        console.print(f"Approving v{found['version']} to {found['environment']}: {escape(digest)}")
    body = {"comment": comment, "release_digest": digest}
    answer = run_api(ctx, lambda api: api.post(f"{base}/approve", body))
    approvers = _approvers(answer)
    console.print(
        f"Approved promotion {answer['id']} (v{answer['version']} to {answer['environment']}): "
        f"{len(approvers)} of {answer['required_approvals']} approvals "
        f"({escape(', '.join(approvers))})"
    )


@promotions_cli.command("reject")
def promotions_reject(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    comment: Annotated[str, typer.Option(help="why; kept in the evidence")] = "",
    api_key: KeyOption = None,
) -> None:
    """Reject the promotion; it ends `rejected` and deploys nothing."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/promotions/{promotion_id}/reject"
    answer = run_api(ctx, lambda api: api.post(path, {"comment": comment}))
    console.print(
        f"Rejected promotion {answer['id']} (v{answer['version']} to {answer['environment']})"
    )


@promotions_cli.command("override-freeze")
def promotions_override_freeze(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    reason: Annotated[str, typer.Option(help="why it cannot wait; audited")],
    api_key: KeyOption = None,
) -> None:
    """Let a promotion waiting for a freeze window through now.

    Needs the scope freeze:override and someone other than the requester; audited."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/promotions/{promotion_id}/override-freeze"
    answer = run_api(ctx, lambda api: api.post(path, {"reason": reason}))
    console.print(
        f"Freeze overridden for promotion {answer['id']} ({answer['environment']}): "
        f"{escape(reason)}"
    )


@promotions_cli.command("cancel")
def promotions_cancel(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    api_key: KeyOption = None,
) -> None:
    """Cancel a promotion.

    Before its deploy it just ends `cancelled`; after, the environment is rolled back to what
    ran before."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/promotions/{promotion_id}/cancel"
    answer = run_api(ctx, lambda api: api.post(path))
    console.print(
        f"Cancel requested for promotion {answer['id']} (it was {answer['status']}); "
        f"follow it: shipyard promotions watch {answer['id']} --app {app}"
    )


@promotions_cli.command("retry")
def promotions_retry(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    force: Annotated[
        bool, typer.Option("--force", help="go ahead although the app is paused")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow it until it ends")] = False,
    output: OutputOption = Format.table,
    api_key: KeyOption = None,
) -> None:
    """Run a promotion that failed in its deploy or verify phase again.

    A new promotion (its `retry_of` names the failed one) carries the approvals the failed one
    had, bound to the same digest; freeze windows, the release's state, the environment lock
    and a pause are checked as they are now."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/promotions/{promotion_id}/retry"
    promotion = run_api(ctx, lambda api: api.post(path, {"force": force}))

    def table() -> None:
        console.print(
            f"Promotion {promotion['id']} retries {promotion_id}: v{promotion['version']} to "
            f"{promotion['environment']}"
        )
        print_promotion_next(promotion, app)

    render(promotion, output, table)
    if wait:
        watch_promotion(ctx, app_id, promotion["id"])


@promotions_cli.command("list")
def promotions_list(
    ctx: typer.Context,
    app: AppOption,
    api_key: KeyOption = None,
    output: OutputOption = Format.table,
) -> None:
    """The app's promotions, newest first."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    page = run_api(ctx, lambda api: api.all_pages(f"/apps/{app_id}/promotions"))

    def table() -> None:
        if not page["items"]:
            console.print(f"app {app} has no promotions yet")
            return
        rows = Table("id", "version", "env", "status", "requested by", "created", box=None)
        for item in page["items"]:
            rows.add_row(
                item["id"],
                f"v{item['version']}",
                item["environment"],
                item["status"],
                escape(item["requested_by"]),
                local_time(item["created_at"], seconds=False),
            )
        console.print(rows)

    render(page, output, table)


@promotions_cli.command("show")
def promotions_show(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    api_key: KeyOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Status, approvals and gates of one promotion.

    Exits 1 if it ended other than succeeded."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    base = f"/apps/{app_id}/promotions/{promotion_id}"
    found = run_api(ctx, lambda api: api.get(base))

    def table() -> None:
        packet = run_api(ctx, lambda api: api.get(f"{base}/evidence"))
        approvers = _approvers(found)
        rows = [
            ("Status", found["status"]),
            ("Release", f"v{found['version']}  {found['release_digest']}"),
            ("Env", found["environment"]),
            ("Requested", f"by {found['requested_by']} at {local_time(found['created_at'])}"),
            ("Note", found["note"] or "-"),
            ("Approvals", f"{len(approvers)} of {found['required_approvals']}"),
        ]
        for approval in found["approvals"]:
            comment = f"  {approval['comment']!r}" if approval["comment"] else ""
            when = local_time(approval["at"])
            rows.append(("", f"{approval['decision']} by {approval['subject']} at {when}{comment}"))
        if found["status"] == "pending_approval" and found.get("expires_at"):
            rows.append(("Expires", local_time(found["expires_at"], seconds=False)))
        rows.append(("Gates", "" if packet["gates"] else "-"))
        for gate in packet["gates"]:
            mark = "passed" if gate.get("passed") else "holding"
            rows.append(("", f"{gate.get('gate')}: {mark}, {gate.get('detail', '')}"))
        if packet.get("verification"):
            verification = packet["verification"]
            healthy = "healthy" if verification.get("healthy") else "unhealthy"
            rows.append(("Verified", f"{healthy}: {verification.get('summary', '')}"))
        if found.get("failure_reason"):
            rows.append(("Failure", found["failure_reason"]))
        if found.get("completed_at"):
            rows.append(("Completed", local_time(found["completed_at"])))
        rows.append(("Workflow", found["workflow_id"]))
        for label, value in rows:
            console.print(f"{label:<10} {escape(str(value))}")

    render(found, output, table)
    if found["status"] in PROMOTION_FAILED:
        raise typer.Exit(1)


@promotions_cli.command("watch")
def promotions_watch(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    api_key: KeyOption = None,
) -> None:
    """Follow a promotion to its end.

    Prints each change with its time (approvals received, the freeze window it waits for,
    deploying, verifying); exits 0 if it succeeded, 1 otherwise."""
    use_key(ctx, api_key)
    watch_promotion(ctx, app_id_of(ctx, app), promotion_id)


def _approvers(promotion: dict[str, Any]) -> list[str]:
    return [
        str(item["subject"])
        for item in promotion.get("approvals", [])
        if item.get("decision") == "approve"
    ]


def _promotion_state(api: ApiClient, base: str) -> tuple[dict[str, Any], str]:
    """The promotion and a line saying where it is: approvals so far, the window it waits
    for, or the phase it is in."""
    found = api.get(base)
    status = found["status"]
    if status == "pending_approval" and not found["required_approvals"]:
        return found, "no approval needed"
    if status == "pending_approval":
        approvers = _approvers(found)
        by = f": {', '.join(approvers)}" if approvers else ""
        return found, f"{len(approvers)} of {found['required_approvals']} approvals{by}"
    if status == "waiting_window":
        gates = api.get(f"{base}/evidence")["gates"]
        for gate in gates:
            detail = str(gate.get("detail", ""))
            if gate.get("gate") == "freeze_window" and not gate.get("passed"):
                until = detail.removeprefix("frozen until ").strip()
                return found, f"frozen until {local_time(until)} {date_of(until)}".rstrip()
        return found, "frozen"
    if status == "deploying":
        return found, f"deploying v{found['version']} to {found['environment']}"
    if status == "verifying":
        return found, "verifying the rollout stays healthy for the soak time"
    return found, found.get("failure_reason") or ""


def watch_promotion(ctx: typer.Context, app_id: str, promotion_id: str) -> None:
    base = f"/apps/{app_id}/promotions/{promotion_id}"
    found, line = run_api(ctx, lambda api: _promotion_state(api, base))
    console.print(
        f"Following promotion {found['id']}: v{found['version']} to {found['environment']}"
    )
    shown: tuple[str, str] | None = None
    try:
        while True:
            status = found["status"]
            if (status, line) != shown:
                console.print(f"  {now()}  {paint(status, 16, PROMOTION_FAILED)} {escape(line)}")
                shown = (status, line)
            if status not in PROMOTION_OPEN:
                break
            time.sleep(POLL_SECONDS)
            found, line = run_api(ctx, lambda api: _promotion_state(api, base))
    except KeyboardInterrupt:
        console.print("\nStopped watching; the promotion goes on.")
        console.print(f"  watch it again: shipyard promotions watch {promotion_id} --app {app_id}")
        raise typer.Exit(INTERRUPTED) from None
    status = found["status"]
    if status == "succeeded":
        console.print(
            f"Promotion {found['id']} [green]succeeded[/green]: v{found['version']} runs in "
            f"{found['environment']}"
        )
        return
    reason = found.get("failure_reason") or status
    err.print(f"[red]Promotion {found['id']} {status}[/red]: {escape(reason)}")
    code = re.match(r"([A-Z][A-Z0-9_]+): ", reason)
    hint = hint_for(code[1]) if code else None
    if hint:
        err.print(f"  what to do: {escape(hint)}")
    raise typer.Exit(1)


@promotions_cli.command("evidence")
def promotions_evidence(
    ctx: typer.Context,
    promotion_id: PromotionArgument,
    app: AppOption,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="write the JSON packet to this file (default: print it)"),
    ] = None,
    api_key: KeyOption = None,
    output: OutputOption = Format.json,
) -> None:
    """A promotion's evidence packet, as JSON (or YAML with -o yaml).

    Who requested, who approved when with which comment, the gates, the digests, timings and
    the verification result."""
    use_key(ctx, api_key)
    app_id = app_id_of(ctx, app)
    path = f"/apps/{app_id}/promotions/{promotion_id}/evidence"
    packet = run_api(ctx, lambda api: api.get(path))
    if file is None:
        render(packet, Format.yaml if output is Format.yaml else Format.json, lambda: None)
        return
    file.write_text(json.dumps(packet, indent=2) + "\n")
    approvers = ", ".join(_approvers(packet)) or "nobody"
    console.print(
        f"Evidence of promotion {packet['promotion_id']} written to {file} "
        f"(outcome {packet['outcome']['status']}, approved by {escape(approvers)})"
    )


@promotions_cli.command("pending")
def promotions_pending(
    ctx: typer.Context,
    tenant: TenantOption = None,
    api_key: KeyOption = None,
    output: OutputOption = Format.table,
) -> None:
    """Promotions waiting for approvals that the caller's key may give now."""
    use_key(ctx, api_key)
    slug = tenant_of(ctx, tenant)
    path = f"/tenants/{slug}/pending-approvals"
    body = run_api(ctx, lambda api: api.get(path), slug)

    def table() -> None:
        if not body["items"]:
            console.print("nothing is waiting for your approval")
            return
        rows = Table(
            "id", "app", "version", "env", "requested by", "needs", "note", "expires", box=None
        )
        for item in body["items"]:
            rows.add_row(
                item["id"],
                item["app_id"],
                f"v{item['version']}",
                item["environment"],
                escape(item["requested_by"]),
                str(item["required_approvals"]),
                escape(item["note"]),
                local_time(item.get("expires_at"), seconds=False),
            )
        console.print(rows)

    render(body, output, table)
