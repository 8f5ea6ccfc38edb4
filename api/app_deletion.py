"""What deleting an app takes, read from the records: its environments' namespaces, Shipyard's
webhook, the repository (only with the marker of the bootstrap that created it) and the runs
still working on it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from api.deploys import IN_PROGRESS, step_timeouts
from api.errors import ApiError
from api.promotions import OPEN_STATUSES
from api.routers import API_PREFIX
from core.models import App, AppBootstrap, Deployment, Environment, GitConnection, Promotion, Tenant
from core.settings import Settings
from workflows.contracts import github
from workflows.contracts.kube import EnvironmentTarget
from workflows.delete_app import DeleteAppInput
from workflows.policies import StepTimeouts


@dataclass(frozen=True)
class DeletionPlan:
    app: App
    tenant_slug: str
    environments: list[EnvironmentTarget]
    webhook: github.WebhookInput | None
    repository: github.DeleteRepositoryInput | None
    kube_task_queue: str
    timeouts: StepTimeouts

    def workflow_input(self, requested_by: str, cancel_runs: list[str]) -> DeleteAppInput:
        return DeleteAppInput(
            app_id=str(self.app.id),
            tenant_id=str(self.app.tenant_id),
            tenant_slug=self.tenant_slug,
            app_slug=self.app.slug,
            requested_by=requested_by,
            environments=self.environments,
            kube_task_queue=self.kube_task_queue,
            webhook=self.webhook,
            repository=self.repository,
            cancel_runs=cancel_runs,
            timeouts=self.timeouts,
        )


def deletion_plan(
    session: Session, settings: Settings, app: App, *, delete_repository: bool
) -> DeletionPlan:
    tenant = session.get(Tenant, app.tenant_id)
    if tenant is None:
        raise ApiError(404, "NOT_FOUND", f"app {app.id} has no tenant")
    environments = session.exec(
        select(Environment).where(Environment.app_id == app.id).order_by(col(Environment.position))
    ).all()
    connection = session.get(GitConnection, app.id)
    webhook = None
    if connection is not None:
        webhook = github.WebhookInput(
            repository=_repository(connection.repo_full_name, connection.installation_id),
            url=f"{settings.public_url}{API_PREFIX}/webhooks/github",
        )
    return DeletionPlan(
        app=app,
        tenant_slug=tenant.slug,
        environments=[
            EnvironmentTarget(
                tenant=tenant.slug,
                app=app.slug,
                environment=env.name,
                namespace=env.namespace,
                name=app.slug,
            )
            for env in environments
        ],
        webhook=webhook,
        repository=_repository_to_delete(session, app, connection) if delete_repository else None,
        kube_task_queue=settings.kube_task_queue,
        timeouts=step_timeouts(settings),
    )


def _repository(full_name: str, installation_id: int) -> github.RepositoryRef:
    return github.RepositoryRef(full_name=full_name, installation_id=installation_id)


def _repository_to_delete(
    session: Session, app: App, connection: GitConnection | None
) -> github.DeleteRepositoryInput | None:
    """The repository with the marker its bootstrap wrote into it; None when no bootstrap of
    this app created one (Shipyard then never deletes it)."""
    bootstrap = session.exec(
        select(AppBootstrap)
        .where(
            AppBootstrap.app_id == app.id,
            AppBootstrap.kind == "bootstrap",  # an import never made the repository
            AppBootstrap.status == "done",
        )
        .order_by(col(AppBootstrap.created_at).desc())
    ).first()
    if bootstrap is None:
        return None
    # Disconnected, the installation is known only if the bootstrap named one.
    installation_id = (
        connection.installation_id
        if connection is not None
        else bootstrap.request.get("github_installation_id")
    )
    if installation_id is None:
        return None
    return github.DeleteRepositoryInput(
        repository=_repository(app.repo_full_name, int(installation_id)),
        marker=f"shipyard-bootstrap:{bootstrap.id}",
    )


def runs_in_progress(session: Session, app: App) -> list[str]:
    """The workflow ids of the deploys, rollbacks and promotions still working on the app."""
    deployments = session.exec(
        select(Deployment.workflow_id).where(
            Deployment.app_id == app.id, col(Deployment.status).in_(IN_PROGRESS)
        )
    ).all()
    promotions = session.exec(
        select(Promotion.workflow_id).where(
            Promotion.app_id == app.id, col(Promotion.status).in_(OPEN_STATUSES)
        )
    ).all()
    return sorted({*deployments, *promotions})
