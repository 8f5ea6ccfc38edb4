"""The console's forms: sign-in and sign-out, and each action the API offers (promote, approve,
reject, override a freeze, roll back, cancel a deployment, pause and resume). Every POST must
carry its session's CSRF token; the action itself is the API's, called as the session."""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import authenticate_credential
from api.console.calls import ApiRefusal
from api.console.pages import NOTICES, calls, page, refusal_page
from api.console.session import (
    COOKIE,
    CSRF_FIELD,
    SIGN_IN_COOKIE,
    Viewer,
    ViewerDep,
    csrf_matches,
    resolve_viewer,
)
from api.deps import SessionDep, SettingsDep
from api.errors import ApiError
from api.failed_auth import FailedAuthGuard, client_address
from core import console_sessions
from core.models import ApiKey, ConsoleSession

router = APIRouter(prefix="/console", include_in_schema=False)

# A form is small; more is refused before it is read.
MAX_FORM_BYTES = 16 * 1024


async def form_of(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", "the form is larger than the console accepts")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[-1] for name, values in fields.items()}


def console_path(target: str | None, fallback: str) -> str:
    """`target` if it is a page of this console, else `fallback`: never another site."""
    if not target or not target.startswith("/console") or "\\" in target or "//" in target:
        return fallback
    return target


def back_to(form: dict[str, str], fallback: str, notice: str) -> RedirectResponse:
    """To the page the form came from (only ever a console page), with what was done: one of
    NOTICES, by name, so a link cannot make a page say what it likes."""
    assert notice in NOTICES, notice
    target = console_path(form.get("next"), fallback)
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}{urlencode({'notice': notice})}", 303)


def forged(request: Request, viewer: Viewer | None) -> HTMLResponse:
    refusal = ApiRefusal(
        403, "CSRF_FAILED", "this form was not sent by this console session: reload and retry"
    )
    return refusal_page(request, viewer, refusal)


def secure_cookies(request: Request) -> bool:
    """Secure cookies when the browser reaches the console over https: asked over https, or
    served behind a proxy that ends TLS at the public address."""
    settings = request.app.state.settings
    return request.url.scheme == "https" or settings.public_url.startswith("https://")


# -- sign-in and sign-out --------------------------------------------------------------------


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, db: SessionDep) -> HTMLResponse:
    if resolve_viewer(db, request.cookies.get(COOKIE)) is not None:
        return RedirectResponse("/console", 303)  # type: ignore[return-value]
    token = secrets.token_hex(32)
    after = console_path(request.query_params.get("next"), "/console")
    response = page(request, None, "sign_in.html", csrf_token=token, error=None, after=after)
    _set_sign_in_cookie(request, response, token)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    form = await form_of(request)
    after = console_path(form.get("next"), "/console")
    if not csrf_matches(request.cookies.get(SIGN_IN_COOKIE, ""), form.get(CSRF_FIELD)):
        return _sign_in_again(request, "the sign-in form expired: try again", 403, after)
    credential = form.get("api_key", "").strip()
    if not credential:
        return _sign_in_again(request, "paste an API key (shp_...) to sign in", 422, after)
    guard: FailedAuthGuard = request.app.state.failed_auth
    address = client_address(request)
    try:
        guard.refuse_if_limited(address, credential)
        if console_sessions.is_session_token(credential):
            raise ApiError(401, "UNAUTHENTICATED", "sign in with an API key (shp_...)")
        principal = authenticate_credential(credential, db, settings)
    except ApiError as exc:
        if exc.status == 401:
            guard.failed(address, credential)
        return _sign_in_again(request, exc.detail, exc.status, after)
    if principal.is_platform_admin or principal.key_id is None:
        return _sign_in_again(
            request,
            "the console is a tenant's: sign in with a tenant API key, not the admin token",
            403,
            after,
        )
    key = db.get(ApiKey, principal.key_id)
    assert key is not None
    lifetime = timedelta(hours=settings.console_session_hours)
    started = console_sessions.start(db, key, lifetime)
    response = RedirectResponse(after, 303)
    response.set_cookie(
        COOKIE,
        started.token,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return response


def _sign_in_again(
    request: Request, error: str, status_code: int, after: str = "/console"
) -> HTMLResponse:
    token = secrets.token_hex(32)
    response = page(
        request,
        None,
        "sign_in.html",
        status_code=status_code,
        csrf_token=token,
        error=error,
        after=after,
    )
    _set_sign_in_cookie(request, response, token)
    return response


def _set_sign_in_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=3600,
        path="/console",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


@router.post("/sign-out")
async def sign_out(request: Request, viewer: ViewerDep, db: SessionDep) -> Response:
    form = await form_of(request)
    if not csrf_matches(viewer.csrf_token, form.get(CSRF_FIELD)):
        return forged(request, viewer)
    row = db.get(ConsoleSession, viewer.session_id)
    if row is not None:
        console_sessions.end(db, row)
    response = RedirectResponse("/console/sign-in", 303)
    response.delete_cookie(COOKIE, path="/")
    return response


# -- actions ---------------------------------------------------------------------------------


async def _act(
    request: Request,
    viewer: Viewer,
    path: str,
    body: dict[str, Any],
    fallback: str,
    notice: str,
    form: dict[str, str],
) -> Response:
    if not csrf_matches(viewer.csrf_token, form.get(CSRF_FIELD)):
        return forged(request, viewer)
    try:
        async with calls(request, viewer) as api:
            answer = await api.post(path, body)
    except ApiRefusal as refusal:
        return refusal_page(request, viewer, refusal)
    if path.endswith("/promotions") and isinstance(answer, dict) and "id" in answer:
        fallback = f"/console/apps/{answer['app_id']}/promotions/{answer['id']}"
        form = {**form, "next": fallback}
    return back_to(form, fallback, notice)


@router.post("/apps/{app_id}/promotions")
async def promote(request: Request, app_id: uuid.UUID, viewer: ViewerDep) -> Response:
    form = await form_of(request)
    body = {
        "version": form.get("version", ""),
        "environment": form.get("environment", ""),
        "note": form.get("note", ""),
    }
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/promotions",
        body,
        f"/console/apps/{app_id}",
        "promotion-requested",
        {**form, "next": ""},
    )


@router.post("/apps/{app_id}/promotions/{promotion_id}/approve")
async def approve(
    request: Request, app_id: uuid.UUID, promotion_id: uuid.UUID, viewer: ViewerDep
) -> Response:
    form = await form_of(request)
    body = {"comment": form.get("comment", ""), "release_digest": form.get("release_digest", "")}
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/promotions/{promotion_id}/approve",
        body,
        f"/console/apps/{app_id}/promotions/{promotion_id}",
        "approved",
        form,
    )


@router.post("/apps/{app_id}/promotions/{promotion_id}/reject")
async def reject(
    request: Request, app_id: uuid.UUID, promotion_id: uuid.UUID, viewer: ViewerDep
) -> Response:
    form = await form_of(request)
    comment = form.get("comment", "").strip()
    if not comment:
        if not csrf_matches(viewer.csrf_token, form.get(CSRF_FIELD)):
            return forged(request, viewer)
        return refusal_page(
            request,
            viewer,
            ApiRefusal(
                422,
                "VALIDATION_FAILED",
                "a rejection needs a comment saying why",
                errors=[{"field": "comment", "message": "required"}],
            ),
        )
    body: dict[str, Any] = {"comment": comment}
    if form.get("release_digest"):
        body["release_digest"] = form["release_digest"]
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/promotions/{promotion_id}/reject",
        body,
        f"/console/apps/{app_id}/promotions/{promotion_id}",
        "rejected",
        form,
    )


@router.post("/apps/{app_id}/promotions/{promotion_id}/override-freeze")
async def override_freeze(
    request: Request, app_id: uuid.UUID, promotion_id: uuid.UUID, viewer: ViewerDep
) -> Response:
    form = await form_of(request)
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/promotions/{promotion_id}/override-freeze",
        {"reason": form.get("reason", "")},
        f"/console/apps/{app_id}/promotions/{promotion_id}",
        "freeze-overridden",
        form,
    )


@router.post("/apps/{app_id}/promotions/{promotion_id}/cancel")
async def cancel_promotion(
    request: Request, app_id: uuid.UUID, promotion_id: uuid.UUID, viewer: ViewerDep
) -> Response:
    form = await form_of(request)
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/promotions/{promotion_id}/cancel",
        {},
        f"/console/apps/{app_id}/promotions/{promotion_id}",
        "promotion-cancelled",
        form,
    )


@router.post("/apps/{app_id}/environments/{env}/rollback")
async def rollback(request: Request, app_id: uuid.UUID, env: str, viewer: ViewerDep) -> Response:
    form = await form_of(request)
    body: dict[str, Any] = {"reason": form.get("reason", "")}
    if form.get("to_version"):
        body["to_version"] = form["to_version"]
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/environments/{env}/rollback",
        body,
        f"/console/apps/{app_id}",
        "rollback-started",
        form,
    )


@router.post("/apps/{app_id}/deployments/{deployment_id}/cancel")
async def cancel_deployment(
    request: Request, app_id: uuid.UUID, deployment_id: uuid.UUID, viewer: ViewerDep
) -> Response:
    form = await form_of(request)
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/deployments/{deployment_id}/cancel",
        {},
        f"/console/apps/{app_id}",
        "deployment-cancelled",
        form,
    )


@router.post("/apps/{app_id}/pause")
async def pause(request: Request, app_id: uuid.UUID, viewer: ViewerDep) -> Response:
    form = await form_of(request)
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/pause",
        {"reason": form.get("reason", "")},
        f"/console/apps/{app_id}",
        "paused",
        form,
    )


@router.post("/apps/{app_id}/resume")
async def resume(request: Request, app_id: uuid.UUID, viewer: ViewerDep) -> Response:
    form = await form_of(request)
    return await _act(
        request,
        viewer,
        f"/apps/{app_id}/resume",
        {},
        f"/console/apps/{app_id}",
        "resumed",
        form,
    )
