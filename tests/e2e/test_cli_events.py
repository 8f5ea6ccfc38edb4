"""`shipyard events` as a user runs it: the tenant's events followed live, one JSON object per
line, filtered by kind, resumed after a given id; an app's events alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from core import events
from tests.e2e.test_cli_watch import start
from tests.fixtures.stack import Stack
from tests.integration.api.test_event_streams import publish
from tests.integration.api.test_events import make_app


async def lines(process: asyncio.subprocess.Process, n: int) -> list[dict[str, Any]]:
    assert process.stdout is not None
    read: list[dict[str, Any]] = []
    try:
        while len(read) < n:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, "the CLI stopped"
            read.append(json.loads(line))
    finally:
        process.terminate()
        await process.wait()
    return read


async def test_events_follows_the_tenant_live_and_filters_by_kind(stack_without_worker: Stack):
    stack = stack_without_worker
    url, key = stack.settings.public_url, stack.tenant.key
    first, second = make_app(stack), make_app(stack)
    before = publish(stack, first, events.CONFIG_CHANGED, environment="dev")
    following = await start(
        url, key, "events", "--tenant", stack.tenant.slug, "--since", str(before),
        "--kind", "approval.*", "--kind", events.ROLLBACK_FINISHED, "-o", "json",
    )  # fmt: skip
    written = [
        publish(stack, first, events.DEPLOYMENT_STARTED, environment="dev"),
        publish(stack, second, events.APPROVAL_REQUESTED, environment="prod", version=2),
        publish(stack, first, events.ROLLBACK_FINISHED, environment="dev", status="succeeded"),
    ]
    seen = await lines(following, 2)
    assert [item["id"] for item in seen] == [str(written[1]), str(written[2])]
    assert [item["event"] for item in seen] == [events.APPROVAL_REQUESTED, events.ROLLBACK_FINISHED]
    assert seen[0]["data"]["app_id"] == second

    one_app = await start(url, key, "events", "--app", second, "-o", "json")
    assert [item["id"] for item in await lines(one_app, 1)] == [str(written[1])]
