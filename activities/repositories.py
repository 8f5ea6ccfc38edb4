"""Activities on GitHub repositories and their git contents: create, push, connect, undo."""

from __future__ import annotations

import asyncio

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import as_activity_failures
from clients import git
from clients.github import GitHubClient, NotFound, RepoExists, Repository
from core.templates import builtin_catalog, render
from workflows import steps

log = structlog.get_logger("shipyard.activities")
COMMIT_AUTHOR = "Shipyard <shipyard@users.noreply.github.com>"


class RepositoryActivities:
    """Given the GitHub client, and the webhook secret so it never travels through history."""

    def __init__(self, github: GitHubClient, webhook_secret: str) -> None:
        self._github = github
        self._webhook_secret = webhook_secret

    @activity.defn(name=steps.CREATE_REPOSITORY)
    async def create_repository(
        self, request: steps.CreateRepositoryInput
    ) -> steps.RepositoryResult:
        with as_activity_failures():
            try:
                made = await self._github.create_repository(
                    request.installation_id,
                    request.owner,
                    request.name,
                    private=request.private,
                    description=_described(request),
                )
            except RepoExists:
                made = await self._adopt_if_ours(request)
            return _result(made)

    @activity.defn(name=steps.GENERATE_REPOSITORY)
    async def generate_repository(
        self, request: steps.GenerateRepositoryInput
    ) -> steps.RepositoryResult:
        with as_activity_failures():
            try:
                made = await self._github.generate_repository(
                    request.installation_id,
                    request.template_full_name,
                    request.owner,
                    request.name,
                    private=request.private,
                    description=_described(request),
                )
            except NotFound as missing:
                raise ApplicationError(
                    missing.message, type="TEMPLATE_NOT_FOUND", non_retryable=True
                ) from None
            except RepoExists:
                made = await self._adopt_if_ours(request)
                await self._github.branch_head(
                    request.installation_id, made.full_name, made.default_branch
                )
            return _result(made)

    @activity.defn(name=steps.DELETE_REPOSITORY_IF_OURS)
    async def delete_repository_if_ours(self, request: steps.DeleteRepositoryInput) -> None:
        """Deletes the repository only if its description carries this bootstrap's marker:
        a repository that existed before, or another bootstrap's, is never touched."""
        repository = request.repository
        with as_activity_failures():
            try:
                found = await self._github.get_repository(
                    repository.installation_id, repository.full_name
                )
            except NotFound:
                return
            if request.marker not in found.description:
                log.warning("repository kept: not made by this bootstrap", repo=found.full_name)
                return
            await self._github.delete_repository(repository.installation_id, repository.full_name)

    @activity.defn(name=steps.ENSURE_WEBHOOK)
    async def ensure_webhook(self, request: steps.WebhookInput) -> int:
        """The repository's push webhook to `url`, created unless it already exists."""
        repository = request.repository
        with as_activity_failures():
            hooks = await self._github.list_webhooks(
                repository.installation_id, repository.full_name
            )
            for hook in hooks:
                if hook.url == request.url:
                    return hook.id
            created = await self._github.create_webhook(
                repository.installation_id,
                repository.full_name,
                request.url,
                self._webhook_secret,
                events=("push",),
            )
            return created.id

    @activity.defn(name=steps.REMOVE_WEBHOOK)
    async def remove_webhook(self, request: steps.WebhookInput) -> None:
        repository = request.repository
        with as_activity_failures():
            try:
                hooks = await self._github.list_webhooks(
                    repository.installation_id, repository.full_name
                )
            except NotFound:
                return
            for hook in hooks:
                if hook.url == request.url:
                    await self._github.delete_webhook(
                        repository.installation_id, repository.full_name, hook.id
                    )

    @activity.defn(name=steps.PUSH_TEMPLATE)
    async def push_template(self, request: steps.PushTemplateInput) -> steps.CommitResult:
        repository = request.repository
        with as_activity_failures():
            template = next(
                (item for item in builtin_catalog() if item.id == request.template_id), None
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
            return steps.CommitResult(sha=sha)

    @activity.defn(name=steps.RESOLVE_COMMIT)
    async def resolve_commit(self, request: steps.ResolveCommitInput) -> steps.CommitResult:
        if request.commit_sha:
            return steps.CommitResult(sha=request.commit_sha)
        repository = request.repository
        with as_activity_failures():
            sha = await self._github.branch_head(
                repository.installation_id, repository.full_name, request.branch
            )
            return steps.CommitResult(sha=sha)

    async def _adopt_if_ours(self, request: steps.CreateRepositoryInput) -> Repository:
        """After a crash the repository may exist because this bootstrap made it: keep it."""
        full_name = f"{request.owner}/{request.name}"
        found = await self._github.get_repository(request.installation_id, full_name)
        if request.marker in found.description:
            return found
        raise ApplicationError(
            f"repository {full_name} already exists and was not created by this bootstrap; "
            "choose another repo_name or delete it",
            type="REPO_EXISTS",
            non_retryable=True,
        )


def _described(request: steps.CreateRepositoryInput) -> str:
    text = f"{request.description} ({request.marker})" if request.description else request.marker
    return text[:350]


def _result(repository: Repository) -> steps.RepositoryResult:
    return steps.RepositoryResult(
        full_name=repository.full_name,
        clone_url=repository.clone_url,
        default_branch=repository.default_branch,
    )
