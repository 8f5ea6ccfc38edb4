"""BootstrapApp against the stand-ins: success, failure at each step, cancellation in each stage,
each checked in the stand-ins themselves."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from core.models import App, Deployment, GitConnection, Release
from tests.fixtures.stack import Stack


async def test_happy_path(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", (done["error_code"], done["error_message"])
    assert done["stage"] == "done"
    full_name = done["repo_full_name"]

    repo = await stack.github_client.get_repository(stack.github.installation_id, full_name)
    head = await stack.github_client.branch_head(stack.github.installation_id, full_name, "main")
    tags = await stack.registry_client.list_tags(f"{stack.tenant.slug}/{repo.name}")
    assert tags == [head]
    with Session(stack.engine) as session:
        app = session.get(App, uuid.UUID(done["app_id"]))
        assert app is not None and app.status == "active"
        deployment = session.exec(select(Deployment).where(Deployment.app_id == app.id)).one()
        assert deployment.status == "succeeded"
        assert deployment.commit_sha == head
        release = session.exec(select(Release).where(Release.app_id == app.id)).one()
        assert release.version == 1
        assert session.get(GitConnection, app.id) is not None
    image = stack.kube_client.current_image(f"{stack.tenant.slug}-{app.slug}-dev", app.slug)
    assert image == release.image_ref
    assert "@sha256:" in image
