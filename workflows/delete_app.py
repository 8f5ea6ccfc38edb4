"""DeleteApp: an app taken out of service for good. Runs still working on it are cancelled first
(when asked to force), then each environment's namespace is deleted under that environment's
lock, Shipyard's webhook and the git connection are removed, the repository is deleted only
when asked and only if Shipyard created it, and the app is marked deleted, which frees its
slug. Releases, deployments, promotions and the audit stay as history; images are left to
retention. Every step is idempotent, so a run taken up after a crash, or a new deletion after
one that failed or was cancelled, finishes what is left."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.calls import Steps, execute
    from workflows.contracts import github, kube, records
    from workflows.errors import code_and_message, is_cancellation
    from workflows.locks import LockHolder, environment_lock
    from workflows.policies import StepTimeouts


class DeleteAppInput(BaseModel):
    app_id: str
    tenant_id: str
    tenant_slug: str
    app_slug: str
    requested_by: str
    environments: list[kube.EnvironmentTarget]
    kube_task_queue: str
    # Shipyard's push webhook on the connected repository; None once disconnected.
    webhook: github.WebhookInput | None = None
    # Set only when the deletion was asked to take the repository along: the repository, and
    # the marker its bootstrap wrote, so one Shipyard did not create is never touched.
    repository: github.DeleteRepositoryInput | None = None
    # Runs still working on the app, cancelled first (a forced deletion).
    cancel_runs: list[str] = Field(default_factory=list)
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class DeleteAppResult(BaseModel):
    namespaces_deleted: list[str]
    repository_deleted: bool


def delete_app_workflow_id(app_id: str) -> str:
    return f"delete-app:{app_id}"


@workflow.defn(name="DeleteApp")
class DeleteApp:
    @workflow.run
    async def run(self, request: DeleteAppInput) -> DeleteAppResult:
        self._request = request
        self._steps = Steps(request.timeouts)
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(request.tenant_slug),
                search.APP.value_set(request.app_slug),
                search.STAGE.value_set("delete"),
            ]
        )
        try:
            for run_id in request.cancel_runs:
                await self._cancel(run_id)
            namespaces = []
            for target in request.environments:
                await self._delete_environment(target)
                namespaces.append(target.namespace)
            if request.webhook is not None:
                await self._disconnect(request.webhook)
            repository_deleted = False
            if request.repository is not None:
                repository_deleted = await self._delete_repository(request.repository)
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            # The app stays `deleting`: nothing new starts on it, and a new deletion finishes
            # what this one left.
            if is_cancellation(error):
                result, code, message = "cancelled", "CANCELLED", "the deletion was cancelled"
            else:
                code, message = code_and_message(error, "DELETE_FAILED")
                result, message = "failed", f"the deletion failed ({code}: {message})"
            workflow.set_current_details(message)
            await self._audit(result, {"error_code": code, "error_message": message})
            await self._steps.record(
                records.SET_APP_STATUS,
                records.AppStatusInput(
                    app_id=request.app_id,
                    status="deleting",
                    reason=f"{message}; delete again to finish it",
                ),
            )
            if is_cancellation(error):
                raise
            raise ApplicationError(message, type=code, non_retryable=True) from error
        workflow.set_current_details(f"Marking {request.app_slug} deleted")
        await self._audit(
            "done", {"namespaces": namespaces, "repository_deleted": repository_deleted}
        )
        # Last: once the app reads `deleted`, its slug may be taken again.
        await self._steps.record(
            records.SET_APP_STATUS, records.AppStatusInput(app_id=request.app_id, status="deleted")
        )
        workflow.set_current_details(f"{request.app_slug} is deleted")
        return DeleteAppResult(namespaces_deleted=namespaces, repository_deleted=repository_deleted)

    async def _cancel(self, workflow_id: str) -> None:
        workflow.set_current_details(f"Cancelling {workflow_id}")
        try:
            await workflow.get_external_workflow_handle(workflow_id).cancel()
        except ApplicationError:
            pass  # it ended meanwhile: nothing to cancel

    async def _delete_environment(self, target: kube.EnvironmentTarget) -> None:
        """Under the environment's lock, so a deploy, promotion or rollback still finishing
        (cancelled, or racing this deletion) ends before its namespace goes."""
        request = self._request
        async with environment_lock(
            request.app_id,
            target.environment,
            "deletion",
            request.timeouts,
            on_wait=self._waiting_for,
        ):
            workflow.upsert_search_attributes([search.ENV.value_set(target.environment)])
            workflow.set_current_details(f"Deleting namespace {target.namespace}")
            await execute(
                kube.DELETE_ENVIRONMENT,
                target,
                start_to_close=request.timeouts.call,
                retry=policies.KUBERNETES,
                task_queue=request.kube_task_queue,
                summary=f"delete namespace {target.namespace}",
            )

    async def _waiting_for(self, holder: LockHolder) -> None:
        workflow.set_current_details(f"Waiting for {holder.workflow_id} to let go")

    async def _disconnect(self, webhook: github.WebhookInput) -> None:
        workflow.set_current_details(f"Removing the webhook from {webhook.repository.full_name}")
        await self._steps.github(github.REMOVE_WEBHOOK, webhook, summary="remove the webhook")
        await self._steps.record(records.DELETE_GIT_CONNECTION, self._request.app_id)

    async def _delete_repository(self, repository: github.DeleteRepositoryInput) -> bool:
        workflow.set_current_details(f"Deleting {repository.repository.full_name}")
        return await self._steps.github(
            github.DELETE_REPOSITORY_MADE_HERE,
            repository,
            summary="delete the repository if Shipyard created it",
        )

    async def _audit(self, result: str, detail: dict[str, Any]) -> None:
        request = self._request
        await self._steps.record(
            records.RECORD_AUDIT_EVENT,
            records.AuditEventInput(
                event_key=f"{workflow.info().workflow_id}:{workflow.info().run_id}:outcome",
                tenant_id=request.tenant_id,
                actor=request.requested_by,
                action="app.delete",
                target=f"app:{request.app_slug}",
                result=result,
                detail=detail,
            ),
        )
