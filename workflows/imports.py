"""ImportApp: an app from a repository that already exists: app record → the installation can
read the repository and its branch → webhook and git connection → first deploy of the branch's
head. A saga like BootstrapApp's, except that the user's repository is never changed: the only
thing undone on it is the webhook this run added."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import github
    from workflows.onboarding import AppOnboarding, OnboardingInput, OnboardingResult
    from workflows.saga import Saga

STAGES = ("app", "repo", "connect", "deploy", "done")


class ImportInput(OnboardingInput):
    repo_full_name: str
    # None: the repository's default branch.
    branch: str | None = None


class ImportResult(OnboardingResult):
    branch: str | None = None
    commit_sha: str | None = None


def import_workflow_id(tenant_slug: str, app_slug: str) -> str:
    return f"import:{tenant_slug}:{app_slug}"


@workflow.defn(name="ImportApp")
class ImportApp(AppOnboarding):
    what = "import"

    @workflow.run
    async def run(self, request: ImportInput) -> ImportResult:
        repo = github.RepositoryRef(
            full_name=request.repo_full_name, installation_id=request.installation_id
        )
        deployment_id = str(workflow.uuid4())
        target = self._begin(request)
        saga = Saga()
        try:
            await self._enter("app", "Recording the app and its environments")
            await self._record_app()

            await self._enter("repo", f"Checking that the App can read {repo.full_name}")
            checked = await self._steps.github(
                github.CHECK_REPOSITORY,
                github.RepositoryCheckInput(repository=repo, branch=request.branch),
                summary="check the repository and its branch",
            )
            repo = repo.model_copy(update={"full_name": checked.full_name})

            await self._enter(
                "connect", f"Connecting {repo.full_name}@{checked.branch} for push-to-deploy"
            )
            await self._connect(saga, repo, checked.branch)
            await self._first_deploy(
                saga,
                target,
                deployment_id,
                repo,
                branch=checked.branch,
                commit_sha=checked.head_sha,
                trigger="import",
            )
            return ImportResult(
                bootstrap_id=request.bootstrap_id,
                status="done",
                stage=self._stage,
                app_id=request.app_id,
                repo_full_name=repo.full_name,
                deployment_id=deployment_id,
                branch=checked.branch,
                commit_sha=checked.head_sha,
            )
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            await self._end_undone(error, saga, deployment_id, free_slug_last=True)
