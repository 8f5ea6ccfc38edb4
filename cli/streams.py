"""Following an event stream of the API (httpx-sse): reconnecting after a dropped connection
with `Last-Event-ID`, so nothing is missed and nothing is shown twice."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent

from cli.client import API, REQUEST_TIMEOUT, ApiClient, ApiUnreachable, problem_of
from cli.output import err

# The event stream sends a keep-alive every 15 s: a silence this long means the link is dead.
STREAM_READ_TIMEOUT = 45.0
RECONNECT_SECONDS = 1.0
# Consecutive failed reconnects before following gives up.
RECONNECT_ATTEMPTS = 30


def follow(
    api: ApiClient,
    path: str,
    on_event: Callable[[ServerSentEvent], int | None],
    *,
    last_id: str | None = None,
) -> int:
    """Hand each event of the stream at `path` to `on_event` until it returns an exit code."""
    failures = 0
    timeout = httpx.Timeout(REQUEST_TIMEOUT, read=STREAM_READ_TIMEOUT)
    url = f"{api.url}{API}{path}"
    with httpx.Client(timeout=timeout) as http:
        while True:
            headers = {**api.headers(), "Accept": "text/event-stream"}
            if last_id is not None:
                headers["Last-Event-ID"] = last_id
            try:
                with http.stream("GET", url, headers=headers) as response:
                    if not response.is_success:
                        response.read()
                        raise problem_of(response)
                    failures = 0
                    for event in EventSource(response).iter_sse():
                        last_id = event.id or last_id
                        code = on_event(event)
                        if code is not None:
                            return code
            except httpx.TransportError as exc:
                failures += 1
                if failures > RECONNECT_ATTEMPTS:
                    raise ApiUnreachable(f"stopped answering ({type(exc).__name__})") from None
            err.print("[yellow]connection to the event stream lost; reconnecting[/yellow]")
            time.sleep(RECONNECT_SECONDS)


def data_of(event: ServerSentEvent) -> dict[str, Any]:
    try:
        data = json.loads(event.data)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
