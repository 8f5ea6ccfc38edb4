"""An app's pipeline is chosen when it is made: a two-environment app promotes dev → prod with
its lifecycle skipping RC and QA; a pipeline that is not one is refused before anything is
made."""

from __future__ import annotations

import pytest

from tests.fixtures.stack import Stack
from tests.integration.workflows.test_promotions import Promoting
from tests.integration.workflows.test_push_to_deploy import App


async def test_a_two_environment_app_promotes_dev_to_prod_skipping_rc_and_qa(stack: Stack):
    stack.settings.rollout_timeout_seconds = 6
    done = await stack.bootstrap_and_wait(pipeline=["dev", "prod"])
    assert done["status"] == "done", done
    app_id, headers = done["app_id"], stack.tenant.headers
    shown = (await stack.api.get(f"/api/v1/apps/{app_id}", headers=headers)).json()
    assert shown["pipeline"] == ["dev", "prod"]
    assert [env["name"] for env in shown["environments"]] == ["dev", "prod"]
    promoting = Promoting(stack, App(stack, done))
    promoting.set_policy("prod", required_approvals=0, soak_seconds=1)

    release = (await stack.api.get(f"/api/v1/apps/{app_id}/releases/1", headers=headers)).json()
    assert release["lifecycle"] == "DEV"
    # No RC and no QA in this pipeline: a DEV release is declared stable (or rejected) here.
    assert sorted(release["allowed_actions"]) == ["declare-rejected", "declare-stable"]

    async def lifecycle(action: str, **body: str):
        return await stack.api.post(
            f"/api/v1/apps/{app_id}/releases/1/lifecycle",
            json={"action": action, **body},
            headers=headers,
        )

    refused = await lifecycle("declare-rc")
    assert refused.status_code == 409, refused.text
    assert (await lifecycle("declare-stable")).status_code == 200
    to_prod = await lifecycle("deploy-stable", environment="prod")
    assert to_prod.status_code == 202, to_prod.text
    ended = await promoting.wait(to_prod.json()["promotion"])
    assert ended["status"] == "succeeded", ended
    assert promoting.release(1).lifecycle == "PROD"
    assert promoting.running_in("prod") == promoting.release(1).image_ref


@pytest.mark.parametrize(
    ("pipeline", "said"),
    [
        ([], "1 to 6"),
        (["dev", "a", "b", "c", "d", "e", "f"], "1 to 6"),
        (["dev", "dev"], "twice"),
        (["dev", "Prod"], "'Prod'"),
        (["dev", "9lives"], "'9lives'"),
        (["dev", "x" * 31], "at most 30"),
    ],
)
async def test_a_pipeline_that_is_not_one_is_refused(stack: Stack, pipeline: list[str], said: str):
    body = stack.bootstrap_body(pipeline=pipeline)
    response = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/app-bootstraps",
        json=body,
        headers=stack.tenant.headers,
    )
    assert response.status_code == 422, response.text
    assert said in response.text
    apps = await stack.api.get(
        f"/api/v1/tenants/{stack.tenant.slug}/apps", headers=stack.tenant.headers
    )
    assert body["slug"] not in [app["slug"] for app in apps.json()["items"]]


async def test_an_import_checks_its_pipeline_the_same_way(stack: Stack):
    response = await stack.api.post(
        f"/api/v1/tenants/{stack.tenant.slug}/apps",
        json={
            "name": "Shop",
            "slug": "shop-pipeline",
            "repo_full_name": f"{stack.github.org}/shop",
            "pipeline": ["dev", "dev"],
        },
        headers=stack.tenant.headers,
    )
    assert response.status_code == 422, response.text
    assert "twice" in response.text
