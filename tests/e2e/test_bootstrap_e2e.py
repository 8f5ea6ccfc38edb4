"""The bootstrap through REST with the worker as a real `python worker.py` process."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlmodel import Session, select

from clients import git
from core.models import App, Deployment, GitConnection, Release
from core.naming import namespace_for
from tests.fixtures.stack import Stack
from tests.processes import WorkerProcess


async def test_bootstrap_with_a_worker_process(stack_without_worker: Stack, tmp_path: Path):
    stack = stack_without_worker
    worker = WorkerProcess(stack.worker_env(), tmp_path / "worker.log")
    try:
        done = await stack.bootstrap_and_wait()
    finally:
        worker.stop()
    assert done["status"] == "done", (done["error_code"], done["error_message"])
    installation = stack.github.installation_id
    full_name = done["repo_full_name"]

    # The repository holds the rendered template as its one and only commit.
    head = await stack.github_client.branch_head(installation, full_name, "main")
    repo = await stack.github_client.get_repository(installation, full_name)
    token = await stack.github_client.installation_token(installation)
    tree = git.fetch_tree(repo.clone_url, token, head)
    assert b"App " in tree["public/index.html"].data
    assert b"{{" not in tree["public/index.html"].data
    # The image is in the registry under the commit sha; the cluster runs it by digest.
    app_repo = f"{stack.tenant.slug}/{repo.name}"
    assert await stack.registry_client.list_tags(app_repo) == [head]
    digest = await stack.registry_client.resolve(app_repo, head)
    with Session(stack.engine) as session:
        app = session.get(App, uuid.UUID(done["app_id"]))
        assert app is not None and app.status == "active"
        assert session.get(GitConnection, app.id) is not None
        release = session.exec(select(Release).where(Release.app_id == app.id)).one()
        deployment = session.exec(select(Deployment).where(Deployment.app_id == app.id)).one()
    assert (release.version, release.image_digest) == (1, digest)
    assert deployment.status == "succeeded"
    running = stack.kube_client.current_image(
        namespace_for(stack.tenant.slug, app.slug, "dev"), app.slug
    )
    assert running == release.image_ref and running.endswith(f"@{digest}")
    log = (tmp_path / "worker.log").read_text()
    assert stack.settings.github_webhook_secret.get_secret_value() not in log
