"""The console's pages: the release matrix, an app, pending approvals, a promotion. Each page
reads through the REST API as the signed-in session (api/console/calls.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.console.calls import ApiCalls, ApiRefusal
from api.console.rendering import templates
from api.console.session import Viewer, ViewerDep
from api.deps import SettingsDep
from api.routers.bootstraps import workflow_url
from api.routers.events import Feed, ResumeDep, latest_event_id, stream_feed
from core.settings import Settings

router = APIRouter(prefix="/console", include_in_schema=False)

# What a page says after a form did its work; the redirect names one of these.
NOTICES = {
    "promotion-requested": "Promotion requested",
    "approved": "Approved",
    "rejected": "Rejected",
    "freeze-overridden": "Freeze overridden",
    "promotion-cancelled": "Promotion cancelled",
    "rollback-started": "Rollback started",
    "deployment-cancelled": "Deployment cancelled",
    "paused": "Automated deploys paused",
    "resumed": "Automated deploys resumed",
}
MATRIX_PAGE = 50
HISTORY = 20
LOG_TAIL = 50


def calls(request: Request, viewer: Viewer) -> ApiCalls:
    return ApiCalls(request.app, viewer.token, getattr(request.state, "request_id", None))


def page(
    request: Request, viewer: Viewer | None, name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {
            "viewer": viewer,
            "notice": NOTICES.get(request.query_params.get("notice") or ""),
            **context,
        },
        status_code=status_code,
    )


def refusal_page(request: Request, viewer: Viewer | None, refusal: ApiRefusal) -> HTMLResponse:
    return page(request, viewer, "error.html", status_code=refusal.status, refusal=refusal)


# -- the release matrix ----------------------------------------------------------------------


async def _matrix(request: Request, viewer: Viewer, app: str | None, cursor: str | None) -> Any:
    async with calls(request, viewer) as api:
        return await api.get(
            f"/tenants/{viewer.tenant_slug}/release-matrix",
            app=app,
            cursor=cursor,
            limit=MATRIX_PAGE,
        )


def _environments(rows: list[dict[str, Any]]) -> list[str]:
    """The matrix's columns: every environment of the page's apps, in pipeline order."""
    names: list[str] = []
    for row in rows:
        for cell in row["cells"]:
            if cell["environment"] not in names:
                names.append(cell["environment"])
    return names


AppFilter = Annotated[str | None, Query(max_length=200)]
Cursor = Annotated[str | None, Query(max_length=500)]


@router.get("", response_class=HTMLResponse)
async def matrix(
    request: Request, viewer: ViewerDep, app: AppFilter = None, cursor: Cursor = None
) -> HTMLResponse:
    return await _matrix_page(request, viewer, "matrix.html", app, cursor)


@router.get("/matrix", response_class=HTMLResponse)
async def matrix_table(
    request: Request, viewer: ViewerDep, app: AppFilter = None, cursor: Cursor = None
) -> HTMLResponse:
    """The matrix table alone: what the page's script swaps in when an event arrives."""
    return await _matrix_page(request, viewer, "_matrix_table.html", app, cursor)


async def _matrix_page(
    request: Request, viewer: Viewer, template: str, app: str | None, cursor: str | None
) -> HTMLResponse:
    try:
        data = await _matrix(request, viewer, app, cursor)
    except ApiRefusal as refusal:
        return refusal_page(request, viewer, refusal)
    return page(
        request,
        viewer,
        template,
        nav="matrix",
        rows=data["items"],
        total=data["total"],
        next_cursor=data["next_cursor"],
        environments=_environments(data["items"]),
        filter=app or "",
        cursor=cursor or "",
    )


# -- live updates ----------------------------------------------------------------------------


@router.get("/events", response_class=EventSourceResponse)
async def events(
    request: Request, viewer: ViewerDep, after: ResumeDep
) -> AsyncIterator[ServerSentEvent]:
    """The tenant's event feed for the console's script. The browser's EventSource cannot send
    a key, so the session cookie opens it; every event comes as a plain `message` carrying its
    kind, so one listener sees all."""
    feed = Feed(tenant_id=viewer.tenant_id)
    # A page shows the present: its stream starts now, unless the browser resumes one.
    after = after or await asyncio.to_thread(latest_event_id, request.app.state.engine, feed)
    async for event in stream_feed(request, feed, viewer.key_id, after, keepalive=15.0):
        if event.data is not None or event.raw_data is not None:
            yield ServerSentEvent(id=event.id, raw_data=event.raw_data, data=event.data, event=None)
        else:
            yield event


# -- an app ----------------------------------------------------------------------------------


@router.get("/apps/{app_id}", response_class=HTMLResponse)
async def app_page(
    request: Request, app_id: uuid.UUID, viewer: ViewerDep, settings: SettingsDep
) -> HTMLResponse:
    try:
        context = await _app_context(request, viewer, app_id, settings)
    except ApiRefusal as refusal:
        return refusal_page(request, viewer, refusal)
    return page(request, viewer, "app.html", nav="matrix", **context)


@router.get("/apps/{app_id}/live", response_class=HTMLResponse)
async def app_live(
    request: Request, app_id: uuid.UUID, viewer: ViewerDep, settings: SettingsDep
) -> HTMLResponse:
    """The app page's changing parts alone (environments, deployments, promotions)."""
    try:
        context = await _app_context(request, viewer, app_id, settings, live_only=True)
    except ApiRefusal as refusal:
        return refusal_page(request, viewer, refusal)
    return page(request, viewer, "_app_live.html", **context)


async def _app_context(
    request: Request,
    viewer: Viewer,
    app_id: uuid.UUID,
    settings: Settings,
    *,
    live_only: bool = False,
) -> dict[str, Any]:
    async with calls(request, viewer) as api:
        app, environments, deployments, releases, promotions = await asyncio.gather(
            api.get(f"/apps/{app_id}"),
            api.get(f"/apps/{app_id}/environments"),
            api.get(f"/apps/{app_id}/deployments", limit=HISTORY),
            api.get(f"/apps/{app_id}/releases", limit=HISTORY),
            api.get(f"/apps/{app_id}/promotions", limit=HISTORY),
        )
        context: dict[str, Any] = {
            "app": app,
            "environments": environments,
            "deployments": deployments["items"],
            "releases": releases["items"],
            "promotions": promotions["items"],
            "promotion_url": {
                p["id"]: workflow_url(settings, p["workflow_id"]) for p in promotions["items"]
            },
            "versions": {r["id"]: r["version"] for r in releases["items"]},
            "previous": _previous_releases(environments, deployments["items"], releases["items"]),
        }
        if live_only:
            return context
        first = environments[0]["name"] if environments else None
        windows, configs = {}, {}
        for environment in environments:
            name = environment["name"]
            listed, configs[name] = await asyncio.gather(
                api.get(f"/apps/{app_id}/environments/{name}/freeze-windows", limit=100),
                api.get(f"/apps/{app_id}/environments/{name}/config"),
            )
            windows[name] = listed["items"]
        chosen = request.query_params.get("environment") or first
        diagnosis = runtime_logs = None
        cluster_error: str | None = None
        if chosen:
            try:
                diagnosis, runtime_logs = await asyncio.gather(
                    api.get(f"/apps/{app_id}/diagnosis", environment=chosen),
                    api.get(f"/apps/{app_id}/logs", environment=chosen, limit=LOG_TAIL),
                )
            except ApiRefusal as refusal:
                cluster_error = refusal.detail
    context.update(
        windows=windows,
        configs=configs,
        chosen=chosen,
        diagnosis=diagnosis,
        runtime_lines=runtime_logs["lines"] if runtime_logs else [],
        cluster_error=cluster_error,
        app_workflow_url=workflow_url(settings, f"deploy:{app_id}:{first}") if first else None,
        promote_targets=[e["name"] for e in environments[1:]],
    )
    return context


def _previous_releases(
    environments: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    releases: list[dict[str, Any]],
) -> dict[str, list[int]]:
    """Per environment, the versions that ran there before (newest first): what a rollback can
    put back, as far as the recent history shows."""
    versions = {r["id"]: r["version"] for r in releases}
    previous: dict[str, list[int]] = {}
    for environment in environments:
        seen: list[int] = []
        for deployment in deployments:
            version = versions.get(deployment["release_id"])
            if (
                deployment["environment"] == environment["name"]
                and deployment["status"] == "succeeded"
                and version is not None
                and version != environment["current_version"]
                and version not in seen
            ):
                seen.append(version)
        previous[environment["name"]] = seen
    return previous


# -- approvals and promotions ----------------------------------------------------------------


@router.get("/approvals", response_class=HTMLResponse)
async def approvals(request: Request, viewer: ViewerDep) -> HTMLResponse:
    try:
        async with calls(request, viewer) as api:
            waiting = await api.get(f"/tenants/{viewer.tenant_slug}/pending-approvals")
            apps = {}
            for promotion in waiting["items"]:
                app_id = promotion["app_id"]
                if app_id not in apps:
                    apps[app_id] = await api.get(f"/apps/{app_id}")
    except ApiRefusal as refusal:
        return refusal_page(request, viewer, refusal)
    return page(
        request, viewer, "approvals.html", nav="approvals", promotions=waiting["items"], apps=apps
    )


@router.get("/apps/{app_id}/promotions/{promotion_id}", response_class=HTMLResponse)
async def promotion_page(
    request: Request,
    app_id: uuid.UUID,
    promotion_id: uuid.UUID,
    viewer: ViewerDep,
    settings: SettingsDep,
) -> HTMLResponse:
    try:
        async with calls(request, viewer) as api:
            app, promotion = await asyncio.gather(
                api.get(f"/apps/{app_id}"),
                api.get(f"/apps/{app_id}/promotions/{promotion_id}"),
            )
            environment = await api.get(f"/apps/{app_id}/environments/{promotion['environment']}")
            evidence = await api.get_or_none(f"/apps/{app_id}/promotions/{promotion_id}/evidence")
    except ApiRefusal as refusal:
        return refusal_page(request, viewer, refusal)
    approver_scope = environment["approval_policy"]["approver_scope"]
    return page(
        request,
        viewer,
        "promotion.html",
        nav="approvals",
        app=app,
        promotion=promotion,
        environment=environment,
        evidence=evidence,
        may_approve=viewer.may(approver_scope) and promotion["status"] == "pending_approval",
        run_url=workflow_url(settings, promotion["workflow_id"]),
    )


@router.get("/apps/{app_id}/promotions/{promotion_id}/evidence")
async def evidence_download(
    request: Request, app_id: uuid.UUID, promotion_id: uuid.UUID, viewer: ViewerDep
) -> Response:
    try:
        async with calls(request, viewer) as api:
            answer = await api.get_raw(f"/apps/{app_id}/promotions/{promotion_id}/evidence")
    except ApiRefusal as refusal:
        return refusal_page(request, viewer, refusal)
    return Response(
        answer.content,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="promotion-{promotion_id}.json"'},
    )
