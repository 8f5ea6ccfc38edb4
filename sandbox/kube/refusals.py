"""Requests the fake API server refuses on the test's say, as a real one whose RBAC forbids
them would: the next matching requests get a Kubernetes `Status` failure instead of an answer."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 422: "Invalid"}


@dataclass
class Refusal:
    method: str
    path_regex: re.Pattern[str]
    status: int
    times: int


class Refusals:
    def __init__(self) -> None:
        self._armed: list[Refusal] = []
        self._lock = threading.Lock()

    def refuse_next(self, method: str, path_regex: str, status: int = 403, times: int = 1) -> None:
        with self._lock:
            self._armed.append(Refusal(method.upper(), re.compile(path_regex), status, times))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def refusing(scope: Scope, receive: Receive, send: Send) -> None:
            refusal = self._take(scope) if scope["type"] == "http" else None
            if refusal is None:
                await app(scope, receive, send)
                return
            reason = REASONS.get(refusal.status, "Forbidden")
            body = json.dumps(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"{scope['method']} {scope['path']} is refused ({reason})",
                    "reason": reason,
                    "code": refusal.status,
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": refusal.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        return refusing

    def _take(self, scope: Scope) -> Refusal | None:
        with self._lock:
            for refusal in self._armed:
                if refusal.method in ("*", scope["method"]) and refusal.path_regex.search(
                    scope["path"]
                ):
                    refusal.times -= 1
                    if refusal.times <= 0:
                        self._armed.remove(refusal)
                    return refusal
        return None
