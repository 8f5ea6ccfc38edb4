"""BootstrapApp: app record → repository → template pushed → connected → first deploy, as a saga
that either finishes or undoes every step it took, whatever fails or is cancelled."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import git, github
    from workflows.onboarding import AppOnboarding, OnboardingInput, OnboardingResult
    from workflows.saga import Saga

STAGES = ("app", "repo", "push", "connect", "deploy", "done")
# Runs recorded before this freed the slug in their first compensation, before the bootstrap
# record said it had ended; they replay that way.
FREE_THE_SLUG_LAST = "free-the-slug-last"


class BootstrapInput(OnboardingInput):
    template_id: str
    template_source: str  # builtin:<dir> | github:<owner>/<repo>
    template_port: int
    repo_owner: str
    repo_name: str
    repo_private: bool = True


class BootstrapResult(OnboardingResult):
    pass


def bootstrap_workflow_id(tenant_slug: str, app_slug: str) -> str:
    return f"bootstrap:{tenant_slug}:{app_slug}"


@workflow.defn(name="BootstrapApp")
class BootstrapApp(AppOnboarding):
    what = "bootstrap"

    @workflow.run
    async def run(self, request: BootstrapInput) -> BootstrapResult:
        self._bootstrap = request
        repo = github.RepositoryRef(
            full_name=f"{request.repo_owner}/{request.repo_name}",
            installation_id=request.installation_id,
        )
        marker = f"shipyard-bootstrap:{request.bootstrap_id}"
        deployment_id = str(workflow.uuid4())
        target = self._begin(request)
        saga = Saga()
        # A new bootstrap of the same slug may start once the slug is free; the slug is freed
        # by the very last step, so this run's record already says how it ended by then.
        free_slug_last = workflow.patched(FREE_THE_SLUG_LAST)
        pushed: str | None = None
        try:
            await self._enter("app", "Recording the app and its environments")
            if not free_slug_last:
                saga.register("mark the app failed and free its slug", self._mark_app_failed)
            await self._record_app()

            await self._enter("repo", f"Creating the repository {repo.full_name}")
            saga.register(
                f"delete {repo.full_name} if this bootstrap created it",
                lambda: self._steps.github(
                    github.DELETE_REPOSITORY_IF_OURS,
                    github.DeleteRepositoryInput(repository=repo, marker=marker),
                    compensation=True,
                ),
            )
            await self._create_repository(marker)

            if request.template_source.startswith("builtin:"):
                await self._enter("push", f"Pushing the {request.template_id} template")
                commit = await self._steps.github(
                    git.PUSH_TEMPLATE,
                    git.PushTemplateInput(
                        repository=repo,
                        template_id=request.template_id,
                        directory=request.template_source.removeprefix("builtin:"),
                        values={
                            "app_name": request.app_name,
                            "app_slug": request.app_slug,
                            "tenant": request.tenant_slug,
                            "subdomain": request.host,
                            "port": str(request.template_port),
                        },
                    ),
                )
                pushed = commit.sha

            await self._enter("connect", "Connecting the repository for push-to-deploy")
            await self._connect(saga, repo, "main")
            # The first deploy builds the commit just pushed: known from the start, so the
            # deployment's record (and its commit status) has it at once. Runs from before
            # records ran locally resolved the branch's head instead, the same commit.
            await self._first_deploy(
                saga,
                target,
                deployment_id,
                repo,
                commit_sha=pushed if self._local_records else None,
            )
            return self._result("done", deployment_id=deployment_id)
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            await self._end_undone(error, saga, deployment_id, free_slug_last=free_slug_last)

    async def _create_repository(self, marker: str) -> None:
        request = self._bootstrap
        common: dict[str, Any] = {
            "owner": request.repo_owner,
            "name": request.repo_name,
            "private": request.repo_private,
            "installation_id": request.installation_id,
            "marker": marker,
            "description": f"{request.app_name}, deployed by Shipyard",
        }
        if request.template_source.startswith("github:"):
            await self._steps.github(
                github.GENERATE_REPOSITORY,
                github.GenerateRepositoryInput(
                    template_full_name=request.template_source.removeprefix("github:"), **common
                ),
            )
            return
        await self._steps.github(github.CREATE_REPOSITORY, github.CreateRepositoryInput(**common))

    def _result(self, status: str, *, deployment_id: str | None) -> BootstrapResult:
        request = self._bootstrap
        return BootstrapResult(
            bootstrap_id=request.bootstrap_id,
            status=status,
            stage=self._stage,
            app_id=request.app_id,
            repo_full_name=f"{request.repo_owner}/{request.repo_name}",
            deployment_id=deployment_id,
        )
