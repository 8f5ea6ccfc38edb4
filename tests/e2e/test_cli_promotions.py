"""`shipyard releases|promotions|rollback` as a team runs them: a release walked through its
lifecycle to qa, promoted to prod behind two approvers who use their own keys (the requester's
approval refused with a hint), watched to its end, its evidence exported; then a rollback that
is refused while prod has nothing earlier, and one that puts v1 back after v2 was promoted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from sqlmodel import Session, select

from core.models import Release
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_push_to_deploy import App

ROOT = Path(__file__).resolve().parents[2]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


async def start(api_url: str, key: str, *args: str) -> asyncio.subprocess.Process:
    """The CLI in a child process; this event loop keeps serving the API meanwhile."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_API_URL=api_url, SHIPYARD_API_KEY=key, PYTHONUNBUFFERED="1")
    env["SHIPYARD_CONFIG"] = os.devnull  # no saved context of the machine's user
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


async def finish(process: asyncio.subprocess.Process, within: float = 60) -> tuple[int, str]:
    try:
        output, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
        raise AssertionError(f"the CLI is still running: {output.decode()}") from None
    assert process.returncode is not None
    return process.returncode, output.decode()


class Cli:
    def __init__(self, stack: Stack, app_id: str) -> None:
        self.url = stack.settings.public_url
        self.key = stack.tenant.key
        self.app_id = app_id

    async def run(self, *args: str, key: str | None = None) -> tuple[int, str]:
        """`shipyard ARGS --app APP_ID` with the requester's key unless another is given."""
        return await finish(await self.start(*args, key=key))

    async def start(self, *args: str, key: str | None = None) -> asyncio.subprocess.Process:
        return await start(self.url, key or self.key, *args, "--app", self.app_id)


async def approver_key(stack: Stack, name: str) -> str:
    made = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/keys",
        json={
            "subject": f"{name}-{uuid.uuid4().hex[:6]}",
            "role": "member",
            "scopes": ["approve", "apps:read"],
        },
        headers=stack.tenant.headers,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


async def set_policy(stack: Stack, app_id: str, env: str, body: dict[str, object]) -> None:
    response = await stack.api.patch(
        f"/api/v1/apps/{app_id}/environments/{env}", json=body, headers=stack.tenant.headers
    )
    assert response.status_code == 200, response.text


def promotion_id(output: str) -> str:
    found = re.search(rf"promotion ({UUID})", output, re.IGNORECASE)
    assert found, output
    return found[1]


async def test_two_approvers_promote_to_prod_and_a_rollback(stack: Stack, tmp_path: Path):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app_id = done["app_id"]
    cli = Cli(stack, app_id)
    alice, bob = await approver_key(stack, "alice"), await approver_key(stack, "bob")
    for env in ("qa", "staging"):
        await set_policy(stack, app_id, env, {"soak_seconds": 1})
    await set_policy(
        stack, app_id, "prod", {"approval_policy": {"required_approvals": 2}, "soak_seconds": 1}
    )

    code, output = await cli.run("releases", "list")
    assert code == 0, output
    assert re.search(r"v1\s+[0-9a-f]{12}\s+sha256:[0-9a-f]{12}\s+DEV\s+dev\s+declare-rc", output)

    # The lifecycle: declare-rc, a refused jump with the allowed actions named, accept-rc (a
    # promotion to qa, followed), declare-stable.
    code, output = await cli.run("releases", "lifecycle", "declare-rc", "--version", "1")
    assert code == 0 and "Release v1 is now RC (next: accept-rc, reject-rc)" in output, output
    code, output = await cli.run("releases", "lifecycle", "declare-stable", "--version", "v1")
    assert code == 1, output
    assert "LIFECYCLE_TRANSITION_INVALID: " in output and "accept-rc" in output, output
    assert "request id" in output and "what to do:" in output, output
    code, output = await cli.run(
        "releases", "lifecycle", "accept-rc", "--version", "1", "--note", "for QA", "--watch"
    )
    assert code == 0, output
    assert "to qa" in output and re.search(r"succeeded: v1 runs in qa", output), output
    code, output = await cli.run("releases", "lifecycle", "declare-stable", "--version", "1")
    assert code == 0 and "Release v1 is now STABLE" in output, output

    # A promotion to prod behind two approvals, watched from the start.
    code, output = await cli.run(
        "promotions", "create", "--version", "1", "--environment", "prod", "--note", "ship it"
    )
    assert code == 0, output
    assert "needs 2 approvals" in output, output
    ident = promotion_id(output)
    watching = await cli.start("promotions", "watch", ident)

    code, output = await cli.run("promotions", "approve", ident, "--comment", "mine")
    assert code == 1, output
    assert "APPROVER_IS_REQUESTER: " in output and "what to do:" in output, output
    assert "their own key" in output and "Traceback" not in output, output

    code, output = await finish(
        await start(cli.url, alice, "promotions", "pending", "--tenant", stack.tenant.slug)
    )
    assert code == 0 and ident in output, output

    code, output = await cli.run(
        "promotions", "approve", ident, "--comment", "looks good", key=alice
    )
    assert code == 0 and "1 of 2 approvals" in output, output
    code, output = await cli.run("promotions", "approve", ident, key=alice)
    assert code == 1 and "ALREADY_APPROVED: " in output, output
    # The command's own --api-key wins over SHIPYARD_API_KEY (the requester's key here).
    code, output = await cli.run(
        "promotions", "approve", ident, "--comment", "ship", "--api-key", bob
    )
    assert code == 0 and "2 of 2 approvals" in output, output

    code, output = await finish(watching)
    assert code == 0, output
    # The watch polls: a short stage (deploying, verifying) may pass between two looks.
    positions = [
        output.index(seen) for seen in ("0 of 2 approvals", "1 of 2 approvals", "succeeded")
    ]
    assert positions == sorted(positions), output
    assert "succeeded: v1 runs in prod" in output, output

    code, output = await cli.run("promotions", "show", ident)
    assert code == 0, output
    assert re.search(r"Status\s+succeeded", output) and "2 of 2" in output, output
    assert "approvals: passed" in output and "freeze_window: passed" in output, output

    evidence = tmp_path / "evidence.json"
    code, output = await cli.run("promotions", "evidence", ident, "--file", str(evidence))
    assert code == 0 and "outcome succeeded" in output, output
    packet = json.loads(evidence.read_text())
    approvers = [item["subject"] for item in packet["approvals"]]
    assert [name.split("-")[0] for name in approvers] == ["alice", "bob"], packet
    assert all(name in output for name in approvers), output
    assert packet["verification"]["healthy"] is True, packet
    # For scripts: the API's own bodies, as JSON and YAML.
    code, output = await cli.run("promotions", "evidence", ident, "-o", "yaml")
    assert code == 0 and yaml.safe_load(output) == packet, output
    code, output = await cli.run("promotions", "show", ident, "-o", "json")
    shown = await stack.api.get(
        f"/api/v1/apps/{app_id}/promotions/{ident}", headers=stack.tenant.headers
    )
    assert code == 0 and json.loads(output) == shown.json(), output

    # prod has run only v1: nothing earlier to roll back to.
    code, output = await cli.run("rollback", "--environment", "prod", "--reason", "test")
    assert code == 1, output
    assert "ROLLBACK_REFUSED: prod has no earlier good release" in output, output
    assert "what to do:" in output and "Traceback" not in output, output

    # v2 from a push, straight to prod once nobody needs to approve, then rolled back to v1.
    app = App(stack, done)
    commit = await app.push("v2")
    await app.wait_until(
        lambda: any(d.commit_sha == commit and d.status == "succeeded" for d in app.deployments()),
        what="v2 built and deployed to dev",
    )
    await set_policy(stack, app_id, "prod", {"approval_policy": {"required_approvals": 0}})
    for action in ("declare-rc", "accept-rc", "declare-stable"):
        code, output = await cli.run("releases", "lifecycle", action, "--version", "2", "--watch")
        assert code == 0, output
    code, output = await cli.run(
        "promotions", "create", "--version", "2", "--environment", "prod", "--watch"
    )
    assert code == 0 and "succeeded: v2 runs in prod" in output, output

    code, output = await cli.run(
        "rollback", "--environment", "prod", "--reason", "v2 misbehaves", "--watch"
    )
    assert code == 0, output
    assert "Rolling back prod from v2 to v1" in output, output
    assert "Rollback succeeded: prod runs v1 again" in output, output
    code, output = await cli.run("releases", "list")
    assert code == 0 and re.search(r"v1\s+\S+\s+\S+\s+PROD\s+prod\s", output), output
    assert re.search(r"v2\s+\S+\s+\S+\s+PROD\s+dev, qa\s", output), output

    code, output = await cli.run("rollback", "--environment", "prod", "--to-version", "v9")
    assert code == 1 and "NOT_FOUND" in output, output


async def test_a_freeze_window_an_override_a_rejection_and_a_cancel(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    app_id = done["app_id"]
    cli = Cli(stack, app_id)
    alice = await approver_key(stack, "alice")
    with Session(stack.engine) as session:
        release = session.exec(
            select(Release).where(Release.app_id == uuid.UUID(app_id), Release.version == 1)
        ).one()
        release.lifecycle = "STABLE"
        session.add(release)
        session.commit()
    await set_policy(stack, app_id, "staging", {"soak_seconds": 1})
    await set_policy(stack, app_id, "prod", {"approval_policy": {"required_approvals": 1}})
    now = datetime.now(UTC)
    window = await stack.api.post(
        f"/api/v1/apps/{app_id}/environments/staging/freeze-windows",
        json={
            "kind": "one_off",
            "reason": "release train",
            "starts_at": (now - timedelta(minutes=1)).isoformat(),
            # Long enough that a slow machine still finds it frozen when the override comes.
            "ends_at": (now + timedelta(seconds=10)).isoformat(),
        },
        headers=stack.tenant.headers,
    )
    assert window.status_code == 201, window.text

    # Frozen: it waits, the requester may not break the glass, and it goes on once it opens.
    code, output = await cli.run(
        "promotions", "create", "--version", "1", "--environment", "staging"
    )
    assert code == 0 and "needs no approval" in output, output
    frozen = promotion_id(output)
    watching = await cli.start("promotions", "watch", frozen)
    code, output = await cli.run("promotions", "override-freeze", frozen, "--reason", "urgent")
    assert code == 1 and "OVERRIDE_BY_REQUESTER: " in output, output
    assert "freeze:override" in output, output
    code, output = await finish(watching)
    assert code == 0, output
    assert re.search(r"waiting_window\s+frozen until \d\d:\d\d:\d\d", output), output
    assert "succeeded: v1 runs in staging" in output, output

    # Rejected by an approver: it ends rejected, and show and watch exit 1.
    code, output = await cli.run("promotions", "create", "--version", "1", "--environment", "prod")
    assert code == 0 and "needs 1 approval " in output, output
    rejected = promotion_id(output)
    code, output = await cli.run(
        "promotions", "reject", rejected, "--comment", "not today", key=alice
    )
    assert code == 0 and f"Rejected promotion {rejected}" in output, output
    code, output = await cli.run("promotions", "watch", rejected)
    assert code == 1 and re.search(rf"Promotion {rejected} rejected", output), output
    code, output = await cli.run("promotions", "show", rejected)
    assert code == 1 and re.search(r"Status\s+rejected", output), output
    assert "reject by alice" in output and "'not today'" in output, output

    # Cancelled while it waits for approval.
    code, output = await cli.run("promotions", "create", "--version", "1", "--environment", "prod")
    cancelled = promotion_id(output)
    code, output = await cli.run("promotions", "cancel", cancelled)
    assert code == 0 and f"Cancel requested for promotion {cancelled}" in output, output
    code, output = await cli.run("promotions", "watch", cancelled)
    assert code == 1 and f"Promotion {cancelled} cancelled" in output, output
    code, output = await cli.run("promotions", "list")
    assert code == 0, output
    for ident, status in ((frozen, "succeeded"), (rejected, "rejected"), (cancelled, "cancelled")):
        assert re.search(rf"{ident}\s+v1\s+\w+\s+{status}", output), output
    code, output = await finish(
        await start(cli.url, alice, "promotions", "pending", "--tenant", stack.tenant.slug)
    )
    # The tenant is shared with other tests: nothing of this app waits for alice.
    assert code == 0 and app_id not in output, output


async def test_an_unknown_promotion_is_reported_in_words(stack: Stack):
    cli = Cli(stack, str(uuid.uuid4()))
    for command in ("show", "watch", "approve", "evidence"):
        code, output = await cli.run("promotions", command, str(uuid.uuid4()))
        assert code == 1 and "NOT_FOUND: " in output and "Traceback" not in output, output
