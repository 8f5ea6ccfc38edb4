"""RemoveEnvironment: one environment taken out of an app's pipeline. Under the environment's
lock (so a rollback or promotion still finishing there ends first), its namespace is deleted,
then its records: policy, configuration, secrets and freeze windows. Deployments, promotions
and releases that ran there stay as history. Each step is idempotent: a run taken up after a
crash, or removing again after a failure, finishes what is left."""

from __future__ import annotations

from pydantic import Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import policies, search
    from workflows.calls import Steps, execute
    from workflows.contracts import kube, records
    from workflows.environment import AppEnvironment
    from workflows.errors import code_and_message, is_cancellation
    from workflows.locks import LockHolder, environment_lock
    from workflows.policies import StepTimeouts


class RemoveEnvironmentInput(AppEnvironment):
    requested_by: str
    kube_task_queue: str
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


def remove_environment_workflow_id(app_id: str, environment: str) -> str:
    return f"remove-environment:{app_id}:{environment}"


@workflow.defn(name="RemoveEnvironment")
class RemoveEnvironment:
    @workflow.run
    async def run(self, request: RemoveEnvironmentInput) -> None:
        self._request = request
        self._steps = Steps(request.timeouts)
        target = request.target()
        try:
            async with environment_lock(
                request.app_id,
                request.environment,
                "deletion",
                request.timeouts,
                on_wait=self._waiting_for,
            ):
                workflow.upsert_search_attributes([search.STAGE.value_set("delete")])
                workflow.set_current_details(f"Deleting namespace {target.namespace}")
                await execute(
                    kube.DELETE_ENVIRONMENT,
                    target,
                    start_to_close=request.timeouts.call,
                    retry=policies.KUBERNETES,
                    task_queue=request.kube_task_queue,
                    summary=f"delete namespace {target.namespace}",
                )
                workflow.set_current_details(f"Removing {request.environment} from the pipeline")
                await self._steps.record(
                    records.REMOVE_ENVIRONMENT,
                    records.EnvironmentRef(app_id=request.app_id, environment=request.environment),
                )
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            code, message = code_and_message(error, "REMOVE_FAILED")
            result = "cancelled" if is_cancellation(error) else "failed"
            workflow.set_current_details(f"{result}: {message}")
            await self._audit(result, {"error_code": code, "error_message": message})
            if is_cancellation(error):
                raise
            raise ApplicationError(message, type=code, non_retryable=True) from error
        workflow.set_current_details(f"{request.environment} is removed")
        await self._audit("done", {"namespace": target.namespace})

    async def _waiting_for(self, holder: LockHolder) -> None:
        workflow.set_current_details(f"Waiting for {holder.workflow_id} to let go")

    async def _audit(self, result: str, detail: dict[str, str]) -> None:
        request = self._request
        await self._steps.record(
            records.RECORD_AUDIT_EVENT,
            records.AuditEventInput(
                event_key=f"{workflow.info().workflow_id}:{workflow.info().run_id}:outcome",
                tenant_id=request.tenant_id,
                actor=request.requested_by,
                action="environment.remove",
                target=f"app:{request.app_slug}/{request.environment}",
                result=result,
                detail=detail,
            ),
        )
