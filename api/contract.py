"""The OpenAPI contract of errors: every status an operation can answer is documented, with the
problem+json schema (RFC 9457) that every error answer has, so generated clients and the
fuzzer in the test suite hold the API to it.

Statuses every authenticated operation can answer are added to all of them; the ones only some
operations answer (409, 412, 503, ...) are declared where the route is, with `problems(...)`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field

from api.errors import PROBLEM_JSON
from api.routers import API_PREFIX


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
# request (422), the rate limit (429), and the unexpected (500).
EVERY_OPERATION = (401, 403, 404, 422, 429, 500)


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
