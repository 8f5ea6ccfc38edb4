"""App imports: one POST makes an app of a repository that already exists and starts the
ImportApp saga; it is followed and cancelled like a bootstrap (`/app-bootstraps/{id}`, whose
`kind` says import)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response, status

from api.auth import Principal
from api.contract import problems
from api.deploys import step_timeouts
from api.deps import SessionDep, SettingsDep, TemporalDep, TenantDep, scope
from api.routers import API_PREFIX
from api.routers.bootstraps import (
    DEFAULT_PIPELINE,
    bound_installation,
    fingerprint,
    launch,
    public,
    same_request,
)
from api.schemas import BootstrapPublic
from api.schemas.bootstraps import ImportCreate
from core.models import App, AppBootstrap
from core.naming import namespace_for
from workflows.imports import ImportApp, ImportInput, import_workflow_id

router = APIRouter(prefix=f"{API_PREFIX}/tenants/{{tenant}}/apps", tags=["apps"])


@router.post(
    "",
    name="import_app",
    response_model=BootstrapPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def import_app(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:write")],
    body: ImportCreate,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> BootstrapPublic:
    """Make an app of a repository you already have: it is checked (the installation must read
    it and its branch), connected for push-to-deploy and its branch's head deployed. Nothing in
    the repository changes but the push webhook added. Answers at once; follow `status_url`."""
    installation_id = bound_installation(session, tenant, body.installation_id, "installation_id")
    print_ = fingerprint(body, installation_id)
    earlier = same_request(session, tenant, body.slug, print_)
    if earlier is not None:
        response.status_code = status.HTTP_200_OK
        return public(earlier, tenant, settings)

    subdomain = body.subdomain or body.slug
    app = App(
        tenant_id=tenant.id,
        slug=body.slug,
        name=body.name,
        subdomain=subdomain,
        template_id=None,
        repo_full_name=body.repo_full_name,
        pipeline=list(body.pipeline or DEFAULT_PIPELINE),
        status="bootstrapping",
    )
    record = AppBootstrap(
        kind="import",
        tenant_id=tenant.id,
        app_id=app.id,
        workflow_id=import_workflow_id(tenant.slug, body.slug),
        request_fingerprint=print_,
        request=body.model_dump(),
        requested_by=principal.subject,
        status="running",
        stage="app",
        repo_full_name=body.repo_full_name,
    )

    def workflow_input() -> ImportInput:
        return ImportInput(
            bootstrap_id=str(record.id),
            tenant_id=str(tenant.id),
            tenant_slug=tenant.slug,
            app_id=str(app.id),
            app_slug=body.slug,
            app_name=body.name,
            subdomain=subdomain,
            host=f"{subdomain}.{settings.base_domain}",
            installation_id=installation_id,
            pipeline=app.pipeline,
            namespaces={env: namespace_for(tenant.slug, body.slug, env) for env in app.pipeline},
            webhook_url=f"{settings.public_url}{API_PREFIX}/webhooks/github",
            kube_task_queue=settings.kube_task_queue,
            requested_by=principal.subject,
            timeouts=step_timeouts(settings),
            repo_full_name=body.repo_full_name,
            branch=body.branch,
        )

    return await launch(
        session,
        settings,
        temporal,
        tenant,
        app,
        record,
        workflow_input,
        ImportApp.run,
        summary=f"Import {body.repo_full_name} as {tenant.slug}/{body.slug}",
        actor=principal.subject,
        request_id=request.state.request_id,
        detail={"repo_full_name": body.repo_full_name},
    )
