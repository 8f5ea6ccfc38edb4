"""The git client (dulwich over smart HTTP) against the fake GitHub's real bare repositories."""

from __future__ import annotations

import pytest

from clients import git
from clients.github import GitHubClient, Repository
from core.source import SourceFile, SourceTree
from sandbox.github import FakeGitHub

AUTHOR = "Shipyard <shipyard@example.com>"
FILES: SourceTree = {
    "README.md": SourceFile(b"# demo\n"),
    "app/main.py": SourceFile(b"print('hello')\n"),
    "bin/start": SourceFile(b"#!/bin/sh\nexec python app/main.py\n", executable=True),
    "empty.txt": SourceFile(b""),
}


@pytest.fixture
async def empty_repo(
    github_client: GitHubClient, fake_github: FakeGitHub, repo_name: str
) -> Repository:
    return await github_client.create_repository(
        fake_github.installation_id, fake_github.org, repo_name
    )


@pytest.fixture
async def token(github_client: GitHubClient, fake_github: FakeGitHub) -> str:
    return await github_client.installation_token(fake_github.installation_id)


async def test_push_read_head_and_fetch_back(empty_repo: Repository, token: str):
    url = empty_repo.clone_url
    assert git.branch_head(url, token, "main") is None
    sha = git.push_initial_commit(url, token, FILES, "Initial commit", AUTHOR)
    assert git.branch_head(url, token, "main") == sha
    assert git.fetch_tree(url, token, sha) == FILES


async def test_initial_push_is_idempotent(empty_repo: Repository, token: str):
    url = empty_repo.clone_url
    sha = git.push_initial_commit(url, token, FILES, "Initial commit", AUTHOR)
    assert git.push_initial_commit(url, token, FILES, "Initial commit", AUTHOR) == sha
    other = {**FILES, "extra.txt": SourceFile(b"x")}
    with pytest.raises(git.BranchNotEmpty, match="already has commits") as caught:
        git.push_initial_commit(url, token, other, "Initial commit", AUTHOR)
    assert caught.value.code == "BRANCH_NOT_EMPTY"
    assert not caught.value.retryable


async def test_push_commit_on_top_and_fetch_an_older_commit(empty_repo: Repository, token: str):
    url = empty_repo.clone_url
    first = git.push_initial_commit(url, token, FILES, "Initial commit", AUTHOR)
    changed = {**FILES, "app/main.py": SourceFile(b"print('changed')\n")}
    del changed["empty.txt"]
    second = git.push_commit(url, token, changed, "Change the greeting", AUTHOR)
    assert second != first
    assert git.branch_head(url, token, "main") == second
    assert git.fetch_tree(url, token, second) == changed
    # The first commit is no branch tip any more; it is still reachable and readable.
    assert git.fetch_tree(url, token, first) == FILES
    feature = git.push_commit(url, token, FILES, "Start a feature", AUTHOR, branch="feature/x")
    assert git.branch_head(url, token, "feature/x") == feature


async def test_a_bad_token_is_refused_without_showing_it(empty_repo: Repository):
    bad = "ghs_thisTokenIsNotValidAtAll0123456789"
    calls = [
        lambda: git.branch_head(empty_repo.clone_url, bad, "main"),
        lambda: git.push_initial_commit(empty_repo.clone_url, bad, FILES, "x", AUTHOR),
        lambda: git.fetch_tree(empty_repo.clone_url, bad, "0" * 40),
    ]
    for call in calls:
        with pytest.raises(git.GitAuthError) as caught:
            call()
        assert bad not in str(caught.value)
        assert "refused the installation token" in str(caught.value)
        assert empty_repo.full_name in str(caught.value)


async def test_another_accounts_repository_is_not_found(
    github_client: GitHubClient, fake_github: FakeGitHub, empty_repo: Repository
):
    user_token = await github_client.installation_token(fake_github.user_installation_id)
    with pytest.raises(git.GitAuthError, match="repository not found") as caught:
        git.branch_head(empty_repo.clone_url, user_token, "main")
    assert user_token not in str(caught.value)


async def test_git_server_failure_is_retryable(
    fake_github: FakeGitHub, empty_repo: Repository, token: str
):
    path = f"^/{empty_repo.full_name}.git/info/refs$"
    fake_github.fail_next("GET", path, status=503)
    with pytest.raises(git.GitUnavailable) as caught:
        git.branch_head(empty_repo.clone_url, token, "main")
    assert caught.value.retryable
    assert token not in str(caught.value)
    assert git.branch_head(empty_repo.clone_url, token, "main") is None


async def test_a_server_failure_stays_retryable_when_the_address_holds_404(
    github_client: GitHubClient, fake_github: FakeGitHub, token: str
):
    """The failure was told from a missing repository by looking for "404" in dulwich's whole
    message, which names the URL: a server whose port or repository name held 404 (the fake's
    random port did, now and then) turned a 503 into a permanent "not found"."""
    repo = await github_client.create_repository(
        fake_github.installation_id, fake_github.org, "app-404-not-found"
    )
    fake_github.fail_next("GET", f"^/{repo.full_name}.git/info/refs$", status=503)
    with pytest.raises(git.GitUnavailable) as caught:
        git.branch_head(repo.clone_url, token, "main")
    assert caught.value.retryable
    assert git.branch_head(repo.clone_url, token, "main") is None
