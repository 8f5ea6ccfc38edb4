"""ConnectRepository: (re)connect an existing app to a repository for push-to-deploy: the
installation must read the repository and its branch, then Shipyard's webhook is added and the
git connection written, so a crash midway finishes later; a failure or a cancel removes the
webhook it added, and nothing else in the repository is ever changed."""

from __future__ import annotations

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import search
    from workflows.calls import Steps
    from workflows.contracts import github, records
    from workflows.errors import code_and_message, is_cancellation
    from workflows.policies import StepTimeouts
    from workflows.saga import Saga


class ConnectInput(BaseModel):
    app_id: str
    app_slug: str
    tenant_id: str
    tenant_slug: str
    repo_full_name: str
    installation_id: int
    # None: the repository's default branch.
    branch: str | None = None
    webhook_url: str
    requested_by: str
    # The operator's step limits, as every run that calls GitHub takes them.
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class ConnectResult(BaseModel):
    app_id: str
    repo_full_name: str
    branch: str
    webhook_id: int


def connect_workflow_id(app_id: str) -> str:
    return f"connect:{app_id}"


@workflow.defn(name="ConnectRepository")
class ConnectRepository:
    @workflow.run
    async def run(self, request: ConnectInput) -> ConnectResult:
        steps = Steps(request.timeouts)
        repo = github.RepositoryRef(
            full_name=request.repo_full_name, installation_id=request.installation_id
        )
        saga = Saga()
        try:
            self._show("check", f"Checking that the App can read {repo.full_name}")
            checked = await steps.github(
                github.CHECK_REPOSITORY,
                github.RepositoryCheckInput(repository=repo, branch=request.branch),
                summary="check the repository and its branch",
            )
            repo = repo.model_copy(update={"full_name": checked.full_name})

            self._show("connect", f"Adding the push webhook to {repo.full_name}")
            webhook = github.WebhookInput(repository=repo, url=request.webhook_url)
            saga.register(
                "remove the webhook",
                lambda: steps.github(github.REMOVE_WEBHOOK, webhook, compensation=True),
            )
            hook_id = await steps.github(github.ENSURE_WEBHOOK, webhook)
            self._show("connect", f"Writing the git connection to {repo.full_name}")
            await steps.record(
                records.SAVE_GIT_CONNECTION,
                records.GitConnectionInput(
                    app_id=request.app_id,
                    repo_full_name=repo.full_name,
                    branch=checked.branch,
                    installation_id=repo.installation_id,
                    webhook_id=hook_id,
                ),
            )
            self._show("done", f"Pushes to {repo.full_name}@{checked.branch} deploy")
            await self._audit(steps, request, "done", {"branch": checked.branch})
            return ConnectResult(
                app_id=request.app_id,
                repo_full_name=repo.full_name,
                branch=checked.branch,
                webhook_id=hook_id,
            )
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            cancelled = is_cancellation(error)
            code, message = code_and_message(error, "CONNECT_FAILED")
            undo_failures = await saga.compensate()
            if undo_failures:
                message += "; could not undo: " + "; ".join(
                    f"{failure.name} ({failure.reason})" for failure in undo_failures
                )
            status = "cancelled" if cancelled else "failed"
            workflow.set_current_details(f"{status}: {message}")
            await self._audit(steps, request, status, {"error_code": code, "error": message})
            if cancelled:
                raise
            raise ApplicationError(message, type=code, non_retryable=True) from error

    @staticmethod
    def _show(stage: str, details: str) -> None:
        workflow.upsert_search_attributes([search.STAGE.value_set(stage)])
        workflow.set_current_details(details)

    @staticmethod
    async def _audit(
        steps: Steps, request: ConnectInput, result: str, detail: dict[str, str]
    ) -> None:
        await steps.record(
            records.RECORD_AUDIT_EVENT,
            records.AuditEventInput(
                event_key=f"{workflow.info().workflow_id}:{workflow.info().run_id}",
                tenant_id=request.tenant_id,
                actor=request.requested_by,
                action="git_connection.connect",
                target=f"repo:{request.repo_full_name}",
                result=result,
                detail={"app_id": request.app_id, **detail},
            ),
        )
