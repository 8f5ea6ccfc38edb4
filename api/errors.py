"""Errors as RFC 9457 problem documents with a stable `code` and the request id."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Scope, Send

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger("shipyard.api")

CODES_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """Raised anywhere in a request to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers
        # Fields a client acts on beyond the detail text (e.g. the allowed actions).
        self.extra = extra


def not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"{what} was not found")


def problem(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        **(extra or {}),
        "type": f"https://shipyard.dev/problems/{code.lower().replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": getattr(request.state, "request_id", ""),
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = errors
    # Set here too: a 500 is answered outside the middleware that adds it to other responses.
    headers = {**(headers or {}), "X-Request-ID": body["request_id"]}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        # "body.name" reads better than ["body", "name"]; the source stays visible for headers.
        errors.append({"field": ".".join(location), "message": str(error.get("msg", ""))})
    return errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return problem(
            request,
            exc.status,
            exc.code,
            exc.detail,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path}"
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        code = CODES_BY_STATUS.get(exc.status_code, "ERROR")
        headers = dict(exc.headers) if exc.headers else None
        return problem(request, exc.status_code, code, detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(
            request,
            422,
            "VALIDATION_FAILED",
            "the request is not valid; see errors",
            errors=_field_errors(exc),
        )

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def _database_busy(request: Request, exc: sqlalchemy.exc.TimeoutError) -> JSONResponse:
        # Every connection of the pool stayed in use for the pool's whole timeout: overload,
        # not a fault of the request, which can be sent again.
        return problem(
            request,
            503,
            "DATABASE_BUSY",
            "every database connection of this API process is in use; try again",
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled error",
            path=request.url.path,
            request_id=getattr(request.state, "request_id", ""),
            error_type=type(exc).__name__,
            exc_info=exc,
        )
        return problem(
            request,
            500,
            "INTERNAL_ERROR",
            "an unexpected error occurred; quote the request id when reporting it",
        )


async def refuse(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
) -> None:
    """Answer with a problem document from an ASGI middleware, before any route is reached."""
    response = problem(Request(scope), status, code, detail, headers=headers)
    await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
