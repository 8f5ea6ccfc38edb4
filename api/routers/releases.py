"""Releases of an app: list and read them, and move them through the lifecycle (DESIGN.md §3);
the actions that deploy start a promotion, so approvals and freeze windows apply to them."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.announcing import announce
from api.answers import validated
from api.auth import Principal
from api.contract import problems
from api.deploys import (
    deploy_input,
    require_active,
    run_labels,
    running_deployment,
    start_deployment,
)
from api.deps import AppDep, PageDep, SessionDep, SettingsDep, TemporalDep, scope
from api.errors import ApiError, not_found
from api.pagination import Page, newest_first
from api.pauses import pause_of_app
from api.promotions import recheck_open_promotions, start_promotion
from api.registered_images import inspect_registered_image
from api.routers import API_PREFIX
from api.routers.deployments import public as deployment_public
from api.schemas.releases import (
    ApprovalPublic,
    LifecycleAction,
    LifecycleStarted,
    ReleasePublic,
    ReleaseRegister,
    ReleaseRegistered,
)
from api.workflow_calls import reaching_temporal
from core import events, lifecycle
from core.audit import record_audit
from core.clock import utcnow
from core.models import App, Approval, Environment, GitConnection, Promotion, Release
from core.settings import Settings
from core.temporal import TemporalGateway
from workflows.contracts.image import RegisteredImage
from workflows.deploy import PUSH_SIGNAL, DeployRelease, PushedCommit, deploy_workflow_id

router = APIRouter(prefix=API_PREFIX, tags=["releases"])

VersionPath = Annotated[
    str, Path(pattern=r"^v?[0-9]{1,9}$", description="the release version: 3 or v3")
]


@router.get("/apps/{app_id}/releases", response_model=Page[ReleasePublic])
def list_releases(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    """The app's releases, newest first."""
    rows, total, next_cursor = newest_first(session, Release, [Release.app_id == app.id], page)
    return validated(
        Page[ReleasePublic](
            items=releases_public(session, app, rows), total=total, next_cursor=next_cursor
        )
    )


@router.get("/apps/{app_id}/releases/{version}", response_model=ReleasePublic)
def get_release(
    version: VersionPath,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> ReleasePublic:
    """One release (3 or v3): its digest, lifecycle state and where it is active."""
    release = _release(session, app, version)
    return releases_public(session, app, [release])[0]


@router.post(
    "/apps/{app_id}/releases",
    response_model=ReleaseRegistered,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": ReleaseRegistered, "description": "the image was registered before"},
        **problems(409, 412, 422, 503),
    },
)
async def register_release(
    principal: Annotated[Principal, scope("releases:write")],
    app: AppDep,
    body: ReleaseRegister,
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> ReleaseRegistered:
    """Register an image your CI built and pushed, named by digest: it is recorded as a release
    (BUILD, then DEV once it runs) and deployed to the app's first environment like a push;
    from there it is promoted like any other. The same digest again answers 200 with its
    release, and deploys it only if it never ran and no deployment of it is in progress."""
    require_active(app)
    connection = session.get(GitConnection, app.id)
    if connection is None:
        raise ApiError(
            412, "GIT_CONNECTION_MISSING", f"app {app.slug} has no git connection to deploy with"
        )
    image = await inspect_registered_image(settings, body.image)
    release, created = _registered_release(session, app, image.digest, image.image_ref, body)
    running = running_deployment(session, app.id, app.pipeline[0])
    if not created and (
        release.lifecycle != lifecycle.BUILD
        or (running is not None and running.image_ref == image.image_ref)
    ):
        response.status_code = status.HTTP_200_OK
        shown = running if running is not None and running.image_ref == image.image_ref else None
        return ReleaseRegistered(
            release=releases_public(session, app, [release])[0],
            deployment=deployment_public(shown, settings) if shown else None,
        )
    if pause_of_app(session, app) is not None:
        # Held like a push, by the app's deploy run, which deploys the newest on resume.
        await hold_image(session, settings, temporal, app, connection, release, image, body)
        record_audit(
            session, tenant_id=app.tenant_id, actor=principal.subject,
            action="release.register", target=f"release:{release.id}", result="held",
            request_id=request.state.request_id,
            detail={"app": app.slug, "version": release.version, "image": image.image_ref,
                    "note": body.note},
        )  # fmt: skip
        session.commit()
        return ReleaseRegistered(
            release=releases_public(session, app, [release])[0], deployment=None
        )
    workflow_input = deploy_input(
        session,
        settings,
        app,
        connection,
        trigger="ci",
        deployment_id=str(uuid.uuid4()),
        commit_sha=body.commit_sha,
        image=image,
    )
    deployment = await start_deployment(session, settings, temporal, app, workflow_input)
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action="release.register",
        target=f"release:{release.id}",
        result="accepted",
        request_id=request.state.request_id,
        detail={
            "app": app.slug,
            "version": release.version,
            "image": image.image_ref,
            "deployment": str(deployment.id),
            "note": body.note,
        },
    )
    session.commit()
    return ReleaseRegistered(
        release=releases_public(session, app, [release])[0],
        deployment=deployment_public(deployment, settings),
    )


async def hold_image(
    session: Session,
    settings: Settings,
    temporal: TemporalGateway,
    app: App,
    connection: GitConnection,
    release: Release,
    image: RegisteredImage,
    body: ReleaseRegister,
) -> None:
    """Signal-with-start, as a push: the deploy run holds it while the app is paused; the
    release's id makes registering it twice one push."""
    workflow_input = deploy_input(session, settings, app, connection, trigger="webhook")
    async with reaching_temporal("hold the image"):
        client = await temporal.client()
        await client.start_workflow(
            DeployRelease.run,
            workflow_input,
            id=deploy_workflow_id(str(app.id), workflow_input.environment),
            task_queue=settings.task_queue,
            start_signal=PUSH_SIGNAL,
            start_signal_args=[
                PushedCommit(
                    sha=body.commit_sha or "",
                    received_at=utcnow(),
                    delivery_id=f"release:{release.id}",
                    image=image,
                )
            ],
            **run_labels(workflow_input),
        )


def _registered_release(
    session: Session, app: App, digest: str, image_ref: str, body: ReleaseRegister
) -> tuple[Release, bool]:
    """The app's release of this digest, made (as BUILD, with the next version) if it has
    none; True when made now. Two registrations at once take distinct versions, and the
    same digest twice is one release (the table's unique constraints decide)."""
    for _attempt in range(5):
        existing = session.exec(
            select(Release).where(Release.app_id == app.id, Release.image_digest == digest)
        ).first()
        if existing is not None:
            if existing.deleted_at is not None:  # pushed again after retention deleted it
                existing.deleted_at = None
                session.add(existing)
                session.commit()
            return existing, False
        latest = session.exec(
            select(sa.func.max(col(Release.version))).where(Release.app_id == app.id)
        ).one()
        release = Release(
            app_id=app.id,
            version=(latest or 0) + 1,
            commit_sha=body.commit_sha or "",
            image_digest=digest,
            image_ref=image_ref,
            lifecycle=lifecycle.BUILD,
        )
        session.add(release)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        return release, True
    raise ApiError(
        409, "RELEASE_CONFLICT", f"app {app.slug} is registering many releases at once; retry"
    )


@router.post(
    "/apps/{app_id}/releases/{version}/lifecycle",
    name="apply_lifecycle_action",
    response_model=ReleasePublic,
    responses={
        202: {"model": LifecycleStarted, "description": "a deploying action started a promotion"},
        409: {"description": "LIFECYCLE_TRANSITION_INVALID, with `allowed_actions`"},
        **problems(503),
    },
)
async def lifecycle_action(
    version: VersionPath,
    body: LifecycleAction,
    request: Request,
    principal: Annotated[Principal, scope("promote")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> Any:
    """Apply a lifecycle action. declare-rc, reject-rc, declare-stable and declare-rejected
    change the state now (200, the release); rejecting ends every open promotion of the
    release `rejected` (rolled back if it had deployed), and a REJECTED release never moves
    again. accept-rc (to qa) and deploy-stable (to the
    `environment` given) start a promotion (202, the release and the promotion); the release
    takes its new state when the promotion has deployed it."""
    release = _release(session, app, version)
    if body.action == lifecycle.ACCEPT_RC and body.environment not in (None, "qa"):
        raise _environment_refused("accept-rc always deploys to qa")
    if body.action not in lifecycle.DEPLOYING_ACTIONS and body.environment is not None:
        raise _environment_refused(f"{body.action} deploys nowhere; leave environment out")
    current = release.lifecycle
    try:
        transition = lifecycle.apply(current, body.action, app.pipeline, body.environment)
    except lifecycle.LifecycleError as exc:
        raise _transition_invalid(release, exc) from None
    if transition.deploys_to is not None:
        return await _start(
            session, settings, temporal, principal, app, release, body, transition.deploys_to,
            request,
        )  # fmt: skip
    # Conditional, so that of two actions racing on the same release only one applies.
    moved: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sa.update(Release)
        .where(col(Release.id) == release.id, col(Release.lifecycle) == current)
        .values(lifecycle=transition.new_state)
    )
    if moved.rowcount != 1:
        session.rollback()
        session.refresh(release)
        raise _transition_invalid(
            release, lifecycle.LifecycleError(release.lifecycle, _allowed(app, release))
        )
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=principal.subject,
        action=f"release.{body.action}",
        target=f"release:{release.id}",
        result="done",
        request_id=request.state.request_id,
        detail={
            "app": app.slug,
            "version": release.version,
            "from": current,
            "to": transition.new_state,
            "note": body.note,
        },
    )
    published = []
    if transition.new_state == lifecycle.REJECTED:
        published.append(
            events.publish(
                session,
                tenant_id=app.tenant_id,
                app_id=app.id,
                kind=events.RELEASE_REJECTED,
                key=f"{events.RELEASE_REJECTED}:{release.id}",
                data={
                    "release_id": str(release.id),
                    "version": release.version,
                    "release_digest": release.image_digest,
                    "commit_sha": release.commit_sha,
                    "action": body.action,
                    "by": principal.subject,
                    "note": body.note,
                },
            )
        )
    session.commit()
    session.refresh(release)
    await announce(request, published)
    if release.lifecycle == lifecycle.REJECTED:
        await recheck_open_promotions(session, temporal, release)
    return releases_public(session, app, [release])[0]


async def _start(
    session: Session,
    settings: Settings,
    temporal: TemporalGateway,
    principal: Principal,
    app: App,
    release: Release,
    body: LifecycleAction,
    environment: str,
    request: Request,
) -> JSONResponse:
    promotion = await start_promotion(
        session, settings, temporal, principal, app, release, environment, body.note,
        body.action, request.state.request_id, force=body.force,
    )  # fmt: skip
    started = LifecycleStarted(
        release=releases_public(session, app, [release])[0],
        promotion=promotion,
    )
    return JSONResponse(jsonable_encoder(started), status_code=status.HTTP_202_ACCEPTED)


def releases_public(session: Session, app: App, releases: list[Release]) -> list[ReleasePublic]:
    """The releases with where each runs and the approvals its promotions received."""
    ids = [release.id for release in releases]
    active: dict[uuid.UUID, list[str]] = defaultdict(list)
    for env in session.exec(
        select(Environment)
        .where(Environment.app_id == app.id, col(Environment.current_release_id).in_(ids))
        .order_by(col(Environment.position))
    ).all():
        if env.current_release_id is not None:
            active[env.current_release_id].append(env.name)
    approvals: dict[uuid.UUID, list[ApprovalPublic]] = defaultdict(list)
    for approval, promotion in session.exec(
        select(Approval, Promotion)
        .join(Promotion, col(Approval.promotion_id) == col(Promotion.id))
        .where(col(Promotion.release_id).in_(ids))
        .order_by(col(Approval.created_at))
    ).all():
        approvals[promotion.release_id].append(
            ApprovalPublic(
                promotion_id=promotion.id,
                environment=promotion.environment,
                subject=approval.subject,
                decision=approval.decision,
                comment=approval.comment,
                at=approval.created_at,
            )
        )
    return [
        ReleasePublic(
            id=release.id,
            app_id=release.app_id,
            version=release.version,
            commit_sha=release.commit_sha,
            image_digest=release.image_digest,
            image_ref=release.image_ref,
            lifecycle=release.lifecycle,
            allowed_actions=_allowed(app, release),
            active_in=active[release.id],
            approvals=approvals[release.id],
            created_at=release.created_at,
        )
        for release in releases
    ]


def _allowed(app: App, release: Release) -> list[str]:
    return lifecycle.allowed_actions(release.lifecycle, app.pipeline)


def _release(session: Session, app: App, version: str) -> Release:
    number = int(version.removeprefix("v"))
    release = session.exec(
        select(Release).where(Release.app_id == app.id, Release.version == number)
    ).first()
    if release is None:
        raise not_found(f"release v{number} of app {app.slug}")
    return release


def _transition_invalid(release: Release, exc: lifecycle.LifecycleError) -> ApiError:
    return ApiError(
        409,
        "LIFECYCLE_TRANSITION_INVALID",
        f"release v{release.version}: {exc}",
        extra={"current_state": exc.current, "allowed_actions": exc.allowed},
    )


def _environment_refused(message: str) -> ApiError:
    return ApiError(
        422,
        "VALIDATION_FAILED",
        "the request is not valid; see errors",
        errors=[{"field": "body.environment", "message": message}],
    )
