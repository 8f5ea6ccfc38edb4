"""The OpenAPI description is one a client generator can use: named operations, each summed up
and described, each saying how it is authenticated and which problems and headers it answers
with. And a Python client generated from it, by the real generator, drives the API."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.errors import PROBLEM_JSON

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
# Answered without an API key: probes, metrics, GitHub's signed deliveries, and the page
# GitHub sends a browser back to after an install (its state is the credential).
UNAUTHENTICATED = {
    "getHealth",
    "getReadiness",
    "getMetrics",
    "receiveGithubWebhook",
    "recordGithubSetup",
}
# What every operation that takes an API key can answer, whatever it does.
EVERY_KEYED_OPERATION = {"401", "403", "404", "422", "429"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}
CAMEL_CASE = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)*$")


@pytest.fixture
async def schema(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    served: dict[str, Any] = response.json()
    return served


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_operation_has_a_camel_case_id_a_summary_and_a_description(
    schema: dict[str, Any],
) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids)), "operation ids repeat"
    assert "createBootstrap" in ids
    for method, path, operation in operations(schema):
        where = f"{method} {path}"
        assert CAMEL_CASE.match(operation["operationId"]), where
        assert operation.get("summary", "").strip(), where
        assert operation.get("description", "").strip(), where


def test_every_keyed_operation_says_how_to_present_the_key(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    bearer, header = schemes["BearerKey"], schemes["ApiKey"]
    assert (bearer["type"], bearer["scheme"]) == ("http", "bearer")
    assert (header["type"], header["in"], header["name"]) == ("apiKey", "header", "X-API-Key")
    for method, path, operation in operations(schema):
        security = operation.get("security")
        if operation["operationId"] in UNAUTHENTICATED:
            assert not security, f"{method} {path} needs no key"
        else:
            assert security is not None, f"{method} {path}"
            assert {name for requirement in security for name in requirement} == set(schemes)


def test_every_error_is_a_documented_problem(schema: dict[str, Any]) -> None:
    text = json.dumps(schema)
    assert "HTTPValidationError" not in text, "FastAPI's 422 body is never sent"
    for method, path, operation in operations(schema):
        where = f"{method} {path}"
        responses = operation["responses"]
        if operation.get("security"):
            assert EVERY_KEYED_OPERATION <= set(responses), where
        if "requestBody" in operation:
            assert "400" in responses and "422" in responses, where
        for status, answer in responses.items():
            if status.startswith(("4", "5")):
                assert answer["content"] == {PROBLEM_JSON: {"schema": PROBLEM}}, (where, status)


def test_every_success_has_a_typed_body(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        for status, answer in operation["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = answer.get("content")
            assert content, f"{method} {path} {status} has no documented body"
            for media_type, body in content.items():
                shape = body.get("schema", {})
                typed = (
                    "$ref" in shape
                    or "properties" in shape
                    or shape.get("type")
                    in (
                        "array",
                        "string",
                    )
                )
                assert typed, f"{method} {path} {status} {media_type}: {shape}"


def test_headers_and_streams_are_documented(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        for status, answer in operation["responses"].items():
            where = f"{method} {path} {status}"
            headers = answer.get("headers", {})
            assert "X-Request-ID" in headers, where
            if operation.get("security"):
                assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(
                    headers
                ), where
            if status == "429":
                assert "Retry-After" in headers, where
    stream = schema["paths"]["/api/v1/apps/{app_id}/events"]["get"]["responses"]["200"]
    assert list(stream["content"]) == ["text/event-stream"]


async def test_a_generated_client_makes_a_tenant_a_key_and_lists_templates(
    schema: dict[str, Any], api_app: FastAPI, admin_token: str, tmp_path: Path
) -> None:
    described = tmp_path / "openapi.json"
    described.write_text(json.dumps(schema))
    package = f"shipyard_client_{uuid.uuid4().hex[:8]}"
    # The generator formats what it writes with ruff, found on PATH beside this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    process = await asyncio.create_subprocess_exec(
        str(GENERATOR),
        "generate",
        "--path",
        str(described),
        "--meta",
        "none",
        "--output-path",
        str(tmp_path / package),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "PATH": path},
    )
    raw, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    output = raw.decode(errors="replace")
    assert process.returncode == 0, output
    assert "Warning" not in output and "Unable" not in output, output

    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module(f"{package}.client")
        models = importlib.import_module(f"{package}.models")
        create_tenant = importlib.import_module(f"{package}.api.tenants.create_tenant")
        create_key = importlib.import_module(f"{package}.api.api_keys.create_key")
        list_templates = importlib.import_module(f"{package}.api.templates.list_templates")

        def client(token: str) -> Any:
            return client_module.AuthenticatedClient(
                base_url="http://shipyard.test",
                token=token,
                httpx_args={"transport": httpx.ASGITransport(app=api_app)},
            )

        slug = "gen" + uuid.uuid4().hex[:8]
        async with client(admin_token) as admin:
            made = await create_tenant.asyncio_detailed(
                client=admin, body=models.TenantCreate(slug=slug, name="Generated client")
            )
            assert made.status_code == 201, made.content
            assert made.parsed.tenant.slug == slug
            admin_key = made.parsed.admin_key.key
            # A refusal comes back as the problem the description promises.
            refused = await list_templates.asyncio_detailed(client=admin)
            assert refused.status_code == 403
            assert isinstance(refused.parsed, models.Problem)
            assert refused.parsed.code == "FORBIDDEN"

        async with client(admin_key) as tenant_admin:
            key = await create_key.asyncio(
                slug,
                client=tenant_admin,
                body=models.KeyCreate(
                    subject="reader", role=models.KeyCreateRole.MEMBER, scopes=["apps:read"]
                ),
            )
            assert isinstance(key, models.KeyCreated), key
            assert key.scopes == ["apps:read"] and key.key.startswith("shp_")

        async with client(key.key) as reader:
            page = await list_templates.asyncio(client=reader, limit=100)
            assert isinstance(page, models.PageTemplatePublic), page
            assert page.total == len(page.items) > 0
            assert {template.id for template in page.items} >= {"python-fastapi"}
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.startswith(package)]:
            del sys.modules[name]
