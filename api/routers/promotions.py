"""Promotions: preflight, request, approve or reject (Temporal Updates), override a freeze,
cancel, read the evidence; and what a caller may approve across the tenant."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.answers import validated
from api.auth import Principal
from api.contract import problems
from api.deps import (
    AppDep,
    PageDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
    TenantDep,
    scope,
)
from api.errors import ApiError, not_found
from api.pagination import newest_first
from api.promotions import (
    blocking_reason,
    promotion_public,
    release_by_version,
    start_promotion,
    target_environment,
)
from api.routers import API_PREFIX
from api.schemas import MAX_VERSION
from api.schemas.promotions import (
    ApprovalBody,
    ConfigDiff,
    Evidence,
    OverrideBody,
    Preflight,
    PromotionApproval,
    PromotionCreate,
    PromotionDetail,
    PromotionPage,
    PromotionPublic,
    PromotionRetry,
    RejectionBody,
)
from api.workflow_calls import addressing_run, cancel_run, run_handle
from clients.registry import ImageRef, RegistryClient, RegistryError
from core import freeze
from core.audit import record_audit
from core.clock import utcnow
from core.models import (
    App,
    Approval,
    Environment,
    EnvironmentSecret,
    FreezeWindow,
    Promotion,
    Release,
)
from workflows.promote import APPROVE, OVERRIDE_FREEZE, REJECT, Decision, FreezeOverride

router = APIRouter(prefix=API_PREFIX, tags=["promotions"])
OPEN = ("pending_approval", "waiting_window", "deploying", "verifying")
# Validator refusals: who may not do this (403) or what state forbids it (409).
REFUSAL_STATUS = {
    "SCOPE_MISSING": 403,
    "APPROVER_IS_REQUESTER": 403,
    "OVERRIDE_BY_REQUESTER": 403,
    "ALREADY_APPROVED": 409,
    "PROMOTION_NOT_PENDING": 409,
    "PROMOTION_NOT_WAITING": 409,
    "DIGEST_MISMATCH": 409,
    "REASON_MISSING": 422,
}


@router.get(
    "/apps/{app_id}/promotions/preflight", name="get_promotion_preflight", response_model=Preflight
)
async def preflight(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
    version: Annotated[int, Query(ge=1, le=MAX_VERSION)],
    environment: Annotated[str, Query(min_length=1, max_length=30)],
) -> Preflight:
    """Whether the release can be promoted there now, and every reason it cannot."""
    release = release_by_version(session, app, version)
    target = target_environment(session, app, environment)
    reasons: list[str] = []
    blocked = blocking_reason(release, environment, app.pipeline)
    if blocked:
        reasons.append(blocked)
    image_present = await _image_present(settings, app, release)
    if image_present is False:
        reasons.append(f"the image of v{version} is missing from the registry")
    elif image_present is None:
        reasons.append("the registry could not be asked whether the image is there")
    windows = _windows(session, target)
    until = freeze.frozen_until(windows, utcnow())
    if until is not None:
        reasons.append(f"{environment} is frozen until {until.isoformat()}")
    return Preflight(
        promotable=not reasons,
        reasons=reasons,
        version=version,
        environment=environment,
        lifecycle_state=release.lifecycle,
        image_present=image_present,
        frozen_until=until.isoformat() if until else None,
        required_approvals=target.required_approvals,
        config_diff=_config_diff(session, app, release, target),
    )


@router.post(
    "/apps/{app_id}/promotions",
    response_model=PromotionPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def create_promotion(
    principal: Annotated[Principal, scope("promote")],
    app: AppDep,
    body: PromotionCreate,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> PromotionPublic:
    """Promote a release to an environment: approvals, freeze windows and verification
    apply. Answers at once; follow `status_url`."""
    release = release_by_version(session, app, body.version)
    return await start_promotion(
        session, settings, temporal, principal, app, release, body.environment, body.note, None,
        request.state.request_id, force=body.force,
    )  # fmt: skip


# A promotion that ended `failed` after its approvals were in failed in its window, lock, deploy
# or verify phase; these codes mean it never got that far (or can never get further).
NOT_RETRYABLE_CODES = ("PROMOTION_BLOCKED", "RELEASE_REJECTED", "NOT_STARTED")


@router.post(
    "/apps/{app_id}/promotions/{promotion_id}/retry",
    name="retry_promotion",
    response_model=PromotionPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def retry(
    promotion_id: uuid.UUID,
    body: PromotionRetry,
    request: Request,
    principal: Annotated[Principal, scope("promote")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> PromotionPublic:
    """Run a promotion that failed in its deploy or verify phase again: a new promotion
    (`retry_of` names this one) of the same release and digest, asked for by the same
    requester, carrying the approvals this one had (each keeps its approver, time and digest);
    the gates are checked as they are now (freeze windows, the release not rejected, the
    environment lock, a pause, an approval policy that now asks for more). 409
    PROMOTION_NOT_RETRYABLE for one that did not fail, or failed before its approvals were in
    or on a gate that can never open."""
    promotion = _promotion(session, app, promotion_id)
    approved = any(
        gate.get("gate") == "approvals" and gate.get("passed") for gate in promotion.gates
    )
    code = (promotion.failure_reason or "").split(":", 1)[0]
    if promotion.status != "failed" or not approved or code in NOT_RETRYABLE_CODES:
        why = (
            f"it is {promotion.status}"
            if promotion.status != "failed"
            else f"it failed before its deploy ({promotion.failure_reason})"
        )
        raise ApiError(
            409,
            "PROMOTION_NOT_RETRYABLE",
            f"promotion {promotion.id} cannot be retried: {why}; only a promotion that failed "
            "in its deploy or verify phase can be, else request a new one",
            extra={"status": promotion.status},
        )
    release = session.get(Release, promotion.release_id)
    if release is None:
        raise not_found(f"release of promotion {promotion.id}")
    return await start_promotion(
        session, settings, temporal, principal, app, release, promotion.environment,
        promotion.note, promotion.lifecycle_action, request.state.request_id,
        force=body.force, retry_of=promotion,
    )  # fmt: skip


@router.get("/apps/{app_id}/promotions", response_model=PromotionPage)
def list_promotions(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    page: PageDep,
) -> Response:
    """The app's promotions, newest first."""
    rows, total, next_cursor = newest_first(session, Promotion, [Promotion.app_id == app.id], page)
    return validated(
        PromotionPage(
            items=[promotion_public(row) for row in rows], total=total, next_cursor=next_cursor
        )
    )


@router.get("/apps/{app_id}/promotions/{promotion_id}", response_model=PromotionDetail)
def get_promotion(
    promotion_id: uuid.UUID,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> PromotionDetail:
    """One promotion, with the approvals and rejections it received."""
    promotion = _promotion(session, app, promotion_id)
    return _detail(session, promotion)


@router.post(
    "/apps/{app_id}/promotions/{promotion_id}/approve",
    name="approve_promotion",
    response_model=PromotionDetail,
    responses=problems(409, 503),
)
async def approve(
    principal: PrincipalDep,
    app: AppDep,
    promotion_id: uuid.UUID,
    body: ApprovalBody,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
) -> PromotionDetail:
    """Approve the release's digest, named in the body as the approver saw it; refused before
    anything is recorded when the digest is not the promotion's, when the caller may not (the
    requester, a second approval, a missing scope) or the promotion is not waiting."""
    return await _decide(APPROVE, app, promotion_id, body, request, principal, session, temporal)


@router.post(
    "/apps/{app_id}/promotions/{promotion_id}/reject",
    name="reject_promotion",
    response_model=PromotionDetail,
    responses=problems(409, 503),
)
async def reject(
    principal: PrincipalDep,
    app: AppDep,
    promotion_id: uuid.UUID,
    body: RejectionBody,
    request: Request,
    session: SessionDep,
    temporal: TemporalDep,
) -> PromotionDetail:
    """Reject the promotion (named by the release's digest, as the approver saw it); it ends
    `rejected`."""
    return await _decide(REJECT, app, promotion_id, body, request, principal, session, temporal)


@router.post(
    "/apps/{app_id}/promotions/{promotion_id}/override-freeze",
    name="override_promotion_freeze",
    response_model=PromotionPublic,
    responses=problems(409, 503),
)
async def override_freeze(
    promotion_id: uuid.UUID,
    body: OverrideBody,
    request: Request,
    principal: PrincipalDep,
    app: AppDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> PromotionPublic:
    """Break glass: let a promotion through a freeze window, with a reason, audited."""
    promotion = _promotion(session, app, promotion_id)
    override = FreezeOverride(
        subject=principal.subject, scopes=sorted(principal.scopes), reason=body.reason
    )
    await _update(temporal, promotion, OVERRIDE_FREEZE, override)
    record_audit(
        session, tenant_id=promotion.tenant_id, actor=principal.subject,
        action="promotion.override_freeze", target=f"promotion:{promotion.id}", result="ok",
        request_id=request.state.request_id, detail={"reason": body.reason},
    )  # fmt: skip
    session.commit()
    session.refresh(promotion)
    return promotion_public(promotion)


@router.post(
    "/apps/{app_id}/promotions/{promotion_id}/cancel",
    name="cancel_promotion",
    response_model=PromotionPublic,
    status_code=202,
    responses=problems(409, 503),
)
async def cancel(
    promotion_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, scope("promote")],
    app: AppDep,
    session: SessionDep,
    temporal: TemporalDep,
) -> PromotionPublic:
    """Before its deploy a promotion just ends `cancelled`; after, the environment is rolled
    back to what ran before."""
    promotion = _promotion(session, app, promotion_id)
    if promotion.status not in OPEN and promotion.status != "cancelled":
        raise ApiError(409, "PROMOTION_FINISHED", f"the promotion already ended {promotion.status}")
    if promotion.status in OPEN:
        await cancel_run(
            temporal, promotion.workflow_id, promotion.run_id, f"promotion {promotion.id}"
        )
        record_audit(
            session, tenant_id=promotion.tenant_id, actor=principal.subject,
            action="promotion.cancel", target=f"promotion:{promotion.id}", result="requested",
            request_id=request.state.request_id,
        )  # fmt: skip
        session.commit()
    return promotion_public(promotion)


@router.get(
    "/apps/{app_id}/promotions/{promotion_id}/evidence",
    name="get_promotion_evidence",
    response_model=Evidence,
)
def evidence(
    promotion_id: uuid.UUID,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> JSONResponse:
    """The evidence packet: who asked, who approved when and why, gates, digests, timings."""
    promotion = _promotion(session, app, promotion_id)
    packet = {
        "promotion_id": str(promotion.id),
        "app_id": str(promotion.app_id),
        "environment": promotion.environment,
        "release": {"version": promotion.version, "digest": promotion.release_digest},
        "requested_by": promotion.requested_by,
        "retry_of": str(promotion.retry_of) if promotion.retry_of else None,
        "note": promotion.note,
        "approvals": [
            approval.model_dump(mode="json") for approval in _approvals(session, promotion)
        ],
        "required_approvals": promotion.required_approvals,
        "gates": promotion.gates,
        "previous_image": promotion.previous_image,
        "verification": promotion.verification,
        "outcome": {"status": promotion.status, "reason": promotion.failure_reason},
        "timings": {
            "requested_at": promotion.created_at.isoformat(),
            "completed_at": promotion.completed_at.isoformat() if promotion.completed_at else None,
        },
        "workflow_id": promotion.workflow_id,
    }
    return JSONResponse(
        packet,
        headers={"Content-Disposition": f'attachment; filename="promotion-{promotion.id}.json"'},
    )


@router.get(
    "/tenants/{tenant}/pending-approvals",
    name="list_pending_approvals",
    response_model=PromotionPage,
)
def pending_approvals(
    tenant: TenantDep,
    principal: Annotated[Principal, scope("apps:read")],
    session: SessionDep,
) -> Response:
    """Promotions waiting for approvals that the caller may give now."""
    waiting = session.exec(
        select(Promotion, Environment)
        .join(
            Environment,
            (col(Environment.app_id) == col(Promotion.app_id))
            & (col(Environment.name) == col(Promotion.environment)),
        )
        .where(Promotion.tenant_id == tenant.id, Promotion.status == "pending_approval")
        .order_by(col(Promotion.created_at).desc())
    ).all()
    # Which of them the caller approved or rejected already, in one query.
    decided = set(
        session.exec(
            select(Approval.promotion_id).where(
                col(Approval.promotion_id).in_([promotion.id for promotion, _env in waiting]),
                Approval.subject == principal.subject,
            )
        ).all()
    )
    items = []
    for promotion, environment in waiting:
        if environment.approver_scope not in principal.scopes:
            continue
        if promotion.requested_by == principal.subject and not environment.requester_may_approve:
            continue
        if promotion.id in decided:
            continue
        items.append(promotion_public(promotion))
    return validated(PromotionPage(items=items, total=len(items), next_cursor=None))


async def _decide(
    kind: str,
    app: App,
    promotion_id: uuid.UUID,
    body: ApprovalBody | RejectionBody,
    request: Request,
    principal: Principal,
    session: Session,
    temporal: Any,
) -> PromotionDetail:
    promotion = _promotion(session, app, promotion_id)
    if body.release_digest is not None and body.release_digest != promotion.release_digest:
        raise ApiError(
            409,
            "DIGEST_MISMATCH",
            f"the decision names {body.release_digest}, but this promotion is of "
            f"v{promotion.version} with digest {promotion.release_digest}",
            extra={"release_digest": promotion.release_digest},
        )
    decision = Decision(
        subject=principal.subject, scopes=sorted(principal.scopes), comment=body.comment,
        release_digest=body.release_digest or promotion.release_digest,
    )  # fmt: skip
    await _update(temporal, promotion, kind, decision)
    record_audit(
        session, tenant_id=promotion.tenant_id, actor=principal.subject,
        action=f"promotion.{kind}", target=f"promotion:{promotion.id}", result="ok",
        request_id=request.state.request_id, detail={"comment": body.comment},
    )  # fmt: skip
    session.commit()
    session.refresh(promotion)
    return _detail(session, promotion)


async def _update(temporal: Any, promotion: Promotion, update: str, argument: Any) -> None:
    if promotion.status not in OPEN:
        raise ApiError(
            409, "PROMOTION_NOT_PENDING", f"the promotion already ended {promotion.status}"
        )
    try:
        async with addressing_run(f"promotion {promotion.id}"):
            client = await temporal.client()
            handle = run_handle(client, promotion.workflow_id, promotion.run_id)
            await handle.execute_update(update, argument)
    except WorkflowUpdateFailedError as failed:
        cause = failed.cause
        if isinstance(cause, ApplicationError) and cause.type in REFUSAL_STATUS:
            raise ApiError(REFUSAL_STATUS[cause.type], cause.type, cause.message) from None
        raise


def _promotion(session: Session, app: App, promotion_id: uuid.UUID) -> Promotion:
    promotion = session.get(Promotion, promotion_id)
    if promotion is None or promotion.app_id != app.id:
        raise not_found(f"promotion {promotion_id}")
    return promotion


def _detail(session: Session, promotion: Promotion) -> PromotionDetail:
    return PromotionDetail(
        **promotion_public(promotion).model_dump(), approvals=_approvals(session, promotion)
    )


def _approvals(session: Session, promotion: Promotion) -> list[PromotionApproval]:
    rows = session.exec(
        select(Approval)
        .where(Approval.promotion_id == promotion.id)
        .order_by(col(Approval.created_at))
    ).all()
    return [
        PromotionApproval(
            subject=row.subject,
            carried_from=row.carried_from,
            decision=row.decision,
            comment=row.comment,
            release_digest=row.release_digest,
            at=row.created_at.isoformat(),
        )
        for row in rows
    ]


def _windows(session: Session, environment: Environment) -> list[FreezeWindow]:
    return list(
        session.exec(
            select(FreezeWindow).where(FreezeWindow.environment_id == environment.id)
        ).all()
    )


def _config_diff(session: Session, app: App, release: Any, target: Environment) -> ConfigDiff:
    """Configuration keys that differ between where the release runs now and the target."""
    source = (
        session.exec(
            select(Environment).where(
                Environment.app_id == app.id, Environment.current_release_id == release.id
            )
        ).first()
        or session.exec(
            select(Environment).where(
                Environment.app_id == app.id, Environment.name == app.pipeline[0]
            )
        ).one()
    )

    def keys(environment: Environment) -> set[str]:
        secrets = session.exec(
            select(EnvironmentSecret.name).where(EnvironmentSecret.environment_id == environment.id)
        ).all()
        return set(environment.variables) | {f"secret:{name}" for name in secrets}

    source_keys, target_keys = keys(source), keys(target)
    different = sorted(
        name
        for name in set(source.variables) & set(target.variables)
        if source.variables[name] != target.variables[name]
    )
    return ConfigDiff(
        source_environment=source.name,
        only_in_source=sorted(source_keys - target_keys),
        only_in_target=sorted(target_keys - source_keys),
        values_differ=different,
    )


async def _image_present(settings: Any, app: App, release: Any) -> bool | None:
    """A live, read-only look at the registry; None when it cannot be asked."""
    repository = ImageRef.parse(release.image_ref).repository
    try:
        async with RegistryClient.from_settings(settings, timeout=5) as registry:
            return await registry.head_manifest(repository, release.image_digest) is not None
    except RegistryError:
        return None
