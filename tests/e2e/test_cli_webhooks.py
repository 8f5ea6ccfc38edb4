"""`shipyard webhooks create|list|get|update|deliveries|redeliver|delete` against the stack:
each prints what the API answers (`-o json`), and the secret is never printed."""

from __future__ import annotations

import json
import uuid

from core import events
from tests.e2e.test_cli_output import api_body, run
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_webhook_deliveries import (
    SAMPLES,
    Hooks,
    announce,
    publish,
)
from tests.webhook_receiver import receiving

SECRET = "whsec_cli_" + uuid.uuid4().hex


async def test_webhooks_commands_print_what_the_api_answers(stack: Stack):
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    hooks = Hooks(stack)
    with receiving() as receiver:
        code, out, errors = await run(
            "webhooks", "create", "--tenant", tenant, "--url", receiver.url("/cli"),
            "--secret", SECRET, "--event", events.APP_DELETED, "-o", "json", url=url, key=key,
        )  # fmt: skip
        assert code == 0, (out, errors)
        made = json.loads(out)
        hooks.made.append(made["id"])
        assert SECRET not in out and made["has_secret"] is True
        base = f"/tenants/{tenant}/webhooks"
        assert made == await api_body(stack, f"{base}/{made['id']}")
        code, out, errors = await run(
            "webhooks", "list", "--tenant", tenant, "-o", "json", url=url, key=key
        )
        assert code == 0 and made["id"] in [i["id"] for i in json.loads(out)["items"]], errors
        code, out, errors = await run(
            "webhooks", "update", made["id"], "--tenant", tenant, "--description", "chat",
            "-o", "json", url=url, key=key,
        )  # fmt: skip
        assert code == 0 and json.loads(out)["description"] == "chat", (out, errors)

        await announce(stack, publish(stack, events.APP_DELETED, None, SAMPLES[events.APP_DELETED]))
        [delivery] = await hooks.ended(made["id"])
        code, out, errors = await run(
            "webhooks", "deliveries", made["id"], "--tenant", tenant, "-o", "json",
            url=url, key=key,
        )  # fmt: skip
        assert code == 0, (out, errors)
        assert json.loads(out)["items"] == await hooks.deliveries(made["id"])
        code, out, errors = await run(
            "webhooks", "redeliver", made["id"], delivery["id"], "--tenant", tenant,
            url=url, key=key,
        )  # fmt: skip
        assert code == 0 and f"webhook-delivery:{delivery['id']}:1" in out, (out, errors)
        await hooks.ended(made["id"])
        assert [r.delivery for r in receiver.at("/cli")] == [delivery["id"]] * 2

    code, out, errors = await run(
        "webhooks", "delete", made["id"], "--tenant", tenant, url=url, key=key
    )
    assert code == 0 and f"Webhook {made['id']} deleted" in out, errors
    code, out, errors = await run(
        "webhooks", "get", made["id"], "--tenant", tenant, url=url, key=key
    )
    assert code != 0 and "not found" in (out + errors), (out, errors)
