"""The commands that change things, each thin over its route: deploy and follow, cancel, an
environment's policy, configuration and secrets, freeze windows, keys, a tenant, retention, all
with the app named by slug."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import yaml

from tests.e2e.test_cli_output import api_body, run
from tests.fixtures.stack import Stack
from tests.integration.workflows.test_ci_releases import ci_build


async def test_deploy_environments_config_freeze_and_retention(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    app = f"{tenant}/{(await api_body(stack, '/apps/' + done['app_id']))['slug']}"

    async def shipyard(*args: str) -> tuple[int, str, str]:
        return await run(*args, url=url, key=key)

    # A manual deploy, followed to its end over the event stream.
    code, out, errors = await shipyard("deploy", "--app", app)
    assert code == 0, out + errors
    started = re.search(r"Deployment (\S+) to dev started", out)
    assert started and f"Deployment {started[1]} succeeded" in out, out
    code, out, errors = await shipyard("deployments", "show", started[1], "--app", app)
    assert code == 0 and re.search(r"Trigger\s+manual", out), out + errors
    code, out, errors = await shipyard("deployments", "create", "--app", app, "--no-wait")
    assert code == 0 and "follow it: shipyard deployments watch" in out, out + errors
    second = re.search(r"Deployment (\S+) to dev started", out)
    assert second, out
    code, out, errors = await shipyard("deployments", "cancel", second[1], "--app", app)
    # Cancelled in time, or it had already ended: said in words either way.
    assert code == 0 or "DEPLOYMENT_FINISHED" in errors, out + errors
    code, out, errors = await shipyard("deployments", "logs", started[1], "--app", app)
    assert code == 0 and out.strip(), out + errors

    # A release that is not promotable there says why, and exits 1; JSON is the API's answer.
    code, out, errors = await shipyard(
        "promotions", "preflight", "--app", app, "--version", "1", "--environment", "staging",
        "-o", "json",
    )  # fmt: skip
    assert code == 1, out + errors
    expected = await api_body(
        stack, f"/apps/{done['app_id']}/promotions/preflight?version=1&environment=staging"
    )
    assert json.loads(out) == expected and expected["reasons"], out

    code, out, errors = await shipyard("apps", "rename", "--app", app, "--name", "Renamed")
    assert code == 0 and "is now Renamed" in out, out + errors
    code, out, errors = await shipyard(
        "apps", "connection", "set-branch", "--app", app, "--branch", "release", "-o", "json"
    )
    assert code == 0 and json.loads(out)["branch"] == "release", out + errors

    # The approval policy and soak time of an environment.
    code, out, errors = await shipyard(
        "environments", "set", "prod", "--app", app, "--approvals", "2", "--soak-seconds", "5",
        "-o", "json",
    )  # fmt: skip
    assert code == 0, errors
    changed = json.loads(out)
    assert changed["approval_policy"]["required_approvals"] == 2 and changed["soak_seconds"] == 5
    code, out, errors = await shipyard("environments", "set", "prod", "--app", app)
    assert code == 1 and "nothing to change" in errors, errors

    # Variables and secrets: a secret's value is sent once and never printed.
    code, out, errors = await shipyard(
        "environments", "config", "set", "--app", app, "-e", "dev",
        "--var", "GREETING=hello", "--var", "MODE=fast", "--secret", "TOKEN=s3cr3t-value",
    )  # fmt: skip
    assert code == 0, out + errors
    assert "GREETING=hello" in out and "TOKEN (secret)" in out and "s3cr3t-value" not in out
    code, out, errors = await shipyard(
        "environments", "config", "set", "--app", app, "-e", "dev", "--unset", "MODE",
        "--unset", "TOKEN", "-o", "yaml",
    )  # fmt: skip
    assert code == 0, errors
    config = yaml.safe_load(out)
    assert config["variables"] == {"GREETING": "hello"} and config["secrets"] == [], config
    code, out, errors = await shipyard(
        "environments", "config", "set", "--app", app, "-e", "dev", "--var", "NO_EQUALS"
    )
    assert code == 1 and "NAME=VALUE" in errors, errors

    # A one-off freeze window, listed, then removed.
    now = datetime.now(UTC)
    code, out, errors = await shipyard(
        "environments", "freeze-windows", "create", "--app", app, "-e", "staging",
        "--reason", "launch", "--starts-at", now.isoformat(),
        "--ends-at", (now + timedelta(hours=1)).isoformat(), "-o", "json",
    )  # fmt: skip
    assert code == 0, errors
    window = json.loads(out)
    assert window["active_now"] is True, window
    code, out, errors = await shipyard(
        "environments", "freeze-windows", "list", "--app", app, "-e", "staging"
    )
    assert code == 0 and window["id"] in out and "yes" in out, out + errors
    code, out, errors = await shipyard(
        "environments", "freeze-windows", "delete", window["id"], "--app", app, "-e", "staging"
    )
    assert code == 0, errors
    code, out, errors = await shipyard(
        "environments", "freeze-windows", "list", "--app", app, "-e", "staging", "-o", "json"
    )
    assert code == 0 and json.loads(out)["items"] == [], out

    # Retention: an app's own policy, then a dry run followed to its end.
    code, out, errors = await shipyard(
        "retention", "policies", "set", "--app", app, "--policy", "DEV=3:30", "-o", "json"
    )
    assert code == 0, errors
    dev = next(item for item in json.loads(out)["policies"] if item["state"] == "DEV")
    assert dev == {"state": "DEV", "keep_last": 3, "max_age_days": 30, "source": "app"}
    code, out, errors = await shipyard(
        "retention", "runs", "start", "--tenant", tenant, "--app", app, "-o", "json"
    )
    assert code == 0, out + errors
    report = json.loads(out)
    assert report["status"] == "succeeded" and report["dry_run"] is True, report


async def test_keys_and_tenants(stack: Stack):
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    subject = f"ci-{uuid.uuid4().hex[:6]}"
    code, out, errors = await run(
        "keys", "create", "--tenant", tenant, "--subject", subject, "--scope", "apps:read",
        "-o", "json", url=url, key=key,
    )  # fmt: skip
    assert code == 0, errors
    made = json.loads(out)
    assert made["key"].startswith("shp_") and made["scopes"] == ["apps:read"], made
    code, out, errors = await run("apps", "list", "-t", tenant, url=url, key=made["key"])
    assert code == 0, errors
    code, out, errors = await run("keys", "revoke", made["id"], "-t", tenant, url=url, key=key)
    assert code == 0, errors
    code, out, errors = await run("apps", "list", "-t", tenant, url=url, key=made["key"])
    assert code == 1 and "UNAUTHENTICATED" in errors, errors

    admin = stack.admin_headers["Authorization"].removeprefix("Bearer ")
    slug = "cli" + uuid.uuid4().hex[:6]
    code, out, errors = await run(
        "tenants", "create", slug, "--name", "From the CLI", url=url, key=admin
    )
    assert code == 0 and f"Tenant {slug} created" in out and "shp_" in out, out + errors
    code, out, errors = await run("tenants", "show", slug, "-o", "json", url=url, key=admin)
    assert code == 0 and json.loads(out)["slug"] == slug, errors


async def test_a_ci_job_registers_its_image(stack: Stack):
    """What a CI job runs: a key that may only register releases (and read apps, to name
    the app by slug), the image by digest, followed until it runs in dev."""
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    url, tenant = stack.settings.public_url, stack.tenant.slug
    app = f"{tenant}/{(await api_body(stack, '/apps/' + done['app_id']))['slug']}"
    made = await stack.api.post(
        f"/api/v1/tenants/{tenant}/keys",
        json={"subject": "ci-" + uuid.uuid4().hex[:6], "role": "member",
              "scopes": ["releases:write", "apps:read"]},
        headers=stack.tenant.headers,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    ci_key = made.json()["key"]
    image = await ci_build(stack, "from the CLI")

    code, out, errors = await run(
        "releases", "register", "--app", app, "--image", image, "--commit", "ab" * 20,
        "--note", "pipeline 7", "--wait", url=url, key=ci_key,
    )  # fmt: skip
    assert code == 0, out + errors
    assert "Release v2 is " + image in out and "succeeded" in out, out
    code, out, errors = await run(
        "releases", "register", "--app", app, "--image", image, "-o", "json", url=url, key=ci_key
    )
    assert code == 0, out + errors
    again = json.loads(out)
    assert again["release"]["version"] == 2 and again["deployment"] is None


async def test_apps_delete_follows_the_deletion_to_its_end(stack: Stack):
    done = await stack.bootstrap_and_wait()
    assert done["status"] == "done", done
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    slug = (await api_body(stack, "/apps/" + done["app_id"]))["slug"]
    code, out, errors = await run(
        "apps", "delete", "--app", f"{tenant}/{slug}", "--delete-repository", url=url, key=key
    )
    assert code == 0, out + errors
    assert f"App {slug} is deleted; its slug is free again" in out, out
    shown = await api_body(stack, "/apps/" + done["app_id"])
    assert shown["status"] == "deleted"


async def test_environments_add_and_remove(stack: Stack):
    done = await stack.bootstrap_and_wait(pipeline=["dev", "prod"])
    assert done["status"] == "done", done
    url, key, tenant = stack.settings.public_url, stack.tenant.key, stack.tenant.slug
    app = f"{tenant}/{(await api_body(stack, '/apps/' + done['app_id']))['slug']}"
    code, out, errors = await run(
        "environments", "add", "uat", "--app", app, "--after", "dev", url=url, key=key
    )
    assert code == 0 and "uat added" in out, out + errors
    code, out, errors = await run("environments", "remove", "uat", "--app", app, url=url, key=key)
    assert code == 0 and "Removing uat" in out, out + errors
    await stack.run_closed(f"remove-environment:{done['app_id']}:uat")
    shown = await api_body(stack, "/apps/" + done["app_id"])
    assert shown["pipeline"] == ["dev", "prod"]
