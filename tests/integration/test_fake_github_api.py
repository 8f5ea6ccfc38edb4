"""The fake GitHub's own contract: App JWT rules, token scope, git auth, paging, persistence."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import jwt
import pytest
from openapi_core import OpenAPI

from clients import git
from clients.github import GitHubClient, NotFound
from core.source import SourceFile
from sandbox.github import APP_SLUG, FakeGitHub
from tests.github_openapi import ResponseRecorder, check_response


def app_jwt(fake: FakeGitHub, lifetime: int = 540, issuer: str | None = None) -> str:
    now = int(time.time()) - 30
    claims = {"iat": now, "exp": now + lifetime, "iss": issuer or str(fake.app_id)}
    return jwt.encode(claims, fake.private_key_pem, algorithm="RS256")


def api(fake: FakeGitHub) -> httpx.Client:
    return httpx.Client(base_url=fake.url, trust_env=False)


def test_app_jwt_rules(fake_github: FakeGitHub):
    with api(fake_github) as client:
        ok = client.get("/app", headers={"Authorization": f"Bearer {app_jwt(fake_github)}"})
        assert ok.status_code == 200
        assert ok.json()["id"] == fake_github.app_id

        too_long = app_jwt(fake_github, lifetime=11 * 60)
        answer = client.get("/app", headers={"Authorization": f"Bearer {too_long}"})
        assert answer.status_code == 401
        assert "too far in the future" in answer.json()["message"]
        assert answer.json()["documentation_url"]

        for bad in (app_jwt(fake_github, issuer="1"), "not-a-jwt"):
            answer = client.get("/app/installations", headers={"Authorization": f"Bearer {bad}"})
            assert answer.status_code == 401

        expired = app_jwt(fake_github, lifetime=-200)
        answer = client.get("/app", headers={"Authorization": f"Bearer {expired}"})
        assert answer.status_code == 401


def test_installation_token_reaches_only_its_account(fake_github: FakeGitHub):
    with api(fake_github) as client:
        app_auth = {"Authorization": f"Bearer {app_jwt(fake_github)}"}
        user_token = client.post(
            f"/app/installations/{fake_github.user_installation_id}/access_tokens",
            headers=app_auth,
        ).json()["token"]
        headers = {"Authorization": f"token {user_token}"}
        template = client.get(f"/repos/{fake_github.template_full_name}", headers=headers)
        assert template.status_code == 404
        assert template.json()["message"] == "Not Found"
        created = client.post(
            f"/orgs/{fake_github.org}/repos", headers=headers, json={"name": "sneaky"}
        )
        assert created.status_code == 403
        refused = client.post("/user/repos", headers=headers, json={"name": "mine"})
        assert refused.status_code == 403
        assert refused.json()["message"] == "Resource not accessible by integration"
        anonymous = client.get(f"/repos/{fake_github.template_full_name}")
        assert anonymous.status_code == 401


def test_git_needs_basic_auth(fake_github: FakeGitHub):
    url = f"/{fake_github.template_full_name}.git/info/refs?service=git-upload-pack"
    with api(fake_github) as client:
        answer = client.get(url)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Basic")
        wrong = client.get(url, auth=("x-access-token", "ghs_wrong"))
        assert wrong.status_code == 401


def test_link_pagination(fake_github: FakeGitHub):
    with api(fake_github) as client:
        headers = {"Authorization": f"Bearer {app_jwt(fake_github)}"}
        # Other tests of the session install the App on more organizations.
        total = len(
            client.get("/app/installations", params={"per_page": 100}, headers=headers).json()
        )
        assert total >= 2
        first = client.get("/app/installations", params={"per_page": 1}, headers=headers)
        assert len(first.json()) == 1
        links = first.headers["link"]
        assert 'rel="next"' in links
        assert 'rel="last"' in links
        assert 'rel="prev"' not in links
        second = client.get(
            "/app/installations", params={"per_page": 1, "page": 2}, headers=headers
        )
        assert second.json()[0]["id"] != first.json()[0]["id"]
        assert 'rel="prev"' in second.headers["link"]
        assert 'rel="first"' in second.headers["link"]
        assert ('rel="next"' in second.headers["link"]) == (total > 2)


def test_failure_injection_counts_down(fake_github: FakeGitHub):
    fake_github.fail_next("GET", "^/app$", status=500, times=2)
    with api(fake_github) as client:
        headers = {"Authorization": f"Bearer {app_jwt(fake_github)}"}
        assert [client.get("/app", headers=headers).status_code for _ in range(3)] == [
            500,
            500,
            200,
        ]


async def test_state_survives_a_restart(tmp_path: Path):
    first = FakeGitHub(tmp_path / "github").start()
    try:
        client = GitHubClient(first.url, first.app_id, first.private_key_pem)
        repo = await client.create_repository(first.installation_id, first.org, "kept")
        token = await client.installation_token(first.installation_id)
        files = {"run.sh": SourceFile(b"#!/bin/sh\n", executable=True)}
        sha = git.push_initial_commit(repo.clone_url, token, files, "first", "A <a@example.com>")
    finally:
        first.stop()

    second = FakeGitHub(tmp_path / "github").start()
    try:
        assert second.port != first.port or second.url == first.url
        assert (second.app_id, second.private_key_pem) == (first.app_id, first.private_key_pem)
        client = GitHubClient(second.url, second.app_id, second.private_key_pem)
        again = await client.get_repository(second.installation_id, repo.full_name)
        assert again.clone_url == f"{second.url}/{repo.full_name}.git"
        assert await client.branch_head(second.installation_id, repo.full_name, "main") == sha
        assert git.fetch_tree(again.clone_url, token, sha) == files  # tokens outlive restarts
    finally:
        second.stop()


async def test_in_process_app_needs_no_socket(fake_github: FakeGitHub):
    client = GitHubClient(
        fake_github.url,
        fake_github.app_id,
        fake_github.private_key_pem,
        async_transport=httpx.ASGITransport(app=fake_github.app),
    )
    await client.check()
    template = await client.get_repository(
        fake_github.installation_id, fake_github.template_full_name
    )
    assert template.is_template


def test_deliveries_are_listed_over_http(fake_github: FakeGitHub):
    with api(fake_github) as client:
        answer = client.get("/_sandbox/deliveries", params={"event": "ping"})
        assert answer.status_code == 200
        assert isinstance(answer.json(), list)
        stats = client.get("/_sandbox/stats").json()
        assert stats["tokens_minted"] == fake_github.tokens_minted


def test_the_spec_check_notices_a_missing_field(fake_github: FakeGitHub, github_openapi: OpenAPI):
    """The validator is live: a repository without `clone_url` does not pass."""
    with api(fake_github) as client:
        token = client.post(
            f"/app/installations/{fake_github.installation_id}/access_tokens",
            headers={"Authorization": f"Bearer {app_jwt(fake_github)}"},
        ).json()["token"]
        answer = client.get(
            f"/repos/{fake_github.template_full_name}",
            headers={"Authorization": f"token {token}"},
        )
    path = f"/repos/{fake_github.template_full_name}"

    def check(body: bytes) -> str | None:
        headers = {"content-type": "application/json"}
        return check_response(
            github_openapi,
            method="GET",
            path=path,
            query={},
            status=200,
            headers=headers,
            body=body,
        )

    assert check(answer.content) is None
    broken = answer.json()
    del broken["clone_url"]
    problem = check(json.dumps(broken).encode())
    assert problem is not None
    assert "clone_url" in problem


async def test_the_install_page_installs_the_app_and_returns_to_the_setup_url(
    tmp_path: Path, github_openapi: OpenAPI
):
    setup_url = "http://shipyard.test/api/v1/github/setup"
    recorder = ResponseRecorder(github_openapi)
    with FakeGitHub(tmp_path, setup_url=setup_url) as fake, api(fake) as client:
        assert fake.install_url == f"{fake.url}/apps/{APP_SLUG}/installations/new"
        picker = client.get(fake.install_url, params={"state": "s<1>"})
        assert picker.status_code == 200
        assert 'value="s&lt;1&gt;"' in picker.text
        assert client.get(f"{fake.url}/apps/other/installations/new").status_code == 404
        assert client.get(fake.install_url, params={"org": "-bad-"}).status_code == 422

        installed = client.get(fake.install_url, params={"org": "acme-two", "state": "abc"})
        assert installed.status_code == 302
        location = httpx.URL(installed.headers["location"])
        assert str(location.copy_with(query=None)) == setup_url
        new_id = int(location.params["installation_id"])
        assert dict(location.params) == {
            "installation_id": str(new_id),
            "setup_action": "install",
            "state": "abc",
        }
        other = client.get(fake.install_url, params={"org": "acme-three", "state": "x"})
        other_id = int(httpx.URL(other.headers["location"]).params["installation_id"])
        assert other_id not in (new_id, fake.installation_id, fake.user_installation_id)
        # One installation per account, as on GitHub: installing again configures it.
        again = httpx.URL(
            client.get(fake.install_url, params={"org": "ACME-two", "state": "y"}).headers[
                "location"
            ]
        )
        assert again.params["installation_id"] == str(new_id)
        assert again.params["setup_action"] == "update"

        github = GitHubClient(
            fake.url,
            fake.app_id,
            fake.private_key_pem,
            event_hooks={"response": [recorder.hook]},
        )
        app = await github.get_app()
        assert f"{app.html_url}/installations/new" == fake.install_url
        installation = await github.get_installation(new_id)
        assert (installation.account_login, installation.account_type) == (
            "acme-two",
            "Organization",
        )
        assert new_id in {i.id for i in await github.list_installations()}
        assert await github.list_installation_repositories(new_id) == []

        for number in range(3):
            fake.state.create_repo("acme-two", f"repo-{number}")
        token = await github.installation_token(new_id)
        first = client.get(
            "/installation/repositories",
            params={"per_page": 2},
            headers={"Authorization": f"token {token}"},
        )
        assert first.json()["total_count"] == 3
        assert [r["name"] for r in first.json()["repositories"]] == ["repo-0", "repo-1"]
        assert 'rel="next"' in first.headers["link"]
        recorder.validate(first)
        second = await github.installation_repositories_page(new_id, page=2, per_page=2)
        assert [r.name for r in second.repositories] == ["repo-2"]
        assert (second.total_count, second.has_next) == (3, False)

        fake.setup_url = ""
        shown = client.get(fake.install_url, params={"org": "acme-four"})
        assert shown.status_code == 200 and "installation" in shown.text
    assert recorder.checked >= 6
    assert not recorder.failures, recorder.failures


async def test_an_organization_without_the_app_is_invisible(
    fake_github: FakeGitHub, github_client: GitHubClient
):
    """Its repositories exist (a user made them) but no installation token reads them, over
    the REST API (answers checked against GitHub's description) or git."""
    owner = "no-app-" + str(time.time_ns())[-6:]
    fake_github.state.add_organization(owner)
    assert fake_github.state.add_organization(owner)["login"] == owner  # again: no change
    made = fake_github.state.create_repo(owner, "kept", private=True)
    fake_github.state.write_single_commit(made["id"], {"README.md": (b"# kept\n", False)}, "One")
    installation = fake_github.installation_id
    with pytest.raises(NotFound):
        await github_client.get_repository(installation, f"{owner}/kept")
    with pytest.raises(NotFound):
        await github_client.branch_head(installation, f"{owner}/kept", "main")
    seen = await github_client.list_installation_repositories(installation)
    assert f"{owner}/kept" not in [repo.full_name for repo in seen]
    token = await github_client.installation_token(installation)
    with pytest.raises(git.GitError):
        git.branch_head(f"{fake_github.url}/{owner}/kept.git", token, "main")
