"""Promotions against the stand-ins: approvals as Updates whose validators refuse before
anything is written, freeze windows that hold and then open (or are overridden), verification
that rolls back, cancel, reject, expiry; gates checked again before the deploy, approvals bound to
the digest, the environment lock waited for; evidence and pending approvals."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

import worker
from activities.locks import lock_holder
from core.clock import utcnow
from core.models import Environment, FreezeWindow, Promotion, Release, ReleaseActivation
from core.naming import namespace_for
from tests.fixtures.stack import Stack
from tests.integration.api.test_events import collect
from tests.integration.workflows.test_push_to_deploy import App
from tests.replay.histories import check_and_record
from workflows.promote import promote_workflow_id

FINISHED = ("succeeded", "failed", "rejected", "cancelled", "expired")


class Promoting:
    def __init__(self, stack: Stack, app: App) -> None:
        self.stack = stack
        self.app = app

    def set_policy(self, env: str, **fields: Any) -> None:
        with Session(self.stack.engine) as session:
            row = session.exec(
                select(Environment).where(
                    Environment.app_id == uuid.UUID(self.app.id), Environment.name == env
                )
            ).one()
            for name, value in fields.items():
                setattr(row, name, value)
            session.add(row)
            session.commit()

    def set_lifecycle(self, version: int, state: str) -> None:
        with Session(self.stack.engine) as session:
            release = session.exec(
                select(Release).where(
                    Release.app_id == uuid.UUID(self.app.id), Release.version == version
                )
            ).one()
            release.lifecycle = state
            session.add(release)
            session.commit()

    def release(self, version: int) -> Release:
        with Session(self.stack.engine) as session:
            return session.exec(
                select(Release).where(
                    Release.app_id == uuid.UUID(self.app.id), Release.version == version
                )
            ).one()

    async def key(self, subject: str, scopes: list[str]) -> dict[str, str]:
        made = await self.stack.api.post(
            f"/api/v1/tenants/{self.stack.tenant.slug}/keys",
            json={
                "subject": f"{subject}-{uuid.uuid4().hex[:6]}",
                "role": "member",
                "scopes": scopes,
            },
            headers=self.stack.tenant.headers,
        )
        assert made.status_code == 201, made.text
        return {"X-API-Key": made.json()["key"]}

    async def request(self, version: int, env: str, headers: dict[str, str] | None = None) -> dict:
        response = await self.stack.api.post(
            f"/api/v1/apps/{self.app.id}/promotions",
            json={"version": version, "environment": env, "note": "ship it"},
            headers=headers or self.stack.tenant.headers,
        )
        assert response.status_code == 202, response.text
        return dict(response.json())

    async def act(self, promotion: dict, action: str, headers: dict[str, str], **body: Any):
        """An action on the promotion; an approval names the digest the approver was shown."""
        if action == "approve":
            body.setdefault("release_digest", promotion["release_digest"])
        return await self.stack.api.post(
            f"/api/v1/apps/{self.app.id}/promotions/{promotion['id']}/{action}",
            json=body,
            headers=headers,
        )

    async def state(self, promotion: dict) -> dict:
        response = await self.stack.api.get(
            f"/api/v1/apps/{self.app.id}/promotions/{promotion['id']}",
            headers=self.stack.tenant.headers,
        )
        return dict(response.json())

    async def wait(self, promotion: dict, *statuses: str, within: float = 60) -> dict:
        wanted = statuses or FINISHED
        deadline = time.monotonic() + within
        while True:
            state = await self.state(promotion)
            if state["status"] in wanted:
                return state
            if time.monotonic() > deadline:
                pytest.fail(f"promotion still {state['status']}: {state}")
            await asyncio.sleep(0.2)

    async def push_and_deploy(self, text: str) -> None:
        """A new commit pushed, built and running in dev: the app's next release."""
        commit = await self.app.push(text)
        await self.app.wait_until(
            lambda: any(
                d.commit_sha == commit and d.status == "succeeded" for d in self.app.deployments()
            ),
            what=f"{commit[:8]} deployed",
        )

    def running_in(self, env: str) -> str | None:
        namespace = namespace_for(self.stack.tenant.slug, self.app.slug, env)
        return self.stack.kube_client.current_image(namespace, self.app.slug)


@pytest.fixture
async def promoting(stack: Stack) -> Promoting:
    return await bootstrapped_for_promotions(stack)


async def bootstrapped_for_promotions(stack: Stack) -> Promoting:
    """A new app whose later environments need no approval and soak for a second."""
    stack.settings.rollout_timeout_seconds = 6
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    promoting = Promoting(stack, App(stack, done))
    for env in ("qa", "staging", "prod"):
        promoting.set_policy(env, required_approvals=0, soak_seconds=1)
    return promoting


async def test_two_approvers_open_the_gate(promoting: Promoting):
    promoting.set_policy("prod", required_approvals=2, soak_seconds=2)
    promoting.set_lifecycle(1, "STABLE")
    first = await promoting.key("alice", ["approve", "apps:read"])
    second = await promoting.key("bob", ["approve", "apps:read"])
    no_scope = await promoting.key("carol", ["apps:read"])
    promotion = await promoting.request(1, "prod")
    # A client of the app's event stream watches it all happen.
    watching = asyncio.create_task(
        collect(
            promoting.stack,
            promoting.app.id,
            stop=lambda item: item.event == "promotion.finished",
            within=120,
        )
    )
    await promoting.wait(promotion, "pending_approval")
    requester = promoting.stack.tenant.headers

    refused = await promoting.act(promotion, "approve", requester, comment="mine")
    assert (refused.status_code, refused.json()["code"]) == (403, "APPROVER_IS_REQUESTER")
    refused = await promoting.act(promotion, "approve", no_scope)
    assert (refused.status_code, refused.json()["code"]) == (403, "SCOPE_MISSING")
    ok = await promoting.act(promotion, "approve", first, comment="looks good")
    assert ok.status_code == 200, ok.text
    again = await promoting.act(promotion, "approve", first)
    assert (again.status_code, again.json()["code"]) == (409, "ALREADY_APPROVED")
    assert (await promoting.state(promotion))["status"] == "pending_approval"
    pending = await promoting.stack.api.get(
        f"/api/v1/tenants/{promoting.stack.tenant.slug}/pending-approvals", headers=second
    )
    # The tenant is shared with other tests: this app's part of the list.
    mine = [item["id"] for item in pending.json()["items"] if item["app_id"] == promoting.app.id]
    assert mine == [promotion["id"]]
    history = promoting.stack.temporal.client.get_workflow_handle(promotion["workflow_id"])
    await check_and_record(
        promoting.stack.temporal.client, promotion["workflow_id"], "promote-waiting"
    )
    ok = await promoting.act(promotion, "approve", second, comment="ship")
    assert ok.status_code == 200

    done = await promoting.wait(promotion)
    assert done["status"] == "succeeded", done
    release = promoting.release(1)
    assert promoting.running_in("prod") == release.image_ref
    assert release.lifecycle == "PROD"
    # Refused updates left nothing in the history: exactly the two approvals were accepted.
    events = [event async for event in history.fetch_history_events()]
    accepted = [
        e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    assert len(accepted) == 2
    evidence = await promoting.stack.api.get(
        f"/api/v1/apps/{promoting.app.id}/promotions/{promotion['id']}/evidence",
        headers=promoting.stack.tenant.headers,
    )
    packet = evidence.json()
    assert [a["subject"] for a in packet["approvals"]] == [
        a["subject"] for a in done["approvals"]
    ] and len(packet["approvals"]) == 2
    assert {a["release_digest"] for a in packet["approvals"]} == {release.image_digest}
    assert packet["release"]["digest"] == release.image_digest
    assert packet["verification"]["healthy"] is True
    await check_and_record(
        promoting.stack.temporal.client, promotion["workflow_id"], "promote-succeeded"
    )
    seen = [
        (item.event, item.data)
        for item in await watching
        if item.data and item.data.get("promotion_id") == promotion["id"]
    ]
    said = [event for event, _data in seen if event != "promotion"]
    assert said == [
        "approval.requested",
        "approval.given",
        "approval.given",
        "promotion.deploying",
        "promotion.finished",
    ]
    assert [data["subject"] for event, data in seen if event == "approval.given"] == [
        a["subject"] for a in done["approvals"]
    ]
    assert seen[-1][1]["status"] == "succeeded"
    statuses = [data["status"] for event, data in seen if event == "promotion"]
    assert statuses[-1] == "succeeded" and "deploying" in statuses


async def test_a_freeze_window_holds_then_opens(promoting: Promoting):
    promoting.set_lifecycle(1, "STABLE")
    with Session(promoting.stack.engine) as session:
        env = session.exec(
            select(Environment).where(
                Environment.app_id == uuid.UUID(promoting.app.id), Environment.name == "staging"
            )
        ).one()
        session.add(
            FreezeWindow(
                environment_id=env.id, kind="one_off", starts_at=utcnow() - timedelta(minutes=1),
                ends_at=utcnow() + timedelta(seconds=8), reason="release train", created_by="ops",
            )
        )  # fmt: skip
        session.commit()
    promotion = await promoting.request(1, "staging")
    waiting = await promoting.wait(promotion, "waiting_window")
    assert waiting["status"] == "waiting_window"
    with Session(promoting.stack.engine) as session:
        row = session.get(Promotion, uuid.UUID(promotion["id"]))
        assert row is not None
        freeze_gate = next(gate for gate in row.gates if gate["gate"] == "freeze_window")
        assert not freeze_gate["passed"] and "frozen until" in freeze_gate["detail"]
    done = await promoting.wait(promotion, within=30)
    assert done["status"] == "succeeded", done


async def test_override_freeze_needs_another_subject_with_the_scope(promoting: Promoting):
    promoting.set_lifecycle(1, "STABLE")
    with Session(promoting.stack.engine) as session:
        env = session.exec(
            select(Environment).where(
                Environment.app_id == uuid.UUID(promoting.app.id), Environment.name == "staging"
            )
        ).one()
        session.add(
            FreezeWindow(
                environment_id=env.id, kind="one_off", starts_at=utcnow() - timedelta(minutes=1),
                ends_at=utcnow() + timedelta(hours=6), reason="holiday", created_by="ops",
            )
        )  # fmt: skip
        session.commit()
    promotion = await promoting.request(1, "staging")
    await promoting.wait(promotion, "waiting_window")
    requester = promoting.stack.tenant.headers
    refused = await promoting.act(promotion, "override-freeze", requester, reason="urgent fix")
    assert (refused.status_code, refused.json()["code"]) == (403, "OVERRIDE_BY_REQUESTER")
    oncall = await promoting.key("oncall", ["freeze:override", "apps:read"])
    ok = await promoting.act(promotion, "override-freeze", oncall, reason="urgent fix")
    assert ok.status_code == 200, ok.text
    done = await promoting.wait(promotion)
    assert done["status"] == "succeeded"


async def test_failed_verification_rolls_back(promoting: Promoting):
    promoting.set_lifecycle(1, "STABLE")
    first = await promoting.request(1, "prod")
    assert (await promoting.wait(first))["status"] == "succeeded"
    v1_image = promoting.running_in("prod")
    await promoting.push_and_deploy("v2")
    promoting.set_lifecycle(2, "STABLE")
    promoting.stack.kube.set_failing_images([promoting.release(2).image_ref])
    second = await promoting.request(2, "prod")
    failed = await promoting.wait(second, within=90)
    assert failed["status"] == "failed", failed
    assert (
        "ROLLOUT_FAILED" in failed["failure_reason"] or "VERIFICATION" in failed["failure_reason"]
    )
    assert promoting.running_in("prod") == v1_image
    await check_and_record(promoting.stack.temporal.client, second["workflow_id"], "promote-failed")


async def test_an_image_that_fails_during_the_soak_is_rolled_back(promoting: Promoting):
    """Verification really verifies: v2 rolls out healthy, then its containers crash-loop
    during the soak; the promotion fails, prod runs v1 again and v2 is not activated there."""
    stack, app_id = promoting.stack, promoting.app.id
    headers = stack.tenant.headers
    promoting.set_lifecycle(1, "STABLE")
    first = await promoting.request(1, "prod")
    assert (await promoting.wait(first))["status"] == "succeeded"
    v1_image = promoting.running_in("prod")
    await promoting.push_and_deploy("v2")
    promoting.set_lifecycle(2, "STABLE")
    v2 = promoting.release(2)
    # Checks at the start and at the end of the soak: the failure comes once the promotion is
    # verifying, so the rollout was seen complete and healthy first.
    soak = await stack.api.patch(
        f"/api/v1/apps/{app_id}/environments/prod", json={"soak_seconds": 5}, headers=headers
    )
    assert (soak.status_code, soak.json()["soak_seconds"]) == (200, 5), soak.text

    second = await promoting.request(2, "prod")
    verifying = await promoting.wait(second, "verifying", "failed", "succeeded")
    assert verifying["status"] == "verifying", verifying
    stack.kube.fail_after(v2.image_ref, 0)
    failed = await promoting.wait(second, within=90)

    assert failed["status"] == "failed", failed
    assert failed["failure_reason"].startswith("VERIFICATION_FAILED"), failed["failure_reason"]
    assert "CrashLoopBackOff" in failed["failure_reason"]
    # Rolled back in the cluster: the Deployment and its pods run v1 again, healthy.
    namespace = namespace_for(stack.tenant.slug, promoting.app.slug, "prod")
    diagnosis = stack.kube_client.diagnose(namespace, promoting.app.slug)
    assert diagnosis.healthy and diagnosis.image == v1_image, diagnosis.summary
    assert {pod.image for pod in diagnosis.pods} == {v1_image}
    # Not activated: prod's current release, v2's lifecycle and the ledger are as before.
    env = await stack.api.get(f"/api/v1/apps/{app_id}/environments/prod", headers=headers)
    assert env.json()["current_version"] == 1, env.text
    release = await stack.api.get(f"/api/v1/apps/{app_id}/releases/2", headers=headers)
    assert release.json()["lifecycle"] == "STABLE"
    assert "prod" not in release.json()["active_in"]
    with Session(stack.engine) as session:
        activations = session.exec(
            select(ReleaseActivation).where(
                ReleaseActivation.release_id == v2.id, ReleaseActivation.environment == "prod"
            )
        ).all()
        assert activations == []
        assert lock_holder(session, uuid.UUID(app_id), "prod") is None
    evidence = await stack.api.get(
        f"/api/v1/apps/{app_id}/promotions/{second['id']}/evidence", headers=headers
    )
    packet = evidence.json()
    assert packet["verification"]["healthy"] is False, packet["verification"]
    assert "CrashLoopBackOff" in packet["verification"]["summary"]
    assert packet["previous_image"] == v1_image
    assert packet["outcome"]["status"] == "failed"


async def test_cancel_reject_and_expiry(promoting: Promoting, stack: Stack):
    promoting.set_lifecycle(1, "STABLE")
    promoting.set_policy("prod", required_approvals=1)
    promoting.set_policy("staging", required_approvals=1)
    cancelled = await promoting.request(1, "prod")
    await promoting.wait(cancelled, "pending_approval")
    response = await promoting.act(cancelled, "cancel", stack.tenant.headers)
    assert response.status_code == 202
    assert (await promoting.wait(cancelled))["status"] == "cancelled"
    assert promoting.running_in("prod") is None
    await check_and_record(stack.temporal.client, cancelled["workflow_id"], "promote-cancelled")

    rejected = await promoting.request(1, "staging")
    await promoting.wait(rejected, "pending_approval")
    reviewer = await promoting.key("rita", ["approve", "apps:read"])
    response = await promoting.act(rejected, "reject", reviewer, comment="not today")
    assert response.status_code == 200
    assert (await promoting.wait(rejected))["status"] == "rejected"

    # The promotion's expiry is the policy's, from when it was asked for.
    promoting.set_policy("prod", required_approvals=1, approval_expiry_seconds=3600)
    expiring = await promoting.request(1, "prod")
    with Session(stack.engine) as session:
        row = session.get(Promotion, uuid.UUID(expiring["id"]))
        assert row is not None and row.expires_at is not None
        assert timedelta(minutes=59) < row.expires_at - row.created_at <= timedelta(hours=1)
    await promoting.wait(expiring, "pending_approval")


async def test_an_unapproved_promotion_expires(promoting: Promoting, stack: Stack):
    """A policy whose approvals expire after two seconds, set through the API."""
    promoting.set_lifecycle(1, "STABLE")
    policy = await stack.api.patch(
        f"/api/v1/apps/{promoting.app.id}/environments/prod",
        json={"approval_policy": {"required_approvals": 1, "approval_expiry_seconds": 2}},
        headers=stack.tenant.headers,
    )
    assert policy.status_code == 200, policy.text
    assert policy.json()["approval_policy"]["approval_expiry_seconds"] == 2
    promotion = await promoting.request(1, "prod")
    assert promotion["status"] == "pending_approval" and promotion["expires_at"]
    expired = await promoting.wait(promotion, within=30)
    assert expired["status"] == "expired", expired
    assert expired["failure_reason"] == "no approval within 2s"
    assert promoting.running_in("prod") is None
    late = await promoting.act(promotion, "approve", await promoting.key("al", ["approve"]))
    assert (late.status_code, late.json()["code"]) == (409, "PROMOTION_NOT_PENDING")


async def test_dev_to_prod_through_the_lifecycle(promoting: Promoting, stack: Stack):
    """declare-rc, accept-rc (→ qa), declare-stable, deploy-stable to staging and to prod with
    two approvals; the lifecycle state follows each deploy, prod runs the same digest as dev."""
    app_id = promoting.app.id
    headers = stack.tenant.headers
    prod_policy = await stack.api.patch(
        f"/api/v1/apps/{app_id}/environments/prod",
        json={"approval_policy": {"required_approvals": 2}, "soak_seconds": 1},
        headers=headers,
    )
    assert prod_policy.status_code == 200, prod_policy.text

    async def lifecycle(action: str, **body: Any) -> dict:
        response = await stack.api.post(
            f"/api/v1/apps/{app_id}/releases/1/lifecycle", json={"action": action, **body},
            headers=headers,
        )  # fmt: skip
        assert response.status_code in (200, 202), response.text
        return dict(response.json())

    wrong = await stack.api.post(
        f"/api/v1/apps/{app_id}/releases/1/lifecycle", json={"action": "declare-stable"},
        headers=headers,
    )  # fmt: skip
    assert wrong.status_code == 409
    assert wrong.json()["code"] == "LIFECYCLE_TRANSITION_INVALID"
    assert "declare-rc" in wrong.json()["detail"]

    await lifecycle("declare-rc")
    to_qa = await lifecycle("accept-rc")
    assert (await promoting.wait(to_qa["promotion"]))["status"] == "succeeded"
    assert promoting.release(1).lifecycle == "QA"
    await lifecycle("declare-stable")
    to_staging = await lifecycle("deploy-stable", environment="staging")
    assert (await promoting.wait(to_staging["promotion"]))["status"] == "succeeded"
    assert promoting.release(1).lifecycle == "STAGING"

    to_prod = await lifecycle("deploy-stable", environment="prod")
    approvers = [await promoting.key(name, ["approve", "apps:read"]) for name in ("ann", "ben")]
    await promoting.wait(to_prod["promotion"], "pending_approval")
    for approver in approvers:
        response = await promoting.act(to_prod["promotion"], "approve", approver, comment="ok")
        assert response.status_code == 200, response.text
    assert (await promoting.wait(to_prod["promotion"]))["status"] == "succeeded"
    release = promoting.release(1)
    assert release.lifecycle == "PROD"
    for env in ("dev", "qa", "staging", "prod"):
        assert promoting.running_in(env) == release.image_ref, env
    listed = await stack.api.get(f"/api/v1/apps/{app_id}/releases", headers=headers)
    assert set(listed.json()["items"][0]["active_in"]) == {"dev", "qa", "staging", "prod"}


# -- gates hold until the deploy; approvals are bound to what the approver saw --------------


async def test_a_freeze_window_added_while_waiting_for_approvals_holds_the_promotion(
    promoting: Promoting, stack: Stack
):
    promoting.set_lifecycle(1, "STABLE")
    promoting.set_policy("staging", required_approvals=1)
    promotion = await promoting.request(1, "staging")
    await promoting.wait(promotion, "pending_approval")
    window = await stack.api.post(
        f"/api/v1/apps/{promoting.app.id}/environments/staging/freeze-windows",
        json={
            "kind": "one_off",
            "reason": "release train",
            "starts_at": (utcnow() - timedelta(minutes=1)).isoformat(),
            "ends_at": (utcnow() + timedelta(seconds=8)).isoformat(),
        },
        headers=stack.tenant.headers,
    )
    assert window.status_code == 201, window.text
    approved = await promoting.act(promotion, "approve", await promoting.key("al", ["approve"]))
    assert approved.status_code == 200, approved.text
    held = await promoting.wait(promotion, "waiting_window", "deploying", "succeeded")
    assert held["status"] == "waiting_window", held
    assert promoting.running_in("staging") is None
    done = await promoting.wait(promotion, within=40)
    assert done["status"] == "succeeded", done
    assert promoting.running_in("staging") == promoting.release(1).image_ref


async def test_a_release_rejected_while_its_promotion_waits_ends_it_rejected(
    promoting: Promoting, stack: Stack
):
    app_id, headers = promoting.app.id, stack.tenant.headers
    promoting.set_policy("qa", required_approvals=1)

    async def lifecycle(action: str) -> Any:
        return await stack.api.post(
            f"/api/v1/apps/{app_id}/releases/1/lifecycle", json={"action": action},
            headers=headers,
        )  # fmt: skip

    assert (await lifecycle("declare-rc")).status_code == 200
    accepted = await lifecycle("accept-rc")
    assert accepted.status_code == 202, accepted.text
    promotion = accepted.json()["promotion"]
    await promoting.wait(promotion, "pending_approval")
    rejected = await lifecycle("reject-rc")
    assert rejected.status_code == 200, rejected.text
    ended = await promoting.wait(promotion, within=20)
    assert ended["status"] == "rejected", ended
    assert "REJECTED" in ended["failure_reason"]
    late = await promoting.act(promotion, "approve", await promoting.key("al", ["approve"]))
    assert late.status_code == 409, late.text
    assert promoting.release(1).lifecycle == "REJECTED"
    assert promoting.running_in("qa") is None
    await check_and_record(stack.temporal.client, promotion["workflow_id"], "promote-rejected")


async def test_an_approval_names_the_digest_it_approves(promoting: Promoting, stack: Stack):
    promoting.set_lifecycle(1, "STABLE")
    promoting.set_policy("prod", required_approvals=1)
    promotion = await promoting.request(1, "prod")
    await promoting.wait(promotion, "pending_approval")
    approver = await promoting.key("al", ["approve"])
    unnamed = await stack.api.post(
        f"/api/v1/apps/{promoting.app.id}/promotions/{promotion['id']}/approve",
        json={"comment": "ok"},
        headers=approver,
    )
    assert unnamed.status_code == 422, unnamed.text
    other = "sha256:" + "0" * 64
    wrong = await promoting.act(promotion, "approve", approver, release_digest=other)
    assert (wrong.status_code, wrong.json()["code"]) == (409, "DIGEST_MISMATCH")
    assert wrong.json()["release_digest"] == promotion["release_digest"]
    handle = stack.temporal.client.get_workflow_handle(promotion["workflow_id"])
    events = [event async for event in handle.fetch_history_events()]
    assert not any(
        e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED for e in events
    )
    right = await promoting.act(promotion, "approve", approver)
    assert right.status_code == 200, right.text
    assert [a["release_digest"] for a in right.json()["approvals"]] == [promotion["release_digest"]]
    assert (await promoting.wait(promotion))["status"] == "succeeded"


async def test_an_approved_promotion_waits_for_the_environment_lock(
    promoting: Promoting, stack: Stack
):
    promoting.set_lifecycle(1, "STABLE")
    promoting.set_policy("staging", required_approvals=1)
    promotion = await promoting.request(1, "staging")
    await promoting.wait(promotion, "pending_approval")
    holder = await stack.hold_environment(promoting.app.id, "staging", "rollback")
    approved = await promoting.act(promotion, "approve", await promoting.key("al", ["approve"]))
    assert approved.status_code == 200, approved.text

    async def waiting() -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            shown = await stack.environment(promoting.app.id, "staging")
            if shown["waiting"]:
                return shown
            await asyncio.sleep(0.2)
        pytest.fail(f"the promotion never waited: {await promoting.state(promotion)}")

    shown = await waiting()
    assert shown["lock"]["holder_workflow_id"] == holder.id
    assert shown["waiting"][0]["workflow_id"] == promotion["workflow_id"]
    assert shown["waiting"][0]["waiting_for"] == holder.id
    state = await promoting.state(promotion)
    assert state["status"] == "deploying", state
    lock_gate = next(gate for gate in state["gates"] if gate["gate"] == "environment_lock")
    assert not lock_gate["passed"] and holder.id in lock_gate["detail"]
    details = await stack.current_details(promotion["workflow_id"])
    assert details == f"Waiting for staging: locked by rollback {holder.id}", details
    assert promoting.running_in("staging") is None

    await holder.terminate("the rollback is over")
    done = await promoting.wait(promotion, within=40)
    assert done["status"] == "succeeded", done
    assert promoting.running_in("staging") == promoting.release(1).image_ref
    after = await stack.environment(promoting.app.id, "staging")
    assert after["lock"] is None and after["waiting"] == []
    await check_and_record(stack.temporal.client, promotion["workflow_id"], "promote-waited")


async def test_a_stale_promotion_record_never_reaches_the_live_run(
    promoting: Promoting, stack: Stack
):
    promoting.set_lifecycle(1, "STABLE")
    promoting.set_policy("prod", required_approvals=1)
    stale = await promoting.request(1, "prod")
    await promoting.wait(stale, "pending_approval")
    # An operator ends its run from the Web UI: its record still says it waits.
    client = stack.temporal.client
    await client.get_workflow_handle(stale["workflow_id"]).terminate("ended by an operator")
    live = await promoting.request(1, "prod")
    await promoting.wait(live, "pending_approval")
    assert live["workflow_id"] == stale["workflow_id"]

    approver = await promoting.key("al", ["approve"])
    for action, headers in (("approve", approver), ("cancel", stack.tenant.headers)):
        refused = await promoting.act(stale, action, headers)
        assert (refused.status_code, refused.json().get("code")) == (409, "NOT_RUNNING"), (
            action,
            refused.text,
        )
    described = await client.get_workflow_handle(live["workflow_id"]).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    state = await promoting.state(live)
    assert state["status"] == "pending_approval" and state["approvals"] == []


def serving(stack: Stack) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """The production worker in this process, until the event is set."""
    stop = asyncio.Event()
    return stop, asyncio.create_task(worker.run(stack.settings, stop))


async def promoting_with_a_stopped_worker(stack: Stack) -> Promoting:
    """An app whose v1 is STABLE and whose prod wants one approval, with no worker serving:
    what is started next waits for `serving` to be taken up."""
    stop, running = serving(stack)
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    promoting = Promoting(stack, App(stack, done))
    promoting.set_lifecycle(1, "STABLE")
    promoting.set_policy("prod", required_approvals=1, soak_seconds=0)
    stop.set()
    await asyncio.wait_for(running, timeout=30)
    return promoting


async def test_an_approval_sent_before_the_run_began_is_judged_by_it(
    stack_without_worker: Stack,
):
    """The approval reaches the run with its very first task, before `run` has begun: the
    validator must already know the request (it did not, and the approval was a 500)."""
    stack = stack_without_worker
    promoting = await promoting_with_a_stopped_worker(stack)
    approver = await promoting.key("al", ["approve"])

    promotion = await promoting.request(1, "prod")  # started, but no worker has taken it yet
    approving = asyncio.create_task(promoting.act(promotion, "approve", approver))
    await asyncio.sleep(0.5)  # the update is with the server, waiting for the run's first task
    assert not approving.done()
    stop, running = serving(stack)
    try:
        approved = await asyncio.wait_for(approving, timeout=30)
        assert approved.status_code == 200, approved.text
        assert (await promoting.wait(promotion))["status"] == "succeeded"
        handle = stack.temporal.client.get_workflow_handle(promotion["workflow_id"])
        kinds = [event.event_type async for event in handle.fetch_history_events()]
        # Taken with the first task: accepted before the run scheduled anything.
        assert kinds.index(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) < kinds.index(
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        )
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)


async def test_a_promotion_cancelled_before_its_run_began_ends_cancelled(
    stack_without_worker: Stack,
):
    """The cancel reaches the run with its first task, while it records itself: the record
    must end `cancelled` too (the run used to end at once and leave it `pending_approval`)."""
    stack = stack_without_worker
    promoting = await promoting_with_a_stopped_worker(stack)

    promotion = await promoting.request(1, "prod")  # started, but no worker has taken it yet
    cancelled = await promoting.act(promotion, "cancel", stack.tenant.headers)
    assert cancelled.status_code == 202, cancelled.text
    stop, running = serving(stack)
    try:
        ended = await promoting.wait(promotion, within=30)
        assert ended["status"] == "cancelled", ended
        assert ended["completed_at"] is not None
        handle = stack.temporal.client.get_workflow_handle(promotion["workflow_id"])
        # The record is written before the run takes its last step: wait for it to close.
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=30)
        assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
        await check_and_record(
            stack.temporal.client, promotion["workflow_id"], "promote-cancelled-at-the-start"
        )
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=30)


async def test_a_promotion_asked_for_while_the_last_run_closes_waits_for_it_and_starts(
    promoting: Promoting, stack: Stack
):
    """The environment's last promotion has written its end but its run is still closing (it
    holds the workflow id): the next request waits for exactly that run to close and starts,
    where it used to be refused with 409 PROMOTION_IN_PROGRESS."""
    promoting.set_lifecycle(1, "STABLE")
    client = stack.temporal.client
    closing = await client.start_workflow(
        "PromoteClosing",
        id=promote_workflow_id(promoting.app.id, "prod"),
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
    )
    asking = asyncio.create_task(
        stack.api.post(
            f"/api/v1/apps/{promoting.app.id}/promotions",
            json={"version": 1, "environment": "prod"},
            headers=stack.tenant.headers,
        )
    )
    await asyncio.sleep(0.5)
    assert not asking.done(), (await asking).text
    await closing.terminate("its last step")
    answer = await asyncio.wait_for(asking, timeout=30)
    assert answer.status_code == 202, answer.text
    assert (await promoting.wait(answer.json()))["status"] == "succeeded"
