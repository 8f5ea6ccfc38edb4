"""Outbound webhook deliveries against a real receiver on 127.0.0.1: every event type arrives
signed (one bootstrap through the whole stack, the other types published as the steps publish
them); a flaky receiver gets the event once with the same delivery id; Retry-After is obeyed;
other 4xx are not retried; a receiver down for the whole budget leaves a failed delivery that
`redeliver` completes; a cancelled delivery ends failed; a worker killed after the POST leaves a
retry with the same delivery id; the secret is in no history and no log line."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowFailureError

from activities.announcements import Announcer
from activities.webhook_deliveries import WebhookListener
from core import events
from core.models import AppEvent, Tenant
from sandbox.net import free_port
from tests.fixtures.stack import Stack
from tests.processes import WorkerProcess
from tests.replay.histories import check_and_record
from tests.webhook_receiver import Answer, receiving
from workflows.deliver_webhook import DeliveryResult

API = "/api/v1"
SECRET = "whsec_" + uuid.uuid4().hex
ENDED = ("succeeded", "failed")


async def wait_until(check: Callable[[], Any], what: str, within: float = 60) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within}s: {what}")
        await asyncio.sleep(0.1)


class Hooks:
    """Webhooks of the stack's (shared) tenant made through the API; deleted when the test
    ends, so other tests' events reach none of them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.made: list[str] = []

    @property
    def base(self) -> str:
        return f"{API}/tenants/{self.stack.tenant.slug}/webhooks"

    async def create(self, url: str, types: list[str]) -> str:
        made = await self.stack.api.post(
            self.base,
            json={"url": url, "event_types": types, "secret": SECRET},
            headers=self.stack.tenant.headers,
        )
        assert made.status_code == 201, made.text
        self.made.append(made.json()["id"])
        return str(made.json()["id"])

    async def deliveries(self, hook_id: str) -> list[dict[str, Any]]:
        listed = await self.stack.api.get(
            f"{self.base}/{hook_id}/deliveries", headers=self.stack.tenant.headers
        )
        assert listed.status_code == 200, listed.text
        return list(listed.json()["items"])

    async def ended(self, hook_id: str, count: int = 1, within: float = 60) -> list[dict[str, Any]]:
        async def done() -> list[dict[str, Any]] | None:
            items = await self.deliveries(hook_id)
            ok = len(items) >= count and all(item["status"] in ENDED for item in items)
            return items if ok else None

        return list(await wait_until(done, f"{count} deliveries of {hook_id} ended", within))

    async def redeliver(self, hook_id: str, delivery_id: str) -> Any:
        return await self.stack.api.post(
            f"{self.base}/{hook_id}/deliveries/{delivery_id}/redeliver",
            headers=self.stack.tenant.headers,
        )

    async def delete_all(self) -> None:
        for hook_id in self.made:
            await self.stack.api.delete(f"{self.base}/{hook_id}", headers=self.stack.tenant.headers)


@pytest.fixture
async def hooks(stack_without_worker: Stack) -> AsyncIterator[Hooks]:
    made = Hooks(stack_without_worker)
    yield made
    await made.delete_all()


def publish(stack: Stack, kind: str, app_id: str | None, data: dict[str, Any]) -> AppEvent:
    """An event as the steps publish it (core.events), written once."""
    with Session(stack.engine) as session:
        tenant = session.exec(select(Tenant).where(Tenant.slug == stack.tenant.slug)).one()
        event = events.publish(
            session,
            tenant_id=tenant.id,
            app_id=uuid.UUID(app_id) if app_id else None,
            kind=kind,
            key=f"{kind}:test:{uuid.uuid4()}",
            data=data,
        )
        session.commit()
        session.refresh(event)
        return event


async def announce(stack: Stack, *published: AppEvent) -> None:
    """As a step announces after its commit: to the webhook listener the worker runs."""
    listener = WebhookListener(stack.temporal.client, stack.engine, stack.settings)
    await Announcer([listener]).announce_now(published)


PROMOTION = {
    "promotion_id": str(uuid.uuid4()), "environment": "qa", "version": 1,
    "release_digest": "sha256:" + "1" * 64, "status": "pending_approval",
    "requested_by": "dev", "workflow_id": "promote:app:qa",
}  # fmt: skip
SAMPLES: dict[str, dict[str, Any]] = {
    events.ROLLBACK_FINISHED: {
        "deployment_id": str(uuid.uuid4()),
        "environment": "dev",
        "status": "succeeded",
        "trigger": "rollback",
        "commit_sha": "c" * 40,
        "image_ref": "r/a@sha256:" + "2" * 64,
        "failure_reason": None,
        "workflow_id": "rollback:app:dev",
    },
    events.PROMOTION_FINISHED: {**PROMOTION, "status": "succeeded", "failure_reason": None},
    events.PROMOTION_WAITING_WINDOW: {**PROMOTION, "status": "waiting_window"},
    events.PROMOTION_DEPLOYING: {**PROMOTION, "status": "deploying"},
    events.APPROVAL_REQUESTED: {**PROMOTION, "required_approvals": 1},
    events.APPROVAL_GIVEN: {**PROMOTION, "subject": "lead", "comment": "ok"},
    events.APPROVAL_REFUSED: {**PROMOTION, "subject": "qa", "comment": "no"},
    events.RELEASE_REJECTED: {
        "release_id": str(uuid.uuid4()),
        "version": 1,
        "release_digest": "sha256:" + "1" * 64,
        "commit_sha": "c" * 40,
        "action": "reject-rc",
        "by": "lead",
        "note": "flaky",
    },
    events.RETENTION_FINISHED: {
        "run_id": str(uuid.uuid4()),
        "status": "succeeded",
        "dry_run": False,
        "trigger": "schedule",
        "summary": {"deleted": 0},
        "error": None,
        "workflow_id": "retention:run",
    },
    events.CONFIG_CHANGED: {
        "environment": "dev",
        "by": "dev",
        "variables": ["A"],
        "secrets_set": ["B"],
        "secrets_deleted": [],
    },
    events.APP_DELETED: {"slug": "gone", "repo_full_name": "org/gone"},
}
FROM_THE_STACK = (events.BOOTSTRAP_FINISHED, events.DEPLOYMENT_STARTED, events.DEPLOYMENT_FINISHED)
assert set(SAMPLES) | set(FROM_THE_STACK) == set(events.SUBSCRIBABLE)


async def test_every_event_type_reaches_the_receiver_signed_and_the_secret_is_nowhere(
    stack: Stack, hooks: Hooks, capfd, caplog
):
    with receiving() as receiver:
        hook_id = await hooks.create(receiver.url("/all"), ["*"])
        state = await stack.bootstrap_and_wait()
        assert state["status"] == "done", state
        app_id = state["app_id"]
        published = [publish(stack, kind, app_id, data) for kind, data in SAMPLES.items()]
        await announce(stack, *published)
        await announce(stack, *published)  # a retried step: nothing is delivered twice
        await wait_until(
            lambda: set(events.SUBSCRIBABLE) <= {r.event for r in receiver.at("/all")},
            "every event type received",
        )
        deliveries = await hooks.ended(hook_id, count=len(receiver.at("/all")))

    got = receiver.at("/all")
    assert len({r.delivery for r in got}) == len(got), "each delivery once"
    assert all(d["status"] == "succeeded" and d["status_code"] == 200 for d in deliveries)
    for received in got:
        assert received.signed_with(SECRET), received.event
        assert received.headers["content-type"] == "application/json"
        assert received.headers["user-agent"].startswith("Shipyard-Hookshot/")
        body = json.loads(received.body)
        assert set(body) == {"id", "type", "occurred_at", "tenant", "app", "data", "links"}
        assert body["type"] == received.event
        assert body["tenant"] == stack.tenant.slug
        assert body["app"]["id"] == app_id
        assert body["links"]["status_url"].startswith(stack.settings.public_url + API)
    by_type = {r.event: json.loads(r.body) for r in got}
    finished = by_type[events.BOOTSTRAP_FINISHED]
    assert finished["data"]["status"] == "done"
    assert finished["links"]["status_url"].endswith(f"/app-bootstraps/{state['id']}")
    assert finished["links"]["workflow_url"].startswith(stack.settings.temporal_ui_url)
    assert "bootstrap%3A" in finished["links"]["workflow_url"]
    deployed = by_type[events.DEPLOYMENT_FINISHED]
    assert deployed["data"]["status"] == "succeeded"
    assert deployed["links"]["status_url"].endswith(
        f"/apps/{app_id}/deployments/{deployed['data']['deployment_id']}"
    )
    # The delivery id is the same whoever asks: uuid5 of the webhook and the event.
    assert {d["id"] for d in deliveries} == {r.delivery for r in got}

    for delivery in deliveries:
        handle = stack.temporal.client.get_workflow_handle(
            delivery["workflow_id"], result_type=DeliveryResult
        )
        history = await handle.fetch_history()
        assert SECRET not in history.to_json()
        assert await handle.result() == DeliveryResult(
            delivery_id=delivery["id"], status="succeeded", status_code=200
        )
    out, err = capfd.readouterr()
    assert SECRET not in out + err + caplog.text


async def test_a_flaky_receiver_gets_the_event_once_with_the_same_delivery_id(
    stack: Stack, hooks: Hooks
):
    with receiving() as receiver:
        unavailable = Answer(503, body=b"try later")
        receiver.answer("/flaky", unavailable, unavailable, unavailable)
        hook_id = await hooks.create(receiver.url("/flaky"), [events.RETENTION_FINISHED])
        await announce(
            stack,
            publish(stack, events.RETENTION_FINISHED, None, SAMPLES[events.RETENTION_FINISHED]),
        )
        [delivery] = await hooks.ended(hook_id)

    got = receiver.at("/flaky")
    assert [r.delivery for r in got] == [delivery["id"]] * 4
    assert len({r.body for r in got}) == 1 and all(r.signed_with(SECRET) for r in got)
    assert json.loads(got[0].body)["app"] is None
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 4
    assert delivery["status_code"] == 200 and delivery["error"] is None
    assert delivery["response_head"] == '{"ok": true}' and delivery["duration_ms"] >= 0
    await check_and_record(stack.temporal.client, delivery["workflow_id"], "webhook-succeeded")


async def test_retry_after_is_obeyed(stack: Stack, hooks: Hooks):
    with receiving() as receiver:
        receiver.answer("/busy", Answer(429, {"Retry-After": "2"}, b"slow down"))
        hook_id = await hooks.create(receiver.url("/busy"), [events.APP_DELETED])
        await announce(stack, publish(stack, events.APP_DELETED, None, SAMPLES[events.APP_DELETED]))
        [delivery] = await hooks.ended(hook_id)

    first, second = receiver.at("/busy")
    # Without Retry-After the first retry comes after 0.2 s (the stack's initial interval).
    assert second.at - first.at >= 2.0
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2


async def test_a_refusal_is_not_retried_and_the_delivery_says_why(stack: Stack, hooks: Hooks):
    with receiving() as receiver:
        receiver.answer("/gone", Answer(404, body=b"no such hook"))
        hook_id = await hooks.create(receiver.url("/gone"), [events.APP_DELETED])
        await announce(stack, publish(stack, events.APP_DELETED, None, SAMPLES[events.APP_DELETED]))
        [delivery] = await hooks.ended(hook_id)
        await asyncio.sleep(0.5)  # no retry comes later either

    assert len(receiver.at("/gone")) == 1
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["status_code"] == 404 and "404" in delivery["error"]
    assert delivery["response_head"] == "no such hook"
    handle = stack.temporal.client.get_workflow_handle(
        delivery["workflow_id"], result_type=DeliveryResult
    )
    result = await handle.result()
    assert result.status == "failed" and "RECEIVER_REJECTED" in result.error
    await check_and_record(stack.temporal.client, delivery["workflow_id"], "webhook-failed")


async def test_a_receiver_down_for_the_whole_budget_gets_it_by_redelivery(
    stack: Stack, hooks: Hooks
):
    port = free_port()
    url = f"http://127.0.0.1:{port}/late"
    hook_id = await hooks.create(url, [events.CONFIG_CHANGED])
    await announce(
        stack, publish(stack, events.CONFIG_CHANGED, None, SAMPLES[events.CONFIG_CHANGED])
    )
    [failed] = await hooks.ended(hook_id)
    assert failed["status"] == "failed" and failed["attempts"] == 5
    assert failed["error"].startswith("RECEIVER_UNREACHABLE") and failed["status_code"] is None

    with receiving(port) as receiver:
        again = await hooks.redeliver(hook_id, failed["id"])
        assert again.status_code == 202, again.text
        assert again.json()["redeliveries"] == 1 and again.json()["status"] == "pending"
        assert again.json()["workflow_id"] == f"webhook-delivery:{failed['id']}:1"
        [delivery] = await hooks.ended(hook_id)

    assert [r.delivery for r in receiver.at("/late")] == [failed["id"]]
    assert receiver.at("/late")[0].signed_with(SECRET)
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 1
    assert delivery["error"] is None


async def test_a_cancelled_delivery_ends_failed_and_a_running_one_is_not_redelivered(
    stack: Stack, hooks: Hooks
):
    with receiving() as receiver:
        arrived, release = receiver.hold("/slow")
        hook_id = await hooks.create(receiver.url("/slow"), [events.APP_DELETED])
        await announce(stack, publish(stack, events.APP_DELETED, None, SAMPLES[events.APP_DELETED]))
        assert await asyncio.to_thread(arrived.wait, 30)
        [running] = await hooks.deliveries(hook_id)
        refused = await hooks.redeliver(hook_id, running["id"])
        assert refused.status_code == 409 and refused.json()["code"] == "DELIVERY_IN_PROGRESS"

        handle = stack.temporal.client.get_workflow_handle(running["workflow_id"])
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        [delivery] = await hooks.ended(hook_id)
        assert delivery["status"] == "failed" and delivery["error"] == "cancelled"
        release.set()  # the attempt's late answer is kept; the delivery stays as it ended
        await wait_until(lambda: receiver.at("/slow"), "the held request answered")
        await asyncio.sleep(0.5)
        [delivery] = await hooks.deliveries(hook_id)
    assert delivery["status"] == "failed" and delivery["error"] == "cancelled"


async def test_a_worker_killed_after_the_post_retries_with_the_same_delivery_id(
    stack_without_worker: Stack, hooks: Hooks, tmp_path: Path, monkeypatch
):
    stack = stack_without_worker
    # A killed worker's attempt is retried once it times out, and its run moves on at once.
    monkeypatch.setattr(stack.settings, "webhook_attempt_timeout_seconds", 2)
    stack.extra_env["SHIPYARD_STICKY_QUEUE_TIMEOUT_SECONDS"] = "1"
    workers = [WorkerProcess(stack.worker_env(), tmp_path / "worker-0.log")]
    try:
        with receiving() as receiver:
            arrived, release = receiver.hold("/crash")
            hook_id = await hooks.create(receiver.url("/crash"), [events.APP_DELETED])
            await announce(
                stack, publish(stack, events.APP_DELETED, None, SAMPLES[events.APP_DELETED])
            )
            assert await asyncio.to_thread(arrived.wait, 60)
            workers[0].kill()
            workers.append(WorkerProcess(stack.worker_env(), tmp_path / "worker-1.log"))
            release.set()  # the answer reaches a dead connection
            [delivery] = await hooks.ended(hook_id, within=90)
    finally:
        for worker in workers:
            worker.stop()

    got = receiver.at("/crash")
    assert len(got) == 2 and got[0].delivery == got[1].delivery == delivery["id"]
    assert got[0].body == got[1].body
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 2
