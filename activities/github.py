"""Activities on GitHub: repositories created (or adopted after a crash), the push webhook, and
their undoing."""

from __future__ import annotations

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import as_activity_failures
from clients.github import (
    GitHubClient,
    GitHubError,
    GitHubUnavailable,
    NotFound,
    PermissionDenied,
    RepoExists,
    Repository,
)
from workflows.contracts import github as contract

log = structlog.get_logger("shipyard.activities")


class GitHubActivities:
    """Given the GitHub client, and the webhook secret so it never travels through history."""

    def __init__(self, github: GitHubClient, webhook_secret: str) -> None:
        self._github = github
        self._webhook_secret = webhook_secret

    @activity.defn(name=contract.CREATE_REPOSITORY.name)
    async def create_repository(
        self, request: contract.CreateRepositoryInput
    ) -> contract.RepositoryResult:
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

    @activity.defn(name=contract.GENERATE_REPOSITORY.name)
    async def generate_repository(
        self, request: contract.GenerateRepositoryInput
    ) -> contract.RepositoryResult:
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

    @activity.defn(name=contract.DELETE_REPOSITORY_IF_OURS.name)
    async def delete_repository_if_ours(self, request: contract.DeleteRepositoryInput) -> None:
        """Deletes the repository only if its description carries this bootstrap's marker:
        a repository that existed before, or another bootstrap's, is never touched."""
        await self._delete_if_marked(request)

    @activity.defn(name=contract.DELETE_REPOSITORY_MADE_HERE.name)
    async def delete_repository_made_here(self, request: contract.DeleteRepositoryInput) -> bool:
        """As `delete_repository_if_ours`, saying whether it deleted the repository."""
        return await self._delete_if_marked(request)

    async def _delete_if_marked(self, request: contract.DeleteRepositoryInput) -> bool:
        repository = request.repository
        with as_activity_failures():
            try:
                found = await self._github.get_repository(
                    repository.installation_id, repository.full_name
                )
            except NotFound:
                return False
            if request.marker not in found.description:
                log.warning("repository kept: not made by this bootstrap", repo=found.full_name)
                return False
            await self._github.delete_repository(repository.installation_id, repository.full_name)
        return True

    @activity.defn(name=contract.CHECK_REPOSITORY.name)
    async def check_repository(
        self, request: contract.RepositoryCheckInput
    ) -> contract.RepositoryCheck:
        """Whether the installation can read the repository and its branch has a commit;
        changes nothing."""
        repository = request.repository
        with as_activity_failures():
            try:
                found = await self._github.get_repository(
                    repository.installation_id, repository.full_name
                )
            except (NotFound, PermissionDenied):
                raise ApplicationError(
                    f"repository {repository.full_name} does not exist or GitHub App "
                    f"installation {repository.installation_id} cannot read it; install the "
                    "App on its organization with access to it",
                    type="REPO_NOT_ACCESSIBLE",
                    non_retryable=True,
                ) from None
            branch = request.branch or found.default_branch
            try:
                head = await self._github.branch_head(
                    repository.installation_id, found.full_name, branch
                )
            except NotFound:
                raise ApplicationError(
                    f"repository {found.full_name} has no branch {branch}; push it first or "
                    "name another branch",
                    type="BRANCH_NOT_FOUND",
                    non_retryable=True,
                ) from None
            return contract.RepositoryCheck(full_name=found.full_name, branch=branch, head_sha=head)

    @activity.defn(name=contract.ENSURE_WEBHOOK.name)
    async def ensure_webhook(self, request: contract.WebhookInput) -> int:
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

    @activity.defn(name=contract.SET_COMMIT_STATUS.name)
    async def set_commit_status(self, request: contract.CommitStatusInput) -> None:
        """Adds the status; setting the same one again only adds a duplicate GitHub shows once
        (the newest of a context counts), so a retry after a lost answer does no harm."""
        repository = request.repository
        with as_activity_failures():
            try:
                await self._github.create_commit_status(
                    repository.installation_id,
                    repository.full_name,
                    request.sha,
                    state=request.state,
                    context=request.context,
                    description=request.description,
                    target_url=request.target_url,
                )
            except GitHubUnavailable:
                raise
            except GitHubError as refused:
                raise ApplicationError(
                    refused.message, type="COMMIT_STATUS_REFUSED", non_retryable=True
                ) from None

    @activity.defn(name=contract.REMOVE_WEBHOOK.name)
    async def remove_webhook(self, request: contract.WebhookInput) -> None:
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

    async def _adopt_if_ours(self, request: contract.CreateRepositoryInput) -> Repository:
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


def _described(request: contract.CreateRepositoryInput) -> str:
    text = f"{request.description} ({request.marker})" if request.description else request.marker
    return text[:350]


def _result(repository: Repository) -> contract.RepositoryResult:
    return contract.RepositoryResult(
        full_name=repository.full_name,
        clone_url=repository.clone_url,
        default_branch=repository.default_branch,
    )
