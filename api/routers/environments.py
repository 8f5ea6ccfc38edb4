"""Environments of an app: approval policy, soak time and replicas; configuration (variables,
and secrets whose values are write-only); freeze windows."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from anyio import from_thread
from fastapi import APIRouter, Request, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.common import WorkflowIDConflictPolicy

from activities.locks import holder_is_running, lock_waiters, locked_message
from api.announcing import announce
from api.auth import Principal
from api.contract import problems
from api.deploys import require_active, step_timeouts
from api.deps import AppDep, PageDep, SessionDep, SettingsDep, TemporalDep, scope
from api.errors import ApiError, not_found
from api.pagination import Page, newest_first
from api.promotions import OPEN_STATUSES
from api.routers import API_PREFIX
from api.routers.bootstraps import workflow_url
from api.schemas.environments import (
    ApprovalPolicy,
    ConfigPublic,
    ConfigUpdate,
    EnvironmentCreate,
    EnvironmentPublic,
    EnvironmentRemoval,
    EnvironmentUpdate,
    FreezeWindowCreate,
    FreezeWindowPublic,
    LockPublic,
    LockWaiterPublic,
    SecretName,
)
from api.workflow_calls import reaching_temporal
from core import events, freeze
from core.audit import record_audit
from core.clock import utcnow
from core.models import (
    App,
    Environment,
    EnvironmentLock,
    EnvironmentSecret,
    FreezeWindow,
    Promotion,
    Release,
    Tenant,
)
from core.naming import namespace_for, pipeline_problem
from core.secrets import encrypt
from workflows import search
from workflows.remove_environment import (
    RemoveEnvironment,
    RemoveEnvironmentInput,
    remove_environment_workflow_id,
)

router = APIRouter(prefix=API_PREFIX, tags=["environments"])

# Far enough for any plan; the bounds keep conversion to UTC clear of datetime's limits.
EARLIEST_YEAR, LATEST_YEAR = 2000, 2999


# -- bodies ----------------------------------------------------------------------------------


# -- environments ----------------------------------------------------------------------------


@router.get("/apps/{app_id}/environments", response_model=list[EnvironmentPublic])
def list_environments(
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> list[EnvironmentPublic]:
    """The app's environments in pipeline order."""
    environments = session.exec(
        select(Environment).where(Environment.app_id == app.id).order_by(col(Environment.position))
    ).all()
    return [environment_public(session, env) for env in environments]


@router.get("/apps/{app_id}/environments/{env}", response_model=EnvironmentPublic)
def get_environment(
    env: str,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> EnvironmentPublic:
    """The environment: what runs there, its approval policy, replicas and lock."""
    environment = _environment(session, app, env)
    return environment_public(session, environment)


@router.post(
    "/apps/{app_id}/environments",
    response_model=EnvironmentPublic,
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, 422),
)
def add_environment(
    body: EnvironmentCreate,
    request: Request,
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    session: SessionDep,
) -> EnvironmentPublic:
    """Add an environment to the app's pipeline, after `after` (default: last). It changes
    only by promotion or rollback, like every environment but the first; its namespace is
    made by the first promotion there."""
    require_active(app)
    pipeline = list(app.pipeline)
    if body.name in pipeline:
        raise ApiError(409, "ENVIRONMENT_EXISTS", f"app {app.slug} has {body.name} already")
    after = body.after or pipeline[-1]
    if after not in pipeline:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            f"app {app.slug} has no environment {after!r}",
            errors=[{"field": "body.after", "message": f"not in the pipeline {pipeline}"}],
        )
    pipeline.insert(pipeline.index(after) + 1, body.name)
    problem = pipeline_problem(pipeline)
    if problem:
        raise ApiError(409, "PIPELINE_FULL", f"the pipeline {problem}")
    tenant = session.get(Tenant, app.tenant_id)
    assert tenant is not None
    position = pipeline.index(body.name)
    for other in session.exec(
        select(Environment).where(Environment.app_id == app.id, Environment.position >= position)
    ).all():
        other.position += 1
        session.add(other)
    environment = Environment(
        app_id=app.id,
        name=body.name,
        position=position,
        namespace=namespace_for(tenant.slug, app.slug, body.name),
    )
    app.pipeline = pipeline
    app.updated_at = utcnow()
    session.add_all([environment, app])
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise ApiError(
            409, "ENVIRONMENT_EXISTS", f"app {app.slug} has {body.name} already"
        ) from None
    _audit(session, request, principal.subject, app, "environment.add", body.name, {"after": after})
    session.commit()
    return environment_public(session, environment)


@router.delete(
    "/apps/{app_id}/environments/{env}",
    response_model=EnvironmentRemoval,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problems(409, 503),
)
async def remove_environment(
    env: str,
    request: Request,
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
) -> EnvironmentRemoval:
    """Take an environment out of the pipeline: its namespace is deleted, then its policy,
    configuration, secrets and freeze windows; what ran there stays as history. Refused for
    the first environment (pushes deploy there), and while a promotion targets it or a run
    holds it."""
    environment = _environment(session, app, env)
    if env == app.pipeline[0]:
        raise ApiError(
            409, "ENVIRONMENT_REQUIRED", f"{env} is where {app.slug}'s pushes deploy; it stays"
        )
    promotion = session.exec(
        select(Promotion).where(
            Promotion.app_id == app.id,
            Promotion.environment == env,
            col(Promotion.status).in_(OPEN_STATUSES),
        )
    ).first()
    if promotion is not None:
        raise ApiError(
            409,
            "ENVIRONMENT_BUSY",
            f"promotion {promotion.id} to {env} is open; wait for it or cancel it",
        )
    lock = session.get(EnvironmentLock, environment.id)
    tenant = session.get(Tenant, app.tenant_id)
    assert tenant is not None
    workflow_id = remove_environment_workflow_id(str(app.id), env)
    async with reaching_temporal("start the removal"):
        client = await temporal.client()
        if lock is not None and await holder_is_running(client, lock.holder_workflow_id):
            raise ApiError(
                409,
                "ENVIRONMENT_BUSY",
                locked_message(env, lock.holder_kind, lock.holder_workflow_id)
                + "; remove it when that has ended",
            )
        await client.start_workflow(
            RemoveEnvironment.run,
            RemoveEnvironmentInput(
                tenant_id=str(app.tenant_id),
                tenant_slug=tenant.slug,
                app_id=str(app.id),
                app_slug=app.slug,
                environment=env,
                namespace=environment.namespace,
                requested_by=principal.subject,
                kube_task_queue=settings.kube_task_queue,
                timeouts=step_timeouts(settings),
            ),
            id=workflow_id,
            task_queue=settings.task_queue,
            # A removal still running is this one.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Remove {env} from {tenant.slug}/{app.slug}",
            search_attributes=search.for_app(tenant.slug, app.slug, env, "delete"),
        )
    _audit(session, request, principal.subject, app, "environment.remove", env, {})
    session.commit()
    return EnvironmentRemoval(
        environment=env, workflow_id=workflow_id, workflow_url=workflow_url(settings, workflow_id)
    )


@router.patch("/apps/{app_id}/environments/{env}", response_model=EnvironmentPublic)
def update_environment(
    env: str,
    body: EnvironmentUpdate,
    request: Request,
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    session: SessionDep,
) -> EnvironmentPublic:
    """Change the approval policy, soak time or replicas; fields left out keep their value.
    Promotions already open keep the policy they started with."""
    environment = _environment(session, app, env)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"approval_policy"})
    if body.approval_policy is not None:
        changes.update(body.approval_policy.model_dump(exclude_unset=True))
    for field, value in changes.items():
        setattr(environment, field, value)
    environment.updated_at = utcnow()
    session.add(environment)
    _audit(session, request, principal.subject, app, "environment.update", env, changes)
    session.commit()
    return environment_public(session, environment)


def environment_public(session: Session, environment: Environment) -> EnvironmentPublic:
    lock = session.get(EnvironmentLock, environment.id)
    release = (
        session.get(Release, environment.current_release_id)
        if environment.current_release_id
        else None
    )
    return EnvironmentPublic(
        name=environment.name,
        position=environment.position,
        namespace=environment.namespace,
        current_release_id=environment.current_release_id,
        current_version=release.version if release else None,
        replicas=environment.replicas,
        approval_policy=ApprovalPolicy.model_validate(environment, from_attributes=True),
        soak_seconds=environment.soak_seconds,
        frozen_until=freeze.frozen_until(_windows(session, environment), utcnow()),
        lock=LockPublic.model_validate(lock, from_attributes=True) if lock else None,
        waiting=[
            LockWaiterPublic.model_validate(row, from_attributes=True)
            for row in lock_waiters(session, environment.id)
        ],
        updated_at=environment.updated_at,
    )


# -- configuration ---------------------------------------------------------------------------


@router.get(
    "/apps/{app_id}/environments/{env}/config",
    name="get_environment_config",
    response_model=ConfigPublic,
)
def get_config(
    env: str,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> ConfigPublic:
    """Plain variables with their values; secrets by name only."""
    environment = _environment(session, app, env)
    return _config_public(session, environment)


@router.put(
    "/apps/{app_id}/environments/{env}/config",
    name="replace_environment_config",
    response_model=ConfigPublic,
)
def put_config(
    env: str,
    body: ConfigUpdate,
    request: Request,
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    session: SessionDep,
    settings: SettingsDep,
) -> ConfigPublic:
    """Replace the variables; set, replace or delete secrets. Takes effect with the next
    deployment, promotion or rollback of the environment."""
    environment = _environment(session, app, env)
    stored = {row.name: row for row in _secrets(session, environment)}
    remaining = (set(stored) | {n for n, v in body.secrets.items() if v is not None}) - {
        n for n, v in body.secrets.items() if v is None
    }
    clashes = sorted(remaining & set(body.variables))
    if clashes:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "a name cannot be both a variable and a secret",
            errors=[
                {"field": f"body.variables.{name}", "message": "is also a secret"}
                for name in clashes
            ],
        )
    key = settings.secret_key.get_secret_value()
    now = utcnow()
    for name, value in body.secrets.items():
        row = stored.get(name)
        if value is None:
            if row is not None:
                session.delete(row)
            continue
        if row is None:
            row = EnvironmentSecret(environment_id=environment.id, name=name, ciphertext="")
        row.ciphertext = encrypt(value, key)
        row.updated_at = now
        session.add(row)
    environment.variables = dict(body.variables)
    environment.updated_at = now
    session.add(environment)
    detail = {
        "variables": sorted(body.variables),
        "secrets_set": sorted(n for n, v in body.secrets.items() if v is not None),
        "secrets_deleted": sorted(n for n, v in body.secrets.items() if v is None and n in stored),
    }
    _audit(session, request, principal.subject, app, "environment.config.update", env, detail)
    changed = events.publish(
        session,
        tenant_id=app.tenant_id,
        app_id=app.id,
        kind=events.CONFIG_CHANGED,
        key=f"{events.CONFIG_CHANGED}:{uuid.uuid4()}",
        data={"environment": env, "by": principal.subject, **detail},
    )
    session.commit()
    from_thread.run(announce, request, [changed])
    return _config_public(session, environment)


def _config_public(session: Session, environment: Environment) -> ConfigPublic:
    return ConfigPublic(
        environment=environment.name,
        variables=environment.variables,
        secrets=[
            SecretName(name=row.name, updated_at=row.updated_at)
            for row in _secrets(session, environment)
        ],
        updated_at=environment.updated_at,
    )


def _secrets(session: Session, environment: Environment) -> list[EnvironmentSecret]:
    return list(
        session.exec(
            select(EnvironmentSecret)
            .where(EnvironmentSecret.environment_id == environment.id)
            .order_by(col(EnvironmentSecret.name))
        ).all()
    )


# -- freeze windows --------------------------------------------------------------------------


@router.post(
    "/apps/{app_id}/environments/{env}/freeze-windows",
    response_model=FreezeWindowPublic,
    status_code=status.HTTP_201_CREATED,
)
def create_freeze_window(
    env: str,
    body: FreezeWindowCreate,
    request: Request,
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    session: SessionDep,
) -> FreezeWindowPublic:
    """A one-off window (starts_at, ends_at) or a recurring one (cron, duration_minutes,
    timezone). Promotions that reach the environment while it is frozen wait for it to open."""
    environment = _environment(session, app, env)
    problems = _window_problems(body)
    if problems:
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "the freeze window is not valid; see errors",
            errors=[{"field": f"body.{field}", "message": message} for field, message in problems],
        )
    window = FreezeWindow(
        environment_id=environment.id,
        kind=body.kind,
        reason=body.reason,
        created_by=principal.subject,
        **(
            {"starts_at": body.starts_at, "ends_at": body.ends_at}
            if body.kind == freeze.ONE_OFF
            else {
                "cron": " ".join((body.cron or "").split()),
                "duration_minutes": body.duration_minutes,
                "timezone": body.timezone,
            }
        ),
    )
    session.add(window)
    _audit(
        session, request, principal.subject, app, "freeze_window.create", env,
        {"id": str(window.id), "kind": window.kind, "reason": window.reason},
    )  # fmt: skip
    session.commit()
    return _window_public(window, environment.name)


@router.get(
    "/apps/{app_id}/environments/{env}/freeze-windows", response_model=Page[FreezeWindowPublic]
)
def list_freeze_windows(
    env: str,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
    page: PageDep,
) -> Page[FreezeWindowPublic]:
    """The environment's freeze windows, newest first, each saying whether it holds now."""
    environment = _environment(session, app, env)
    rows, total, next_cursor = newest_first(
        session, FreezeWindow, [FreezeWindow.environment_id == environment.id], page
    )
    return Page[FreezeWindowPublic](
        items=[_window_public(row, environment.name) for row in rows],
        total=total,
        next_cursor=next_cursor,
    )


@router.get(
    "/apps/{app_id}/environments/{env}/freeze-windows/{window_id}",
    response_model=FreezeWindowPublic,
)
def get_freeze_window(
    env: str,
    window_id: uuid.UUID,
    principal: Annotated[Principal, scope("apps:read")],
    app: AppDep,
    session: SessionDep,
) -> FreezeWindowPublic:
    """One freeze window, saying whether it holds now."""
    environment = _environment(session, app, env)
    return _window_public(_window(session, environment, window_id), environment.name)


@router.delete(
    "/apps/{app_id}/environments/{env}/freeze-windows/{window_id}",
    status_code=status.HTTP_204_NO_CONTENT,
)
def delete_freeze_window(
    env: str,
    window_id: uuid.UUID,
    request: Request,
    principal: Annotated[Principal, scope("apps:write")],
    app: AppDep,
    session: SessionDep,
) -> Response:
    """Remove the window; a promotion waiting for it re-checks the windows when it wakes."""
    environment = _environment(session, app, env)
    window = _window(session, environment, window_id)
    session.delete(window)
    _audit(
        session, request, principal.subject, app, "freeze_window.delete", env,
        {"id": str(window.id), "kind": window.kind, "reason": window.reason},
    )  # fmt: skip
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _window_problems(body: FreezeWindowCreate) -> list[tuple[str, str]]:
    """(field, message) for each thing wrong with the window, all at once."""
    problems: list[tuple[str, str]] = []
    if body.kind == freeze.ONE_OFF:
        for field in ("cron", "duration_minutes"):
            if getattr(body, field) is not None:
                problems.append((field, "only for recurring windows"))
        if body.starts_at is None:
            problems.append(("starts_at", "required for a one_off window"))
        if body.ends_at is None:
            problems.append(("ends_at", "required for a one_off window"))
        for field in ("starts_at", "ends_at"):
            value = getattr(body, field)
            if value is not None and not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
                problems.append((field, f"must be in the years {EARLIEST_YEAR} to {LATEST_YEAR}"))
        if not problems and body.starts_at is not None and body.ends_at is not None:
            problem = freeze.range_problem(body.starts_at, body.ends_at)
            if problem:
                problems.append(("ends_at", problem))
            elif body.ends_at <= utcnow():
                problems.append(("ends_at", "is in the past: the window would never hold"))
        return problems
    for field in ("starts_at", "ends_at"):
        if getattr(body, field) is not None:
            problems.append((field, "only for one_off windows"))
    if body.cron is None:
        problems.append(("cron", "required for a recurring window"))
    else:
        problem = freeze.cron_problem(body.cron)
        if problem:
            problems.append(("cron", problem))
    if body.duration_minutes is None:
        problems.append(("duration_minutes", "required for a recurring window"))
    else:
        problem = freeze.duration_problem(body.duration_minutes)
        if problem:
            problems.append(("duration_minutes", problem))
    zone_problem = freeze.timezone_problem(body.timezone)
    if zone_problem:
        problems.append(("timezone", zone_problem))
    if not problems and body.cron is not None and body.duration_minutes is not None:
        problem = freeze.recurrence_problem(body.cron, body.duration_minutes, body.timezone)
        if problem:
            problems.append(("duration_minutes", problem))
    return problems


def _window_public(window: FreezeWindow, environment: str) -> FreezeWindowPublic:
    now = utcnow()
    current = freeze.occurrence_at(window, now)
    upcoming = freeze.next_occurrence(window, now)
    return FreezeWindowPublic(
        id=window.id,
        environment=environment,
        kind=window.kind,
        reason=window.reason,
        starts_at=window.starts_at,
        ends_at=window.ends_at,
        cron=window.cron,
        duration_minutes=window.duration_minutes,
        timezone=window.timezone,
        created_by=window.created_by,
        created_at=window.created_at,
        active_now=current is not None,
        opens_at=current.end if current else None,
        next_starts_at=upcoming.start if upcoming else None,
    )


def _window(session: Session, environment: Environment, window_id: uuid.UUID) -> FreezeWindow:
    window = session.get(FreezeWindow, window_id)
    if window is None or window.environment_id != environment.id:
        raise not_found(f"freeze window {window_id}")
    return window


def _windows(session: Session, environment: Environment) -> list[FreezeWindow]:
    return list(
        session.exec(
            select(FreezeWindow).where(FreezeWindow.environment_id == environment.id)
        ).all()
    )


# -- shared ----------------------------------------------------------------------------------


def _environment(session: Session, app: App, name: str) -> Environment:
    environment = session.exec(
        select(Environment).where(Environment.app_id == app.id, Environment.name == name)
    ).first()
    if environment is None:
        raise not_found(f"environment {name!r} of app {app.slug}")
    return environment


def _audit(
    session: Session,
    request: Request,
    actor: str,
    app: App,
    action: str,
    env: str,
    detail: dict[str, Any],
) -> None:
    record_audit(
        session,
        tenant_id=app.tenant_id,
        actor=actor,
        action=action,
        target=f"app:{app.id}/environment:{env}",
        result="done",
        request_id=request.state.request_id,
        detail={"app": app.slug, **detail},
    )
