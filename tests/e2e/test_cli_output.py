"""`shipyard ... -o json|yaml` prints exactly what the API answers for the same resource, apps
are named by slug as well as by id, and a context saved by `shipyard login` is used when no key
is given."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from core.keys import parse_key
from tests.e2e.test_cli_watch import ROOT
from tests.fixtures.stack import Stack


async def run(
    *args: str,
    url: str | None,
    key: str | None,
    config: Path | None = None,
    tenant: str | None = None,
) -> tuple[int, str, str]:
    """The CLI in a child process, its stdout and stderr apart so stdout can be parsed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env["SHIPYARD_CONFIG"] = str(config or os.devnull)
    if url is not None:
        env["SHIPYARD_API_URL"] = url
    if tenant is not None:
        env["SHIPYARD_TENANT"] = tenant
    if key is not None:
        env["SHIPYARD_API_KEY"] = key
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, errors = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), errors.decode()


async def api_body(stack: Stack, path: str, *, paged: bool = False) -> Any:
    """The API's own answer; for a paged list every item, as one page."""
    if not paged:
        response = await stack.api.get(f"/api/v1{path}", headers=stack.tenant.headers)
        assert response.status_code == 200, response.text
        return response.json()
    items: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await stack.api.get(
            f"/api/v1{path}", params=params, headers=stack.tenant.headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return {"items": items, "total": page["total"], "next_cursor": None}


def last_use(keys: Any, key_id: str) -> datetime:
    (found,) = [item for item in keys["items"] if item["id"] == key_id]
    return datetime.fromisoformat(str(found["last_used_at"]))


def without_last_use(keys: Any, key_id: str) -> Any:
    return {
        **keys,
        "items": [
            {**item, "last_used_at": None} if item["id"] == key_id else item
            for item in keys["items"]
        ],
    }


async def test_json_and_yaml_output_is_the_apis_body_and_slugs_name_apps(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    app_id = done["app_id"]
    found = await api_body(stack, f"/apps/{app_id}")
    slug = found["slug"]
    deployment = done["deployment_id"]
    window = await stack.api.post(
        f"/api/v1/apps/{app_id}/environments/prod/freeze-windows",
        json={"kind": "recurring", "reason": "weekends", "cron": "0 0 * * 6",
              "duration_minutes": 2880, "timezone": "UTC"},
        headers=stack.tenant.headers,
    )  # fmt: skip
    assert window.status_code == 201, window.text

    # (command, the API path of the same resource, whether the API pages it)
    by_app = [
        (["apps", "show"], f"/apps/{app_id}", False),
        (["apps", "connection", "show"], f"/apps/{app_id}/git-connection", False),
        (["deployments", "list"], f"/apps/{app_id}/deployments", True),
        (["deployments", "show", deployment], f"/apps/{app_id}/deployments/{deployment}", False),
        (["releases", "list"], f"/apps/{app_id}/releases", True),
        (["releases", "show", "v1"], f"/apps/{app_id}/releases/1", False),
        (["promotions", "list"], f"/apps/{app_id}/promotions", True),
        (["environments", "list"], f"/apps/{app_id}/environments", False),
        (["environments", "show", "dev"], f"/apps/{app_id}/environments/dev", False),
        (["environments", "config", "show", "-e", "dev"],
         f"/apps/{app_id}/environments/dev/config", False),
        (["environments", "freeze-windows", "list", "-e", "prod"],
         f"/apps/{app_id}/environments/prod/freeze-windows", True),
        (["retention", "policies", "show"], f"/apps/{app_id}/retention-policies", False),
    ]  # fmt: skip
    for command, path, paged in by_app:
        expected = await api_body(stack, path, paged=paged)
        for ref in (app_id, slug, f"{tenant}/{slug}"):
            # A bare slug is looked up in SHIPYARD_TENANT (or the context's tenant).
            named = tenant if ref == slug else None
            code, out, errors = await run(
                *command, "--app", ref, "-o", "json", url=url, key=key, tenant=named
            )
            assert code == 0, (command, ref, out, errors)
            assert json.loads(out) == expected, (command, ref)
        code, out, errors = await run(
            *command, "--app", slug, "-o", "yaml", url=url, key=key, tenant=tenant
        )
        assert code == 0, (command, out, errors)
        assert yaml.safe_load(out) == json.loads(json.dumps(expected)), command
        # The tables people read name the same things.
        code, out, errors = await run(*command, "--app", slug, url=url, key=key, tenant=tenant)
        assert code == 0, (command, out, errors)

    by_tenant = [
        (["apps", "list"], f"/tenants/{tenant}/apps", True),
        (["installations", "list"], f"/tenants/{tenant}/github-installations", True),
        (["retention", "runs", "list"], f"/tenants/{tenant}/retention-runs", True),
        (["promotions", "pending"], f"/tenants/{tenant}/pending-approvals", False),
        (["bootstraps", "show", done["id"]], f"/tenants/{tenant}/app-bootstraps/{done['id']}",
         False),
        (["deployments", "feed", "--limit", "5"], f"/tenants/{tenant}/deployments?limit=5", False),
    ]  # fmt: skip
    for command, path, paged in by_tenant:
        expected = await api_body(stack, path, paged=paged)
        code, out, errors = await run(*command, "--tenant", tenant, "-o", "json", url=url, key=key)
        assert code == 0, (command, out, errors)
        assert json.loads(out) == expected, command
        code, out, errors = await run(*command, "--tenant", tenant, "-o", "yaml", url=url, key=key)
        assert code == 0 and yaml.safe_load(out) == expected, (command, out, errors)

    # Each read is a use of the calling key, which moves its last_used_at on (once a minute at
    # most): that one field may only move forward between the API's answer and the CLI's.
    caller = parse_key(key)
    assert caller is not None
    expected = await api_body(stack, f"/tenants/{tenant}/keys", paged=True)
    for output, parse in (("json", json.loads), ("yaml", yaml.safe_load)):
        code, out, errors = await run(
            "keys", "list", "--tenant", tenant, "-o", output, url=url, key=key
        )
        assert code == 0, (out, errors)
        printed = parse(out)
        assert without_last_use(printed, caller[0]) == without_last_use(expected, caller[0])
        assert last_use(printed, caller[0]) >= last_use(expected, caller[0]), output

    code, out, errors = await run("templates", "list", "-o", "json", url=url, key=key)
    assert code == 0 and json.loads(out) == await api_body(stack, "/templates", paged=True), errors
    code, out, errors = await run(
        "templates", "show", "static-site", "-o", "yaml", url=url, key=key
    )
    assert code == 0 and yaml.safe_load(out) == await api_body(stack, "/templates/static-site")
    code, out, errors = await run(
        "retention", "schedule", "show", "-t", tenant, "-o", "json", url=url, key=key
    )
    assert code == 0 and json.loads(out)["tenant"] == tenant, errors
    code, out, errors = await run("tenants", "show", tenant, "-o", "json", url=url, key=key)
    assert code == 0 and json.loads(out) == await api_body(stack, f"/tenants/{tenant}"), errors
    code, out, errors = await run(
        "audit", "list", "--tenant", tenant, "--limit", "5", "-o", "json", url=url, key=key
    )
    assert code == 0, errors
    assert (
        json.loads(out)["items"][0]["id"]
        == (await api_body(stack, f"/tenants/{tenant}/audit-events?limit=5"))["items"][0]["id"]
    )
    code, out, errors = await run(
        "deployments", "logs", deployment, "--app", f"{tenant}/{slug}", "-o", "json",
        url=url, key=key,
    )  # fmt: skip
    assert code == 0 and json.loads(out)["lines"], errors
    for command in (["diagnose"], ["logs"]):
        code, out, errors = await run(
            *command, "--app", slug, "-o", "json", url=url, key=key, tenant=tenant
        )
        assert code in (0, 1) and isinstance(json.loads(out), dict), (command, out, errors)

    code, out, errors = await run(
        "apps", "show", "--app", "no-such-app", url=url, key=key, tenant=tenant
    )
    assert code == 1 and "APP_NOT_FOUND" in errors and "Traceback" not in errors, errors
    code, out, errors = await run("apps", "list", "-t", tenant, "-o", "xml", url=url, key=key)
    assert code == 2, errors


async def test_tenant_templates_create_update_delete(stack: Stack):
    """`shipyard templates create|update|delete --tenant T` print what the API answers."""
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    template_id = "cli-" + os.urandom(4).hex()
    code, out, errors = await run(
        "templates", "create", template_id, "--tenant", tenant, "--name", "Ours",
        "--language", "html", "--source", f"github:{stack.github.template_full_name}",
        "--command", "httpd", "--command", "-f", "--port", "8080", "-o", "json",
        url=url, key=key,
    )  # fmt: skip
    assert code == 0, (out, errors)
    made = json.loads(out)
    assert (made["id"], made["command"], made["port"]) == (template_id, ["httpd", "-f"], 8080)
    assert made == await api_body(stack, f"/tenants/{tenant}/templates/{template_id}")
    code, out, errors = await run(
        "templates", "update", template_id, "--tenant", tenant, "--description", "Newer",
        "-o", "yaml", url=url, key=key,
    )  # fmt: skip
    assert code == 0, (out, errors)
    assert yaml.safe_load(out)["description"] == "Newer"
    code, out, errors = await run(
        "templates", "delete", template_id, "--tenant", tenant, url=url, key=key
    )
    assert code == 0 and f"Template {template_id} deleted" in out, errors
    code, out, errors = await run(
        "templates", "delete", template_id, "--tenant", tenant, url=url, key=key
    )
    assert code != 0 and "not found" in (out + errors), (out, errors)


async def test_login_saves_a_context_the_next_commands_use(stack: Stack, tmp_path: Path):
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    config = tmp_path / "shipyard" / "config.yaml"
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    slug = (await api_body(stack, f"/apps/{done['app_id']}"))["slug"]

    code, out, errors = await run(
        "login", "--url", url, "--api-key", "shp_nope_nope", "--name", "ci",
        url="http://127.0.0.1:9", key=None, config=config,
    )  # fmt: skip
    assert code == 1 and "does not accept this key" in errors, out + errors
    assert not config.exists()

    code, out, errors = await run(
        "login", "--url", url, "--api-key", key, "--name", "ci", "--tenant", tenant,
        url="http://127.0.0.1:9", key=None, config=config,
    )  # fmt: skip
    assert code == 0, out + errors
    assert key not in out + errors
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert yaml.safe_load(config.read_text())["current-context"] == "ci"

    # No key, no URL and no tenant in the environment: the context gives all three.
    env_url = None
    code, out, errors = await run(
        "apps", "list", "-o", "json", url=env_url, key=None, config=config
    )
    assert code == 0, errors
    assert slug in [item["slug"] for item in json.loads(out)["items"]]
    code, out, errors = await run(
        "apps", "show", "--app", slug, url=env_url, key=None, config=config
    )
    assert code == 0 and done["app_id"] in out, errors

    # Flags and environment still win over the context.
    code, out, errors = await run("apps", "list", url=env_url, key="shp_x_y", config=config)
    assert code == 1 and "UNAUTHENTICATED" in errors, errors

    code, out, errors = await run("context", "list", url=env_url, key=None, config=config)
    assert code == 0 and "ci" in out and url in out and key not in out, out
    code, out, errors = await run(
        "context", "show", "-o", "json", url=env_url, key=None, config=config
    )
    shown = json.loads(out)
    assert code == 0 and shown["name"] == "ci" and shown["tenant"] == tenant, out
    assert key not in out
    code, out, errors = await run("context", "use", "nope", url=env_url, key=None, config=config)
    assert code == 1 and "no context named 'nope'" in errors, errors
    code, out, errors = await run("context", "use", "ci", url=env_url, key=None, config=config)
    assert code == 0, errors

    code, out, errors = await run("version", url=env_url, key=None, config=config)
    assert code == 0 and "shipyard " in out and f"API      0.1.0 at {url}" in out, out
