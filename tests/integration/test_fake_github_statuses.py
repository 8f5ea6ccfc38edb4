"""The fake GitHub's commit statuses, as api.github.com keeps them: created by the App's
installation, listed newest first, combined per context with GitHub's reduction, refused in
GitHub's words; every answer checked against GitHub's OpenAPI description."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from clients.github import GitHubClient, GitHubError, GitHubUnavailable, NotFound
from sandbox.github import FakeGitHub
from tests.github_openapi import ResponseRecorder

ORG = FakeGitHub.org


@pytest.fixture
async def commit(fake_github: FakeGitHub, github_client: GitHubClient, repo_name: str) -> str:
    """A repository of its own with one commit; its sha."""
    made = await github_client.create_repository(fake_github.installation_id, ORG, repo_name)
    files = {"README.md": (b"# statuses\n", False)}
    return fake_github.state.write_single_commit(made.id, files, "First")


@pytest.fixture
async def raw(
    fake_github: FakeGitHub, github_client: GitHubClient, github_responses: ResponseRecorder
):
    """Plain HTTP as the installation, every answer checked against the description too."""
    token = await github_client.installation_token(fake_github.installation_id)
    async with httpx.AsyncClient(
        base_url=fake_github.url,
        headers={"Authorization": f"token {token}"},
        event_hooks={"response": [github_responses.hook]},
        trust_env=False,
    ) as client:
        yield client


async def test_statuses_are_set_listed_and_combined(
    fake_github: FakeGitHub,
    github_client: GitHubClient,
    github_responses: ResponseRecorder,
    repo_name: str,
    commit: str,
    raw: httpx.AsyncClient,
):
    full_name = f"{ORG}/{repo_name}"
    installation = fake_github.installation_id
    url = "https://shipyard.example/api/v1/apps/a/deployments/d"
    first = await github_client.create_commit_status(
        installation, full_name, commit, state="pending", context="shipyard/dev",
        description="Deploying", target_url=url,
    )  # fmt: skip
    await github_client.create_commit_status(
        installation, full_name, commit, state="success", context="shipyard/dev",
        description="Deployed", target_url=url,
    )  # fmt: skip
    await github_client.create_commit_status(
        installation, full_name, commit, state="pending", context="shipyard/qa"
    )
    assert first.state == "pending" and first.target_url == url
    listed = await github_client.commit_statuses(installation, full_name, commit)
    assert [(s.context, s.state) for s in listed] == [
        ("shipyard/qa", "pending"),
        ("shipyard/dev", "success"),
        ("shipyard/dev", "pending"),
    ]
    # A branch names its head commit as well as the sha does.
    assert await github_client.commit_statuses(installation, full_name, "main") == listed

    combined = (await raw.get(f"/repos/{full_name}/commits/{commit}/status")).json()
    assert combined["state"] == "pending"  # qa is still pending
    assert combined["total_count"] == 2
    assert {s["context"]: s["state"] for s in combined["statuses"]} == {
        "shipyard/qa": "pending",
        "shipyard/dev": "success",
    }
    await github_client.create_commit_status(
        installation, full_name, commit, state="error", context="shipyard/qa"
    )
    combined = (await raw.get(f"/repos/{full_name}/commits/main/status")).json()
    assert (combined["state"], combined["sha"]) == ("failure", commit)
    await github_client.create_commit_status(
        installation, full_name, commit, state="success", context="shipyard/qa"
    )
    combined = (await raw.get(f"/repos/{full_name}/commits/{commit}/status")).json()
    assert combined["state"] == "success"
    assert github_responses.checked >= 8


async def test_a_commit_without_statuses_is_pending(
    repo_name: str, commit: str, raw: httpx.AsyncClient
):
    combined = (await raw.get(f"/repos/{ORG}/{repo_name}/commits/{commit}/status")).json()
    assert (combined["state"], combined["total_count"], combined["statuses"]) == ("pending", 0, [])
    listed = await raw.get(f"/repos/{ORG}/{repo_name}/commits/{commit}/statuses")
    assert listed.json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "done", "context": "c"}, "state"),
        ({"context": "c"}, "state"),
        ({"state": "success", "description": "x" * 141}, "description"),
        ({"state": "success", "context": "c" * 256}, "context"),
    ],
)
async def test_bad_statuses_are_refused(
    repo_name: str, commit: str, raw: httpx.AsyncClient, body: dict[str, Any], field: str
):
    answer = await raw.post(f"/repos/{ORG}/{repo_name}/statuses/{commit}", json=body)
    assert answer.status_code == 422
    assert answer.json()["message"] == "Validation Failed"
    assert answer.json()["errors"][0]["field"] == field


async def test_unknown_repositories_and_commits(
    fake_github: FakeGitHub,
    github_client: GitHubClient,
    repo_name: str,
    commit: str,
    raw: httpx.AsyncClient,
):
    installation = fake_github.installation_id
    with pytest.raises(NotFound):
        await github_client.create_commit_status(
            installation, f"{ORG}/no-such-repo", commit, state="success", context="c"
        )
    with pytest.raises(GitHubError) as refused:
        await github_client.create_commit_status(
            installation, f"{ORG}/{repo_name}", "f" * 40, state="success", context="c"
        )
    assert refused.value.status == 422
    assert "No commit found for SHA" in refused.value.message
    for path in ("status", "statuses"):
        missing = await raw.get(f"/repos/{ORG}/{repo_name}/commits/{'f' * 40}/{path}")
        assert missing.status_code == 404
    # Another account's repository is invisible to the installation, as on GitHub.
    other = await raw.post(
        f"/repos/{fake_github.user}/anything/statuses/{commit}", json={"state": "success"}
    )
    assert other.status_code == 404


async def test_an_outage_of_the_statuses_endpoint_is_retryable(
    fake_github: FakeGitHub, github_client: GitHubClient, repo_name: str, commit: str
):
    fake_github.fail_next("POST", rf"^/repos/{ORG}/{repo_name}/statuses/", status=502, times=2)
    full_name = f"{ORG}/{repo_name}"
    for _ in range(2):
        with pytest.raises(GitHubUnavailable):
            await github_client.create_commit_status(
                fake_github.installation_id, full_name, commit, state="success", context="c"
            )
    await github_client.create_commit_status(
        fake_github.installation_id, full_name, commit, state="success", context="c"
    )
    assert [s["state"] for s in fake_github.statuses(full_name, commit)] == ["success"]
