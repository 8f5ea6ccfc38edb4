"""The OpenAPI contract: operation ids a client generator can use, and every status an
operation can answer documented with the problem+json schema (RFC 9457) that every error
answer has, and the headers every answer carries, so generated clients and the fuzzer in the
test suite hold the API to it.

Statuses every authenticated operation can answer are added to all of them; the ones only some
operations answer (409, 412, 503, ...) are declared where the route is, with `problems(...)`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from api.errors import PROBLEM_JSON
from api.routers import API_PREFIX

EVENT_STREAM = "text/event-stream"


class FieldProblem(BaseModel):
    field: str = Field(description="where: body.name, query.limit, path.app_id, header.x")
    message: str


class Problem(BaseModel):
    """An error answer: application/problem+json."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="stable, for programs: DEPLOYMENT_IN_PROGRESS, ...")
    request_id: str
    instance: str
    errors: list[FieldProblem] | None = Field(
        default=None, description="validation errors, one per field"
    )

    model_config = {"extra": "allow"}


# Authentication (401), scope (403), another tenant's or a missing resource (404), a malformed
# request (422), the rate limit (429), the unexpected (500), and a process serving as many
# requests as its database connections allow (503 DATABASE_BUSY, api/admission.py).
EVERY_OPERATION = (401, 403, 404, 422, 429, 500, 503)


def operation_id(route: APIRoute) -> str:
    """`create_bootstrap` (the route's name: its function's, or `name=`) is `createBootstrap`."""
    first, *rest = route.name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}}


REQUEST_ID_HEADERS = {
    "X-Request-ID": _header("the request's id (echoed if the request sent one), in every log line"),
}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header("requests this key may make per minute", "integer"),
    "X-RateLimit-Remaining": _header("requests left this minute", "integer"),
    "X-RateLimit-Reset": _header("seconds until the minute's count starts again", "integer"),
}
RETRY_AFTER_HEADERS = {"Retry-After": _header("seconds to wait before trying again", "integer")}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the problem statuses it answers beyond EVERY_OPERATION."""
    return {status: _problem_response(status) for status in statuses}


def _problem_response(status: int) -> dict[str, Any]:
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation under the API prefix gets the common problem statuses; FastAPI's own
    422 (application/json, its validation schema) is replaced by the problem that is sent."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = components["Problem"].pop("$defs", {})
    components.update(definitions)
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in EVERY_OPERATION:
                responses[str(status)] = _problem_response(status)
            if "requestBody" in operation:  # a body that is not even JSON
                responses["400"] = _problem_response(400)
            for status, answer in list(responses.items()):
                if status.startswith(("4", "5")):
                    answer["content"] = _problem_response(int(status))["content"]
    return schema


def document_headers(schema: dict[str, Any]) -> dict[str, Any]:
    """The headers answers carry: every answer its request id; an authenticated operation's
    answers the caller's rate limit; 429 and 503 when to try again. A stream's success is
    `text/event-stream`, nothing else."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            limited = bool(operation.get("security"))
            for status, answer in operation.get("responses", {}).items():
                headers = answer.setdefault("headers", {})
                headers.update(REQUEST_ID_HEADERS)
                if limited:
                    headers.update(RATE_LIMIT_HEADERS)
                if status in ("429", "503"):
                    headers.update(RETRY_AFTER_HEADERS)
                content = answer.get("content", {})
                if EVENT_STREAM in content:
                    answer["content"] = {EVENT_STREAM: {"schema": {"type": "string"}}}
    return schema
