"""Activities on git over HTTPS with an installation token: the template's first commit, and
the commit a deploy builds."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import as_activity_failures
from clients import git
from clients.github import GitHubClient
from core.templates import builtin_catalog, render
from workflows.contracts import git as contract

COMMIT_AUTHOR = "Shipyard <shipyard@users.noreply.github.com>"


class GitActivities:
    """Given the GitHub client, which finds the repository and gives the token to push with."""

    def __init__(self, github: GitHubClient) -> None:
        self._github = github

    @activity.defn(name=contract.PUSH_TEMPLATE.name)
    async def push_template(self, request: contract.PushTemplateInput) -> contract.CommitResult:
        repository = request.repository
        with as_activity_failures():
            template = next(
                (
                    item
                    for item in builtin_catalog()
                    if (item.directory.name == request.directory)
                    or (request.directory is None and item.id == request.template_id)
                ),
                None,
            )
            if template is None:
                raise ApplicationError(
                    f"template {request.template_id!r} is not in this version's catalog",
                    type="TEMPLATE_NOT_FOUND",
                    non_retryable=True,
                )
            files = render(template, request.values)
            found = await self._github.get_repository(
                repository.installation_id, repository.full_name
            )
            token = await self._github.installation_token(repository.installation_id)
            sha = await asyncio.to_thread(
                git.push_initial_commit,
                found.clone_url,
                token,
                files,
                request.message,
                COMMIT_AUTHOR,
                request.branch,
            )
            return contract.CommitResult(sha=sha)

    @activity.defn(name=contract.RESOLVE_COMMIT.name)
    async def resolve_commit(self, request: contract.ResolveCommitInput) -> contract.CommitResult:
        if request.commit_sha:
            return contract.CommitResult(sha=request.commit_sha)
        repository = request.repository
        with as_activity_failures():
            sha = await self._github.branch_head(
                repository.installation_id, repository.full_name, request.branch
            )
            return contract.CommitResult(sha=sha)
