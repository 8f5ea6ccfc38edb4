"""Images built by a team's own CI: pushed to the registry by the test with the registry
client, registered by digest with a key that holds only `releases:write`, deployed to dev and
promoted like any other release; a tag, another registry or a digest the registry lacks is a
422 of its own, and the same digest again is the same release."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from clients.image_build import BuildSettings, ImageBuilder, assemble_image
from core.source import SourceFile
from sandbox.base_image import BASE_IMAGE
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_promotions import Promoting, bootstrapped_for_promotions
from tests.replay.histories import check_and_record

COMMIT = "c1" * 20


@pytest.fixture
async def promoting(stack: Stack) -> Promoting:
    return await bootstrapped_for_promotions(stack)


async def ci_build(stack: Stack, text: str) -> str:
    """What a CI job does: build an image and push it; its reference by digest."""
    builder = ImageBuilder(stack.registry_client)
    base = await builder.fetch_base(BASE_IMAGE)
    tree = {"www/index.html": SourceFile(f"<h1>{text}</h1>\n".encode())}
    settings = BuildSettings(command=["httpd", "-f", "-h", "/app/www"], workdir="/app", port=8080)
    image = assemble_image(base, tree, settings)
    pushed = await builder.push(image, f"{stack.tenant.slug}/ci-{uuid.uuid4().hex[:8]}", "main")
    return pushed.reference


async def register(stack: Stack, app_id: str, headers: dict[str, str], **body: Any):
    return await stack.api.post(f"/api/v1/apps/{app_id}/releases", json=body, headers=headers)


async def test_a_ci_image_is_deployed_to_dev_and_promoted_to_prod(
    promoting: Promoting, stack: Stack
):
    app = promoting.app
    ci = await promoting.key("ci", ["releases:write"])
    image = await ci_build(stack, "built by CI")

    registered = await register(stack, app.id, ci, image=image, commit_sha=COMMIT, note="#41")
    assert registered.status_code == 202, registered.text
    body = registered.json()
    release, deployment = body["release"], body["deployment"]
    assert (release["version"], release["lifecycle"]) == (2, "BUILD")
    assert release["image_ref"] == image and release["commit_sha"] == COMMIT
    assert (deployment["trigger"], deployment["environment"]) == ("ci", "dev")
    await app.wait_until(
        lambda: any(
            str(d.id) == deployment["id"] and d.status == "succeeded" for d in app.deployments()
        ),
        what="the CI image deployed",
    )
    assert promoting.running_in("dev") == image
    assert promoting.release(2).lifecycle == "DEV"

    # The same digest again is the same release, and nothing is deployed twice.
    again = await register(stack, app.id, ci, image=image)
    assert again.status_code == 200, again.text
    assert again.json()["release"]["id"] == release["id"]
    assert again.json()["deployment"] is None
    assert len([d for d in app.deployments() if d.trigger == "ci"]) == 1

    headers = stack.tenant.headers
    for action, extra in (
        ("declare-rc", {}),
        ("accept-rc", {}),
        ("declare-stable", {}),
        ("deploy-stable", {"environment": "prod"}),
    ):
        response = await stack.api.post(
            f"/api/v1/apps/{app.id}/releases/2/lifecycle",
            json={"action": action, **extra},
            headers=headers,
        )
        assert response.status_code in (200, 202), response.text
        if response.status_code == 202:
            promotion = response.json()["promotion"]
            ended = await promoting.wait(promotion)
            assert ended["status"] == "succeeded", ended["failure_reason"]
    assert promoting.release(2).lifecycle == "PROD"
    assert promoting.running_in("prod") == image
    client = stack.temporal.client
    await stack.run_closed(deployment["workflow_id"])
    await check_and_record(client, deployment["workflow_id"], "deploy-ci-image")
    await check_and_record(client, promotion["workflow_id"], "promote-by-digest")

    audit = await stack.api.get(
        f"/api/v1/tenants/{stack.tenant.slug}/audit-events",
        params={"action": "release.register"},
        headers=headers,
    )
    assert audit.status_code == 200, audit.text
    (event,) = [e for e in audit.json()["items"] if e["action"] == "release.register"]
    assert event["detail"]["note"] == "#41" and event["detail"]["image"] == image


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("tag", "IMAGE_NOT_BY_DIGEST"),
        ("absent", "IMAGE_NOT_FOUND"),
        ("elsewhere", "IMAGE_REGISTRY_NOT_ALLOWED"),
        ("malformed", "IMAGE_REFERENCE_INVALID"),
        ("no port", "IMAGE_PORT_UNKNOWN"),
    ],
)
async def test_what_cannot_be_registered_is_a_422_of_its_own(
    promoting: Promoting, stack: Stack, name: str, code: str
):
    app = promoting.app
    ci = await promoting.key("ci", ["releases:write"])
    image = await ci_build(stack, name)
    repository, digest = image.split("@")
    # The base image says no port: neither a label nor EXPOSE.
    base = await ImageBuilder(stack.registry_client).fetch_base(BASE_IMAGE)
    named = {
        "tag": f"{repository}:main",
        "absent": f"{repository}@sha256:{'0' * 64}",
        "elsewhere": f"registry.example.com/acme/app@{digest}",
        "malformed": "Not An Image",
        "no port": f"{stack.registry_client.host}/{base.repository}@{base.manifest_digest}",
    }[name]
    before = len(app.deployments())
    response = await register(stack, app.id, ci, image=named)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code, response.json()
    assert len(app.deployments()) == before
    listed = await stack.api.get(f"/api/v1/apps/{app.id}/releases", headers=stack.tenant.headers)
    assert listed.json()["total"] == 1


async def test_registering_needs_its_scope(promoting: Promoting, stack: Stack):
    reader = await promoting.key("reader", ["apps:read", "deploy"])
    image = await ci_build(stack, "scoped")
    response = await register(stack, promoting.app.id, reader, image=image)
    assert response.status_code == 403, response.text
