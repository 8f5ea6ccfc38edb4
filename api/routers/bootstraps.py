"""App bootstraps: one POST starts the BootstrapApp saga; GET follows it; cancel undoes it."""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.answers import validated
from api.auth import Principal
from api.contract import problems
from api.deploys import step_timeouts
from api.deps import SessionDep, SettingsDep, TemporalDep, TenantDep, scope
from api.errors import ApiError, not_found
from api.routers import API_PREFIX
from api.schemas import BootstrapCreate, BootstrapPublic
from api.workflow_calls import (
    cancel_run,
    reaching_temporal,
    start_after_closing_run,
)
from core.audit import record_audit
from core.models import App, AppBootstrap, GitHubInstallation, Template, Tenant
from core.naming import namespace_for
from core.settings import Settings
from core.templates import visible_template
from core.temporal import TemporalGateway
from workflows import search
from workflows.bootstrap import BootstrapApp, BootstrapInput, bootstrap_workflow_id
from workflows.onboarding import OnboardingInput

router = APIRouter(prefix=f"{API_PREFIX}/tenants/{{tenant}}/app-bootstraps", tags=["bootstraps"])

DEFAULT_PIPELINE = ["dev", "qa", "staging", "prod"]
# An app in one of these no longer holds its slug (the table's partial unique index agrees).
SLUG_FREED = ("failed", "deleted")


def workflow_url(settings: Settings, workflow_id: str) -> str:
    return _workflow_url(settings.temporal_ui_url, settings.temporal_namespace, workflow_id)


# Lists name the same few workflows over and over (`deploy:<app>:<env>`); quoting them again
# for every item was a tenth of a list's time.
@functools.lru_cache(maxsize=4096)
def _workflow_url(ui_url: str, namespace: str, workflow_id: str) -> str:
    return f"{ui_url}/namespaces/{quote(namespace)}/workflows/{quote(workflow_id, safe='')}"


def public(bootstrap: AppBootstrap, tenant: Tenant, settings: Settings) -> BootstrapPublic:
    return BootstrapPublic(
        id=bootstrap.id,
        bootstrap_id=bootstrap.id,
        kind=bootstrap.kind,
        status=bootstrap.status,
        stage=bootstrap.stage,
        app_id=bootstrap.app_id,
        repo_full_name=bootstrap.repo_full_name,
        deployment_id=bootstrap.deployment_id,
        error_code=bootstrap.error_code,
        error_message=bootstrap.error_message,
        workflow_id=bootstrap.workflow_id,
        workflow_url=workflow_url(settings, bootstrap.workflow_id),
        status_url=f"{API_PREFIX}/tenants/{tenant.slug}/app-bootstraps/{bootstrap.id}",
        created_at=bootstrap.created_at,
        updated_at=bootstrap.updated_at,
    )


def fingerprint(body: BaseModel, installation_id: int) -> str:
    # A body that names no pipeline reads as it did before one could be named, so a request
    # re-posted across an upgrade is still the same request.
    unnamed = {"pipeline"} if getattr(body, "pipeline", None) is None else set()
    canonical = {**body.model_dump(exclude=unnamed), "github_installation_id": installation_id}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()


@router.post(
    "",
    name="create_bootstrap",
    response_model=BootstrapPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def start_bootstrap(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:write")],
    body: BootstrapCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> BootstrapPublic:
    """Create an app from a template: repository, first commit, push-to-deploy and a first
    deploy. Answers at once; follow `status_url` (or the workflow in the Web UI)."""
    template = _usable_template(session, tenant, body.template_id)
    installation_id = bound_installation(session, tenant, body.github_installation_id)
    print_ = fingerprint(body, installation_id)

    earlier = same_request(session, tenant, body.slug, print_)
    if earlier is not None:
        response.status_code = status.HTTP_200_OK
        return public(earlier, tenant, settings)

    app = App(
        tenant_id=tenant.id,
        slug=body.slug,
        name=body.name,
        subdomain=body.subdomain,
        template_id=template.id,
        repo_full_name=f"{body.repo_owner}/{body.repo_name}",
        pipeline=list(body.pipeline or DEFAULT_PIPELINE),
        status="bootstrapping",
    )
    bootstrap = AppBootstrap(
        tenant_id=tenant.id,
        app_id=app.id,
        workflow_id=bootstrap_workflow_id(tenant.slug, body.slug),
        request_fingerprint=print_,
        request=body.model_dump(),
        requested_by=principal.subject,
        status="running",
        stage="app",
        repo_full_name=app.repo_full_name,
    )
    return await launch(
        session,
        settings,
        temporal,
        tenant,
        app,
        bootstrap,
        lambda: _workflow_input(
            settings, tenant, app, bootstrap, body, template, installation_id, principal
        ),
        BootstrapApp.run,
        summary=f"Bootstrap {tenant.slug}/{body.slug} from {template.id}",
        actor=principal.subject,
        request_id=request.state.request_id,
        detail={"template_id": template.id},
    )


async def launch(
    session: Session,
    settings: Settings,
    temporal: TemporalGateway,
    tenant: Tenant,
    app: App,
    bootstrap: AppBootstrap,
    workflow_input: Callable[[], OnboardingInput],
    run: Any,
    *,
    summary: str,
    actor: str,
    request_id: str,
    detail: dict[str, Any],
) -> BootstrapPublic:
    """Records the app (the slug is taken here, or 409) and its bootstrap or import, then
    starts the run that follows it; a run that could not start leaves the records failed and
    the slug free."""
    what = bootstrap.kind
    session.add(app)
    try:
        session.flush()
    except IntegrityError:
        # Another request took the slug between our check and this insert.
        session.rollback()
        raise ApiError(
            409, "SLUG_IN_USE", f"app slug {app.slug!r} is already used in {tenant.slug}"
        ) from None
    session.add(bootstrap)
    session.commit()

    arg = workflow_input()
    try:
        async with reaching_temporal(f"start the {what}"):
            client = await temporal.client()
            handle = await start_after_closing_run(
                client,
                lambda: client.start_workflow(
                    run,
                    arg,
                    id=bootstrap.workflow_id,
                    task_queue=settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    static_summary=summary,
                    search_attributes=search.for_app(tenant.slug, app.slug, app.pipeline[0], "app"),
                ),
                bootstrap.workflow_id,
                lambda: _earlier_bootstrap_ended(session, bootstrap),
            )
    except WorkflowAlreadyStartedError:
        # Another run for this slug is still undoing its steps: nothing of this one stays.
        session.delete(bootstrap)
        session.flush()
        session.delete(app)
        session.commit()
        raise ApiError(
            409,
            "BOOTSTRAP_IN_PROGRESS",
            f"an earlier {what} of {app.slug!r} ({bootstrap.workflow_id}) is still ending; "
            "try again when it has",
        ) from None
    except BaseException as exc:
        # Not started: the records say so (and free the slug) in this same request.
        unreachable = isinstance(exc, ApiError)
        app.status = "failed"
        bootstrap.status = "failed"
        bootstrap.error_code = "WORKFLOW_ENGINE_UNAVAILABLE" if unreachable else "NOT_STARTED"
        bootstrap.error_message = f"the {what} could not be started: " + (
            "Temporal was unreachable" if unreachable else type(exc).__name__
        )
        session.add_all([app, bootstrap])
        session.commit()
        raise
    bootstrap.run_id = handle.result_run_id
    session.add(bootstrap)
    record_audit(
        session,
        tenant_id=tenant.id,
        actor=actor,
        action=f"app.{what}.start",
        target=f"app:{app.slug}",
        result="accepted",
        request_id=request_id,
        detail={"bootstrap_id": str(bootstrap.id), **detail},
    )
    session.commit()
    return public(bootstrap, tenant, settings)


@router.get("/{bootstrap_id}", response_model=BootstrapPublic)
def get_bootstrap(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:read")],
    bootstrap_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """Where the bootstrap is: its status and stage, and the app, repository and first
    deployment it made."""
    return validated(public(_bootstrap(session, tenant, bootstrap_id), tenant, settings))


@router.post(
    "/{bootstrap_id}/cancel",
    response_model=BootstrapPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def cancel_bootstrap(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:write")],
    bootstrap_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> BootstrapPublic:
    """Ask the bootstrap to stop; every step it took is undone before it ends `cancelled`."""
    bootstrap = _bootstrap(session, tenant, bootstrap_id)
    if bootstrap.status in ("done", "failed"):
        raise ApiError(
            409,
            "BOOTSTRAP_FINISHED",
            f"the bootstrap already ended {bootstrap.status}; there is nothing to cancel",
        )
    if bootstrap.status == "running":
        await cancel_run(
            temporal, bootstrap.workflow_id, bootstrap.run_id, f"bootstrap {bootstrap.id}"
        )
        record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.subject,
            action="app.bootstrap.cancel",
            target=f"bootstrap:{bootstrap.id}",
            result="requested",
            request_id=request.state.request_id,
        )
        session.commit()
    return public(bootstrap, tenant, settings)


def _usable_template(session: Session, tenant: Tenant, template_id: str) -> Template:
    template = visible_template(session, tenant.id, template_id)
    if template is None:
        raise ApiError(
            422,
            "TEMPLATE_NOT_FOUND",
            f"there is no template {template_id!r}; GET /api/v1/templates lists them",
            errors=[{"field": "body.template_id", "message": "unknown template"}],
        )
    return template


def bound_installation(
    session: Session, tenant: Tenant, wanted: int | None, field: str = "github_installation_id"
) -> int:
    bound = [
        row.id
        for row in session.exec(
            select(GitHubInstallation).where(GitHubInstallation.tenant_id == tenant.id)
        )
    ]
    errors = [{"field": f"body.{field}", "message": "not bound to this tenant"}]
    if wanted is not None:
        if wanted not in bound:
            raise ApiError(
                422,
                "INSTALLATION_NOT_BOUND",
                f"GitHub installation {wanted} is not bound to tenant {tenant.slug}",
                errors=errors,
            )
        return wanted
    if len(bound) == 1:
        return bound[0]
    detail = (
        f"tenant {tenant.slug} has no GitHub installation bound; ask the platform admin"
        if not bound
        else f"tenant {tenant.slug} has {len(bound)} installations; name one"
    )
    raise ApiError(422, "INSTALLATION_NOT_BOUND", detail, errors=errors)


def same_request(session: Session, tenant: Tenant, slug: str, print_: str) -> AppBootstrap | None:
    """The running bootstrap this request repeats (same slug, same request), if any; another
    request for a slug in use is refused."""
    live = session.exec(
        select(App).where(
            App.tenant_id == tenant.id, App.slug == slug, col(App.status).not_in(SLUG_FREED)
        )
    ).first()
    if live is None:
        return None
    running = session.exec(
        select(AppBootstrap)
        .where(AppBootstrap.app_id == live.id, AppBootstrap.status == "running")
        .order_by(col(AppBootstrap.created_at).desc())
    ).first()
    if running is not None and running.request_fingerprint == print_:
        return running
    raise ApiError(409, "SLUG_IN_USE", f"app slug {slug!r} is already used in {tenant.slug}")


def _earlier_bootstrap_ended(session: Session, bootstrap: AppBootstrap) -> bool:
    """Whether the latest earlier bootstrap under this workflow id has recorded its end."""
    earlier = session.exec(
        select(AppBootstrap)
        .where(AppBootstrap.workflow_id == bootstrap.workflow_id, AppBootstrap.id != bootstrap.id)
        .order_by(col(AppBootstrap.created_at).desc())
    ).first()
    return earlier is not None and earlier.status in ("done", "failed", "cancelled")


def _bootstrap(session: Session, tenant: Tenant, bootstrap_id: uuid.UUID) -> AppBootstrap:
    bootstrap = session.get(AppBootstrap, bootstrap_id)
    if bootstrap is None or bootstrap.tenant_id != tenant.id:
        raise not_found(f"bootstrap {bootstrap_id}")
    return bootstrap


def _workflow_input(
    settings: Settings,
    tenant: Tenant,
    app: App,
    bootstrap: AppBootstrap,
    body: BootstrapCreate,
    template: Template,
    installation_id: int,
    principal: Principal,
) -> BootstrapInput:
    return BootstrapInput(
        bootstrap_id=str(bootstrap.id),
        tenant_id=str(tenant.id),
        tenant_slug=tenant.slug,
        app_id=str(app.id),
        app_slug=app.slug,
        app_name=app.name,
        subdomain=app.subdomain,
        host=f"{app.subdomain}.{settings.base_domain}",
        template_id=template.id,
        template_source=template.source,
        # Only a builtin: push uses it, and builtin: templates always have one.
        template_port=template.port or 0,
        repo_owner=body.repo_owner,
        repo_name=body.repo_name,
        repo_private=body.repo_private,
        installation_id=installation_id,
        pipeline=app.pipeline,
        namespaces={env: namespace_for(tenant.slug, app.slug, env) for env in app.pipeline},
        webhook_url=f"{settings.public_url}{API_PREFIX}/webhooks/github",
        kube_task_queue=settings.kube_task_queue,
        requested_by=principal.subject,
        timeouts=step_timeouts(settings),
    )
