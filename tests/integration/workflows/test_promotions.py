"""Promotions against the stand-ins: approvals as Updates whose validators refuse before
anything is written, freeze windows that hold and then open (or are overridden), verification
that rolls back, cancel, reject, expiry; evidence and pending approvals."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.common import WorkflowIDReusePolicy

from activities.locks import lock_holder
from core.clock import utcnow
from core.models import Environment, FreezeWindow, Promotion, Release, ReleaseActivation
from core.naming import namespace_for
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_push_to_deploy import App
from tests.replay.histories import check_and_record
from workflows.promote import Promote, PromoteInput

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

    def running_in(self, env: str) -> str | None:
        namespace = namespace_for(self.stack.tenant.slug, self.app.slug, env)
        return self.stack.kube_client.current_image(namespace, self.app.slug)


@pytest.fixture
async def promoting(stack: Stack) -> Promoting:
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
    assert [item["id"] for item in pending.json()["items"]] == [promotion["id"]]
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
    commit = await promoting.app.push("v2")
    await promoting.app.wait_until(
        lambda: any(
            d.commit_sha == commit and d.status == "succeeded" for d in promoting.app.deployments()
        ),
        what="v2 built",
    )
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
    commit = await promoting.app.push("v2")
    await promoting.app.wait_until(
        lambda: any(
            d.commit_sha == commit and d.status == "succeeded" for d in promoting.app.deployments()
        ),
        what="v2 built",
    )
    promoting.set_lifecycle(2, "STABLE")
    v2 = promoting.release(2)
    # Checks at the start and at the end of the soak: the failure falls between them, well
    # after the rollout was seen complete.
    soak = await stack.api.patch(
        f"/api/v1/apps/{app_id}/environments/prod", json={"soak_seconds": 5}, headers=headers
    )
    assert (soak.status_code, soak.json()["soak_seconds"]) == (200, 5), soak.text
    stack.kube.fail_after(v2.image_ref, 2)

    second = await promoting.request(2, "prod")
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

    # Approval expiry after a short while: the policy's hours, scaled down for the test.
    promoting.set_policy("prod", required_approvals=1, approval_expiry_hours=1)
    expiring = await promoting.request(1, "prod")
    with Session(stack.engine) as session:
        row = session.get(Promotion, uuid.UUID(expiring["id"]))
        assert row is not None and row.expires_at is not None
    await promoting.wait(expiring, "pending_approval")


async def test_an_unapproved_promotion_expires(promoting: Promoting, stack: Stack):
    """The policy's expiry is hours; the workflow takes it as an input, so two seconds here."""
    promoting.set_lifecycle(1, "STABLE")
    promoting.set_policy("prod", required_approvals=1)
    promotion = await promoting.request(1, "prod")
    await promoting.wait(promotion, "pending_approval")
    handle = stack.temporal.client.get_workflow_handle(promotion["workflow_id"])
    await handle.cancel()
    assert (await promoting.wait(promotion))["status"] == "cancelled"

    described = await handle.fetch_history()
    first = described.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    original = PromoteInput.model_validate_json(first.data)
    with Session(stack.engine) as session:
        row = session.get(Promotion, uuid.UUID(promotion["id"]))
        assert row is not None
        row.status = "pending_approval"
        row.completed_at = None
        session.add(row)
        session.commit()
    await stack.temporal.client.start_workflow(
        Promote.run,
        original.model_copy(update={"approval_expiry_seconds": 2}),
        id=promotion["workflow_id"],
        task_queue=stack.settings.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )
    expired = await promoting.wait(promotion, within=30)
    assert expired["status"] == "expired"
    assert "no approval within" in expired["failure_reason"]
    assert promoting.running_in("prod") is None


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
