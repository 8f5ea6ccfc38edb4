"""GitHubClient against the fake GitHub over a real socket; every answer is checked by the spec."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clients import git
from clients.github import (
    GitHubClient,
    GitHubUnavailable,
    InstallationNotFound,
    NotFound,
    PermissionDenied,
    RepoExists,
    UserAccountNotSupported,
)
from core.source import SourceFile
from sandbox.github import FakeGitHub
from tests.fixtures.github import WebhookReceiver
from tests.github_openapi import ResponseRecorder, check_webhook

ORG = FakeGitHub.org


async def test_check_and_installations(github_client: GitHubClient, fake_github: FakeGitHub):
    await github_client.check()
    installations = {i.account_login: i for i in await github_client.list_installations()}
    assert installations[ORG].id == fake_github.installation_id
    assert installations[ORG].account_type == "Organization"
    assert installations[fake_github.user].account_type == "User"
    one = await github_client.get_installation(fake_github.installation_id)
    assert one == installations[ORG]


async def test_unknown_installation(github_client: GitHubClient):
    with pytest.raises(InstallationNotFound) as caught:
        await github_client.get_installation(424242)
    assert caught.value.code == "INSTALLATION_NOT_FOUND"
    assert not caught.value.retryable
    assert "424242" in str(caught.value)


async def test_create_repository_and_refuse_a_taken_name(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    repo = await github_client.create_repository(fake_github.installation_id, ORG, repo_name)
    assert repo.full_name == f"{ORG}/{repo_name}"
    assert repo.clone_url == f"{fake_github.url}/{ORG}/{repo_name}.git"
    assert repo.default_branch == "main"
    assert repo.private
    assert await github_client.get_repository(fake_github.installation_id, repo.full_name) == repo

    with pytest.raises(RepoExists) as caught:
        await github_client.create_repository(fake_github.installation_id, ORG, repo_name)
    assert caught.value.code == "REPO_EXISTS"
    assert not caught.value.retryable
    assert f"{ORG}/{repo_name} already exists" in str(caught.value)


async def test_user_account_is_refused_in_words(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    with pytest.raises(UserAccountNotSupported) as caught:
        await github_client.create_repository(
            fake_github.user_installation_id, fake_github.user, repo_name
        )
    assert isinstance(caught.value, PermissionDenied)
    assert caught.value.status == 403
    assert "organizations where the App is installed" in str(caught.value)
    assert fake_github.user in str(caught.value)


async def test_owner_must_match_the_installation(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    with pytest.raises(PermissionDenied, match="belongs to sandbox-org"):
        await github_client.create_repository(fake_github.installation_id, "other-org", repo_name)


async def test_generate_from_template_waits_for_the_branch(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    installation = fake_github.installation_id
    template = fake_github.template_full_name
    repo = await github_client.generate_repository(installation, template, ORG, repo_name)
    # The fake fills the repository 0.3 s after answering; the client returned only after that.
    head = await github_client.branch_head(installation, repo.full_name, "main")
    template_head = await github_client.branch_head(installation, template, "main")
    assert head != template_head  # a fresh commit history, as GitHub makes

    token = await github_client.installation_token(installation)
    template_repo = await github_client.get_repository(installation, template)
    assert template_repo.is_template
    assert git.fetch_tree(repo.clone_url, token, head) == git.fetch_tree(
        template_repo.clone_url, token, template_head
    )

    with pytest.raises(RepoExists):
        await github_client.generate_repository(installation, template, ORG, repo_name)


async def test_generate_from_a_missing_template(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    with pytest.raises(NotFound, match="template repository sandbox-org/nope"):
        await github_client.generate_repository(
            fake_github.installation_id, f"{ORG}/nope", ORG, repo_name
        )


async def test_branch_head_and_missing_things(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    installation = fake_github.installation_id
    repo = await github_client.create_repository(installation, ORG, repo_name)
    with pytest.raises(NotFound, match="branch main"):
        await github_client.branch_head(installation, repo.full_name, "main")
    token = await github_client.installation_token(installation)
    files = {"README.md": SourceFile(b"hi\n")}
    sha = git.push_initial_commit(repo.clone_url, token, files, "first", "Dev <dev@example.com>")
    assert await github_client.branch_head(installation, repo.full_name, "main") == sha
    with pytest.raises(NotFound, match="branch nope"):
        await github_client.branch_head(installation, repo.full_name, "nope")
    with pytest.raises(NotFound, match=f"{ORG}/absent"):
        await github_client.get_repository(installation, f"{ORG}/absent")
    # Another account's repositories are invisible to this installation's token.
    with pytest.raises(NotFound):
        await github_client.get_repository(fake_github.user_installation_id, repo.full_name)


async def test_webhooks_create_list_delete(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    installation = fake_github.installation_id
    repo = await github_client.create_repository(installation, ORG, repo_name)
    hook = await github_client.create_webhook(
        installation, repo.full_name, "http://127.0.0.1:9/hooks", "s3cret"
    )
    assert hook.events == ("push",)
    assert hook.active
    assert await github_client.list_webhooks(installation, repo.full_name) == [hook]
    await github_client.delete_webhook(installation, repo.full_name, hook.id)
    assert await github_client.list_webhooks(installation, repo.full_name) == []
    await github_client.delete_webhook(installation, repo.full_name, hook.id)  # already gone
    with pytest.raises(NotFound):
        await github_client.list_webhooks(installation, f"{ORG}/absent")


async def test_delete_repository_twice(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    installation = fake_github.installation_id
    repo = await github_client.create_repository(installation, ORG, repo_name)
    await github_client.delete_repository(installation, repo.full_name)
    with pytest.raises(NotFound):
        await github_client.get_repository(installation, repo.full_name)
    await github_client.delete_repository(installation, repo.full_name)
    # A name freed by deletion can be used again.
    await github_client.create_repository(installation, ORG, repo_name)


async def test_installation_repositories_follow_every_page(
    github_client: GitHubClient, fake_github: FakeGitHub, github_responses: ResponseRecorder
):
    # The user account's installation has no other tests' repositories; the fake's state adds
    # them directly (the App could not create them there), more than one page of 100.
    before = await github_client.list_installation_repositories(fake_github.user_installation_id)
    batch = uuid.uuid4().hex[:6]
    for number in range(102):
        fake_github.state.create_repo(fake_github.user, f"page-{batch}-{number}")
    found = await github_client.list_installation_repositories(fake_github.user_installation_id)
    assert len(found) == len(before) + 102
    assert len({r.full_name for r in found}) == len(found)
    assert all(r.owner == fake_github.user for r in found)
    assert github_responses.checked >= 3  # two pages of the second listing, and the first


async def test_server_errors_are_retryable(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
):
    installation = fake_github.installation_id
    repo = await github_client.create_repository(installation, ORG, repo_name)
    fake_github.fail_next("GET", f"^/repos/{ORG}/{repo_name}$", status=502, times=2)
    for _ in range(2):
        with pytest.raises(GitHubUnavailable) as caught:
            await github_client.get_repository(installation, repo.full_name)
        assert caught.value.retryable
        assert caught.value.code == "GITHUB_UNAVAILABLE"
        assert "502" in str(caught.value)
    assert await github_client.get_repository(installation, repo.full_name) == repo


async def test_unreachable_github_is_retryable(fake_github: FakeGitHub):
    from sandbox.net import free_port

    client = GitHubClient(
        f"http://127.0.0.1:{free_port()}", fake_github.app_id, fake_github.private_key_pem
    )
    with pytest.raises(GitHubUnavailable, match="cannot be reached") as caught:
        await client.check()
    assert caught.value.retryable


async def test_a_wrong_app_key_is_explained(fake_github: FakeGitHub):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    client = GitHubClient(fake_github.url, fake_github.app_id, pem)
    with pytest.raises(PermissionDenied) as caught:
        await client.check()
    message = str(caught.value)
    assert "SHIPYARD_GITHUB_APP_ID" in message
    assert "PRIVATE KEY" not in message


async def test_installation_token_is_cached(fake_github: FakeGitHub, repo_name: str):
    client = GitHubClient(fake_github.url, fake_github.app_id, fake_github.private_key_pem)
    installation = fake_github.installation_id
    minted = fake_github.tokens_minted
    repo = await client.create_repository(installation, ORG, repo_name)
    await client.get_repository(installation, repo.full_name)
    token = await client.installation_token(installation)
    assert await client.installation_token(installation) == token
    assert fake_github.tokens_minted == minted + 1


async def test_push_delivers_a_signed_webhook(
    github_client: GitHubClient,
    fake_github: FakeGitHub,
    webhook_receiver: WebhookReceiver,
    repo_name: str,
):
    installation = fake_github.installation_id
    secret = "hook-secret-for-test"
    repo = await github_client.create_repository(installation, ORG, repo_name)
    hook = await github_client.create_webhook(
        installation, repo.full_name, webhook_receiver.url, secret
    )
    [ping] = webhook_receiver.wait_for("ping")
    assert ping.json()["hook_id"] == hook.id
    assert check_webhook("ping", ping.json()) == []

    token = await github_client.installation_token(installation)
    files = {"app.py": SourceFile(b"print('hi')\n"), "run.sh": SourceFile(b"#!/bin/sh\n", True)}
    first = git.push_initial_commit(repo.clone_url, token, files, "first", "Dev <dev@example.com>")
    files["app.py"] = SourceFile(b"print('hello')\n")
    second = git.push_commit(repo.clone_url, token, files, "second", "Dev <dev@example.com>")

    pushes = webhook_receiver.wait_for("push", count=2)
    for delivery in pushes:
        expected = "sha256=" + hmac.new(secret.encode(), delivery.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(delivery.headers["x-hub-signature-256"], expected)
        assert delivery.headers["user-agent"].startswith("GitHub-Hookshot/")
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["x-github-delivery"]
        assert check_webhook("push", delivery.json()) == []
    payloads = sorted((d.json() for d in pushes), key=lambda p: p["created"], reverse=True)
    created, updated = payloads
    assert created["ref"] == "refs/heads/main"
    assert created["before"] == "0" * 40
    assert created["after"] == first
    assert created["repository"]["full_name"] == repo.full_name
    assert created["installation"]["id"] == installation
    assert [c["id"] for c in created["commits"]] == [first]
    assert sorted(created["head_commit"]["added"]) == ["app.py", "run.sh"]
    assert updated["before"] == first
    assert updated["after"] == second
    assert updated["head_commit"]["id"] == second
    assert updated["head_commit"]["modified"] == ["app.py"]
    assert updated["head_commit"]["message"] == "second"

    # The fake notes the receiver's answer just after the receiver has seen the request.
    deadline = time.monotonic() + 5
    while True:
        recorded = fake_github.deliveries(event="push", repository=repo.full_name)
        if all(r["delivered_at"] for r in recorded) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [r["status_code"] for r in recorded] == [200, 200]
    assert secret not in str(recorded)
