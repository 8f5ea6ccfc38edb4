"""What a crash test checks once a run has ended: the run ended once and as it should, and the
app holds exactly one of everything the runs made — in GitHub, the registry, Kubernetes and
the records — with nothing left behind: no duplicate, no orphan, no lock."""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from dulwich.objects import ObjectID
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowExecutionStatus

from activities.locks import lock_holder
from activities.records import ACTIVATION_NAMESPACE
from api.routers import API_PREFIX
from core.models import (
    App,
    AuditEvent,
    Deployment,
    Environment,
    EnvironmentSecret,
    GitConnection,
    Promotion,
    Release,
    ReleaseActivation,
)
from core.secrets import decrypt
from tests.fixtures.stack import Stack


async def assert_completed(client: Client, workflow_id: str, within: float = 60) -> None:
    """Temporal's word on the run once it has ended: completed, not failed or terminated.

    Wait for the end before reading the records: a run says it is done in its record a step
    before it writes its audit outcome and ends."""
    handle = client.get_workflow_handle(workflow_id)
    await asyncio.wait_for(handle.result(), within)
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.COMPLETED, (workflow_id, described.status)


@dataclass
class Records:
    """Everything the database holds about one app."""

    app: App
    environments: list[Environment]
    releases: list[Release]
    deployments: list[Deployment]
    activations: list[ReleaseActivation]
    promotions: list[Promotion]
    outcomes: list[AuditEvent]
    connection: GitConnection | None
    locked: list[str]
    secrets: dict[str, dict[str, str]]

    @classmethod
    def read(cls, stack: Stack, app_id: uuid.UUID) -> Records:
        with Session(stack.engine) as session:
            app = session.get(App, app_id)
            assert app is not None, f"app {app_id} has no record"
            environments = list(
                session.exec(
                    select(Environment)
                    .where(Environment.app_id == app_id)
                    .order_by(col(Environment.position))
                )
            )
            key = stack.settings.secret_key.get_secret_value()
            secrets = {
                env.name: {
                    row.name: decrypt(row.ciphertext, key)
                    for row in session.exec(
                        select(EnvironmentSecret).where(EnvironmentSecret.environment_id == env.id)
                    )
                }
                for env in environments
            }
            # Workflow outcomes are written by activities, with no request behind them.
            outcome_targets = [f"app:{app.slug}"] + [
                f"environment:{app_id}/{env.name}" for env in environments
            ]
            return cls(
                app=app,
                environments=environments,
                releases=list(
                    session.exec(
                        select(Release)
                        .where(Release.app_id == app_id)
                        .order_by(col(Release.version))
                    )
                ),
                deployments=list(
                    session.exec(select(Deployment).where(Deployment.app_id == app_id))
                ),
                activations=list(
                    session.exec(
                        select(ReleaseActivation).where(ReleaseActivation.app_id == app_id)
                    )
                ),
                promotions=list(session.exec(select(Promotion).where(Promotion.app_id == app_id))),
                outcomes=list(
                    session.exec(
                        select(AuditEvent).where(
                            col(AuditEvent.target).in_(outcome_targets), AuditEvent.request_id == ""
                        )
                    )
                ),
                connection=session.get(GitConnection, app_id),
                locked=[env.name for env in environments if lock_holder(session, app_id, env.name)],
                secrets=secrets,
            )

    def release(self, release_id: uuid.UUID | None) -> Release | None:
        return next((release for release in self.releases if release.id == release_id), None)


async def assert_app_exactly_once(stack: Stack, app_id: str | uuid.UUID) -> Records:
    """Every commit on the app's branch became exactly one release, built into exactly one
    image tagged with it, deployed by exactly one deployment with one activation; each
    environment runs its current release by digest with exactly its secrets; one repository,
    one webhook, one outcome per run; nothing locked, nothing left running."""
    records = Records.read(stack, uuid.UUID(str(app_id)))
    app, releases = records.app, records.releases
    assert app.status == "active", app.status
    commits = [release.commit_sha for release in releases]
    assert [release.version for release in releases] == list(range(1, len(releases) + 1))
    assert len(set(commits)) == len(commits) == len({r.image_digest for r in releases})

    await _assert_repository(stack, records, commits)
    repository = f"{stack.tenant.slug}/{app.slug}"
    assert sorted(await stack.registry_client.list_tags(repository)) == sorted(commits)
    for release in releases:
        stored = await stack.registry_client.head_manifest(repository, release.commit_sha)
        assert stored == release.image_digest, (release.version, stored)

    unfinished = [(d.trigger, d.status) for d in records.deployments if d.status != "succeeded"]
    assert not unfinished, unfinished
    builds = Counter(d.commit_sha for d in records.deployments if d.trigger != "rollback")
    assert builds == Counter(commits), builds
    assert all(d.release_id is not None and d.completed_at for d in records.deployments)
    made_by_deployments = {a.id for a in records.activations if a.via in ("deploy", "rollback")}
    assert made_by_deployments == {
        uuid.uuid5(ACTIVATION_NAMESPACE, str(d.id)) for d in records.deployments
    }
    assert [p.status for p in records.promotions] == ["succeeded"] * len(records.promotions)
    # Each promotion the crash tests make brings a release that did not run there yet, so each
    # makes exactly one activation (promoting what already runs would make none).
    by_promotion = [a for a in records.activations if a.via == "promotion"]
    assert len(by_promotion) == len(records.promotions)

    rollbacks = sum(1 for d in records.deployments if d.trigger == "rollback")
    assert sorted((e.action, e.result) for e in records.outcomes) == sorted(
        [("app.bootstrap", "done")] + [("environment.rollback", "succeeded")] * rollbacks
    )
    assert records.locked == [], f"still locked: {records.locked}"
    _assert_cluster(stack, records)
    return records


async def _assert_repository(stack: Stack, records: Records, commits: list[str]) -> None:
    installation = stack.github.installation_id
    full_name = records.app.repo_full_name
    listed = await stack.github_client.list_installation_repositories(installation)
    assert [repo.full_name for repo in listed].count(full_name) == 1
    hooks = await stack.github_client.list_webhooks(installation, full_name)
    assert records.connection is not None
    webhook_url = f"{stack.settings.public_url}{API_PREFIX}/webhooks/github"
    assert [(hook.id, hook.url) for hook in hooks] == [(records.connection.webhook_id, webhook_url)]
    # The branch's whole history, read in the stand-in itself: every commit on it was
    # pushed once (the template's, then the test's) and was released.
    owner, name = full_name.split("/")
    repo = stack.github.state.repo(owner, name)
    assert repo is not None
    head = stack.github.state.branch_sha(repo["id"], "main")
    assert head is not None
    with stack.github.state.open_git(repo["id"]) as git:
        history = [
            entry.commit.id.decode() for entry in git.get_walker(include=[ObjectID(head.encode())])
        ]
    assert sorted(history) == sorted(commits), (history, commits)


def secret_values(stack: Stack, namespace: str) -> dict[str, dict[str, str]]:
    """Every Secret in the namespace, by name, with its decoded values."""
    core: Any = stack.kube_client._core  # a read-only look through the production client
    return {
        secret.metadata.name: {
            key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()
        }
        for secret in core.list_namespaced_secret(namespace).items
    }


def _assert_cluster(stack: Stack, records: Records) -> None:
    slug = records.app.slug
    apps: Any = stack.kube_client._apps  # a read-only look through the production client
    for env in records.environments:
        deployments = [
            d.metadata.name for d in apps.list_namespaced_deployment(env.namespace).items
        ]
        current = records.release(env.current_release_id)
        if current is None:
            assert deployments == [], f"{env.name} runs {deployments} but no release"
            continue
        assert deployments == [slug], (env.name, deployments)
        assert current.image_ref.endswith(f"@{current.image_digest}")
        assert stack.kube_client.current_image(env.namespace, slug) == current.image_ref
        secrets = secret_values(stack, env.namespace)
        assert sorted(secrets) == [f"{slug}-config"], (env.name, sorted(secrets))
        assert secrets[f"{slug}-config"] == records.secrets[env.name], env.name
