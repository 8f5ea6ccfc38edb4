"""The console's way to read and act: it calls the REST API in process, with its session's
token, through the whole middleware stack. So it shows and does nothing the API would not:
the same scopes, tenant isolation, validation, rate limits, audit and errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from api.routers import API_PREFIX


@dataclass
class ApiRefusal(Exception):
    """The API said no: its status, and its problem document's words."""

    status: int
    code: str
    detail: str
    errors: list[dict[str, str]] = field(default_factory=list)
    hint: str | None = None
    request_id: str | None = None

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiRefusal:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(
            status=response.status_code,
            code=str(body.get("code") or "ERROR"),
            detail=str(body.get("detail") or response.reason_phrase),
            errors=list(body.get("errors") or []),
            hint=body.get("hint"),
            request_id=body.get("request_id") or response.headers.get("x-request-id"),
        )


class ApiCalls:
    """One page's calls to the API, as the signed-in session."""

    def __init__(self, app: FastAPI, token: str, request_id: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if request_id:
            headers["X-Request-ID"] = request_id
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=f"http://console{API_PREFIX}",
            headers=headers,
            timeout=30,
        )

    async def __aenter__(self) -> ApiCalls:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def get(self, path: str, **params: Any) -> Any:
        query = {name: value for name, value in params.items() if value not in (None, "")}
        response = await self._client.get(path, params=query)
        return self._answer(response)

    async def get_or_none(self, path: str, **params: Any) -> Any:
        """A read the page can do without (a live read of the cluster that may be down)."""
        try:
            return await self.get(path, **params)
        except ApiRefusal:
            return None

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self._client.post(path, json=body if body is not None else {})
        return self._answer(response)

    async def get_raw(self, path: str) -> httpx.Response:
        response = await self._client.get(path)
        if response.status_code >= 400:
            raise ApiRefusal.from_response(response)
        return response

    @staticmethod
    def _answer(response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise ApiRefusal.from_response(response)
        if not response.content:
            return None
        return response.json()
