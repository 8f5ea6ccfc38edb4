"""Checks what the fake GitHub answers against GitHub's own OpenAPI description.

The description is the npm package `@octokit/openapi` (`generated/api.github.com.json`),
installed by `make test` into `.venv/octokit`. It is loaded once per session with openapi-core,
skipping the spec self-check (0.5 s instead of 15 s). `ResponseRecorder.hook` is an httpx
response event hook: a test client is built with it through githubkit's normal configuration,
and every response it receives, including the token exchange inside App auth, is validated.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.templating.paths.exceptions import PathNotFound
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

OCTOKIT_OPENAPI_VERSION = "23.0.2"
SPEC_PATH = (
    Path(__file__).resolve().parents[1]
    / ".venv/octokit/node_modules/@octokit/openapi/generated/api.github.com.json"
)
INSTALL_COMMAND = (
    "npm install --no-save --no-audit --no-fund --prefix .venv/octokit "
    f"@octokit/openapi@{OCTOKIT_OPENAPI_VERSION}"
)
# The servers entry of the description; requests are matched on their path only.
GITHUB_HOST = "https://api.github.com"

# Known false positives, each (method, path template, status, error location, message regex).
# Every schema error of a response must match one, or the response fails.
ALLOWLIST: tuple[tuple[str, str, int, str, str], ...] = (
    # The description declares an installation's account as allOf [Simple User, Enterprise],
    # which no account satisfies (GitHub's own example fails it): only the enterprise-only
    # required properties are excused, so a missing user field still fails.
    (
        "get",
        "/app/installations",
        200,
        r"^\d+\.account$",
        r"^'(name|slug|created_at|updated_at)' is a required property$",
    ),
    # `nullable: true` beside `oneOf` is not applied to the alternatives by the validator, so
    # the null GitHub sends for a commit author with no GitHub account is refused.
    (
        "get",
        "/repos/{owner}/{repo}/branches/{branch}",
        200,
        r"^commit\.(author|committer)$",
        r"^None (for not nullable|is not of type 'object')$",
    ),
)


@functools.cache
def _spec() -> dict[str, Any]:
    if not SPEC_PATH.exists():
        raise RuntimeError(
            f"GitHub's OpenAPI description is missing at {SPEC_PATH}. "
            f"Run `make test` (which installs it) or: {INSTALL_COMMAND}"
        )
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_bytes())
    return spec


def load_spec() -> OpenAPI:
    """The description as an openapi-core app; fails (never skips) when it is missing."""
    return OpenAPI.from_dict(_spec(), config=Config(spec_validator_cls=None))


def check_webhook(event: str, payload: Any) -> list[str]:
    """What is wrong with a webhook payload by the description's `webhook-<event>` schema."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:github", DRAFT4.create_resource(_spec())
    )
    validator = OAS30Validator(
        {"$ref": f"urn:github#/components/schemas/webhook-{event}"}, registry=registry
    )
    found: list[str] = []

    def leaves(error: Any) -> None:
        for sub in error.context or []:
            leaves(sub)
        if not error.context:
            found.append(f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message[:300]}")

    for error in validator.iter_errors(payload):
        leaves(error)
    return found


@dataclass
class ResponseRecorder:
    """Validates each response it sees; keeps what failed so a fixture can report it."""

    openapi: OpenAPI
    checked: int = 0
    failures: list[str] = field(default_factory=list)

    async def hook(self, response: httpx.Response) -> None:
        await response.aread()
        self.validate(response)

    def validate(self, response: httpx.Response) -> None:
        request = response.request
        if request.url.path.startswith("/_sandbox/"):
            return
        problem = check_response(
            self.openapi,
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params),
            status=response.status_code,
            headers=dict(response.headers),
            body=response.content,
        )
        self.checked += 1
        if problem:
            self.failures.append(f"{request.method} {request.url.path} -> {problem}")


def check_response(
    openapi: OpenAPI,
    *,
    method: str,
    path: str,
    query: dict[str, str],
    status: int,
    headers: dict[str, str],
    body: bytes,
) -> str | None:
    """None if the response matches the description, else what is wrong with it."""
    content_type = headers.get("content-type", "application/json").split(";")[0]
    request = MockRequest(GITHUB_HOST, method, path, args=query)
    response = MockResponse(body, status_code=status, headers=headers, content_type=content_type)
    try:
        openapi.validate_response(request, response)
    except PathNotFound:
        return "path is not in GitHub's API description"
    except ResponseNotFound:
        # GitHub documents only some error statuses per operation; all use the basic-error body.
        return None if status >= 400 and _is_basic_error(body) else f"undocumented status {status}"
    except Exception as exc:
        errors = _schema_errors(exc)
        if not errors:
            return f"{status}: {type(exc).__name__}: {exc}"
        unexcused = [
            f"{where}: {message}"
            for where, message in errors
            if not any(
                a_method == method.lower()
                and a_status == status
                and _matches(template, path)
                and re.search(location, where)
                and re.search(pattern, message)
                for a_method, template, a_status, location, pattern in ALLOWLIST
            )
        ]
        return f"{status}: " + "; ".join(unexcused) if unexcused else None
    return None


def _is_basic_error(body: bytes) -> bool:
    try:
        data: Any = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(data, dict)
        and isinstance(data.get("message"), str)
        and isinstance(data.get("documentation_url"), str)
    )


def _schema_errors(exc: BaseException) -> list[tuple[str, str]]:
    """(location, message) of every leaf schema error under an openapi-core exception."""
    found: list[tuple[str, str]] = []

    def leaves(error: Any) -> None:
        if error.context:
            for sub in error.context:
                leaves(sub)
        else:
            found.append((".".join(str(p) for p in error.absolute_path), error.message[:300]))

    cause: BaseException | None = exc
    while cause is not None:
        for error in getattr(cause, "schema_errors", None) or []:
            leaves(error)
        cause = cause.__cause__
    return found


def _matches(template: str, path: str) -> bool:
    want = template.strip("/").split("/")
    have = path.strip("/").split("/")
    if len(have) < len(want):
        return False
    if len(have) != len(want) and not want[-1].startswith("{"):
        return False
    return all(w.startswith("{") or w == h for w, h in zip(want, have, strict=False))
