"""Rollback: put an earlier release of an app back in one environment — its image by digest, with
the environment's current configuration (variables and secrets), wait for the rollout, record —
under the environment lock. It never builds; a rollout that fails, or a cancel after the swap,
puts back the image that ran before."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows import search
    from workflows.calls import Steps
    from workflows.cluster import Cluster
    from workflows.contracts import kube, records
    from workflows.deploy import CANCEL_DEPLOYMENT_UPDATE
    from workflows.environment import AppEnvironment
    from workflows.errors import code_and_message, is_cancellation, stop_if_cancelled
    from workflows.images import release_image
    from workflows.locks import environment_lock
    from workflows.policies import StepTimeouts
    from workflows.progress import report_deployment

# Runs recorded before this swapped only the image; they replay that way.
ROLLBACK_APPLIES_CONFIG = "rollback-applies-config"
# Runs from before this recorded their start outside the try, so a cancel arriving then ended
# the run at once and left its record open; they replay that way.
A_CANCEL_AT_THE_START_ENDS_THE_RECORD = "a-cancel-at-the-start-ends-the-record"


class RollbackInput(AppEnvironment):
    # The rollback's deployment record (trigger `rollback`): its status, stage and log.
    deployment_id: str
    release_id: str
    version: int
    image_ref: str  # by digest
    image_digest: str
    commit_sha: str
    requested_by: str
    reason: str = ""
    # The environment as it is configured now: applied with the earlier image.
    host: str = ""
    replicas: int = 1
    variables: dict[str, str] = Field(default_factory=dict)
    kube_task_queue: str
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class RollbackResult(BaseModel):
    deployment_id: str
    status: str  # succeeded | failed | cancelled
    version: int
    image_ref: str
    previous_image: str | None = None
    error_code: str | None = None
    error_message: str | None = None


def rollback_workflow_id(app_id: str, environment: str) -> str:
    return f"rollback:{app_id}:{environment}"


class RollbackFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@workflow.defn(name="Rollback")
class Rollback:
    @workflow.init
    def __init__(self, request: RollbackInput) -> None:
        self._request = request
        self._cluster = Cluster(request.kube_task_queue, request.timeouts)
        self._steps = Steps(request.timeouts)
        self._status = "pending"
        self._stage = "lock"
        self._previous_image: str | None = None
        self._task: asyncio.Task[RollbackResult] | None = None
        self._cancel_requested = False

    @workflow.update(name=CANCEL_DEPLOYMENT_UPDATE)
    async def cancel_deployment(self, deployment_id: str) -> None:
        """The deployments API's cancel, for the rollback's deployment record: stop, and put
        back the image that ran before if the swap had begun."""
        self._cancel_requested = True
        if self._task is not None:
            self._task.cancel()
        await workflow.wait_condition(lambda: self._status in ("succeeded", "failed", "cancelled"))

    @cancel_deployment.validator
    def _only_this_one_while_running(self, deployment_id: str) -> None:
        if deployment_id != self._request.deployment_id or self._status in (
            "succeeded", "failed", "cancelled",
        ):  # fmt: skip
            raise ApplicationError(
                f"deployment {deployment_id} is not in progress", type="DEPLOYMENT_NOT_RUNNING"
            )

    @workflow.run
    async def run(self, request: RollbackInput) -> RollbackResult:
        self._applies_config = workflow.patched(ROLLBACK_APPLIES_CONFIG)
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(request.tenant_slug),
                search.APP.value_set(request.app_slug),
                search.ENV.value_set(request.environment),
                search.STAGE.value_set("lock"),
            ]
        )
        self._task = asyncio.create_task(self._rollback())
        try:
            result = await self._task
        except asyncio.CancelledError:
            if workflow.cancellation_reason() is not None:
                raise  # the workflow itself was cancelled: it ends cancelled
            result = self._result("cancelled")
        except RollbackFailed as failed:
            await workflow.wait_condition(workflow.all_handlers_finished)
            raise ApplicationError(failed.message, type=failed.code, non_retryable=True) from None
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _rollback(self) -> RollbackResult:
        request = self._request
        started_inside = workflow.patched(A_CANCEL_AT_THE_START_ENDS_THE_RECORD)
        if not started_inside:
            await self._record_start()
        try:
            if started_inside:
                await self._record_start()
            async with environment_lock(
                request.app_id, request.environment, "rollback", request.timeouts
            ):
                stop_if_cancelled()
                await self._swap_and_record()
        except GeneratorExit:
            raise  # the worker evicted the run from its cache: it goes on elsewhere
        except BaseException as error:
            cancelled = is_cancellation(error) or self._cancel_requested
            code, message = code_and_message(error, "ROLLBACK_FAILED")
            status = "cancelled" if cancelled else "failed"
            reason = "cancelled by request" if cancelled else f"{code}: {message}"
            # Audited before the record says it ended, so whoever sees the end sees the audit.
            await self._audit(status, {"error_code": None if cancelled else code})
            await self._move(status, self._stage, reason, failure_reason=reason, finished=True)
            if cancelled:
                raise asyncio.CancelledError("the rollback was cancelled") from error
            raise RollbackFailed(code, message) from error
        await self._audit("succeeded", {})
        await self._move(
            "succeeded",
            "done",
            f"Release v{request.version} runs again in {request.environment}",
            finished=True,
        )
        return self._result("succeeded")

    async def _record_start(self) -> None:
        request = self._request
        await self._steps.record(
            records.START_DEPLOYMENT,
            records.DeploymentStart(
                deployment_id=request.deployment_id,
                tenant_id=request.tenant_id,
                app_id=request.app_id,
                environment=request.environment,
                commit_sha=request.commit_sha,
                commits=[request.commit_sha],
                trigger="rollback",
                workflow_id=workflow.info().workflow_id,
                run_id=workflow.info().run_id,
            ),
        )
        await self._move("pending", "lock", f"Locking {request.environment} for the rollback")

    async def _swap_and_record(self) -> None:
        request = self._request
        target = self._request.target()
        await self._move("deploying", "deploy", f"Reading what runs in {request.namespace}")
        current = await self._cluster.current_image(target)
        if current is None:
            raise ApplicationError(
                f"nothing runs in {request.environment} to roll back",
                type="ROLLBACK_REFUSED",
                non_retryable=True,
            )
        self._previous_image = current
        stop_if_cancelled()
        await self._move(
            "deploying",
            "deploy",
            f"Rolling back to v{request.version}: {request.image_ref} replaces {current}",
            image_ref=request.image_ref,
        )
        try:
            if self._applies_config:
                await self._apply_with_config()
            else:
                await self._cluster.call(
                    kube.SET_IMAGE,
                    kube.SetImageInput(target=target, image_ref=request.image_ref),
                    f"swap the image for v{request.version}",
                )
            await self._cluster.wait_for_rollout(target)
            stop_if_cancelled()
            await self._steps.record(
                records.RECORD_RELEASE,
                records.ReleaseInput(
                    deployment_id=request.deployment_id,
                    app_id=request.app_id,
                    environment=request.environment,
                    commit_sha=request.commit_sha,
                    image_digest=request.image_digest,
                    image_ref=request.image_ref,
                    via="rollback",
                ),
            )
        except GeneratorExit:
            raise
        except BaseException as error:
            await self._restore(target, current, error)
            raise

    async def _apply_with_config(self) -> None:
        """The earlier image with the environment's configuration of today: a variable or a
        secret changed since that release ran is what runs after the rollback."""
        request = self._request
        image = await release_image(
            self._steps,
            request.image_ref,
            request.commit_sha,
            request.image_digest,
            request.version,
        )
        await self._cluster.apply(request, request.image_ref, image)

    async def _restore(
        self, target: kube.EnvironmentTarget, previous_image: str, error: BaseException
    ) -> None:
        """Put back the image that ran before and wait until it runs again; a restore that
        fails too is told alongside the original failure, which stays the reason."""
        await self._move(
            self._status, "restore", f"Restoring the image that ran before: {previous_image}"
        )
        try:
            await self._cluster.put_back(target, previous_image)
        except Exception as restore_error:
            code, message = code_and_message(error, "ROLLBACK_FAILED")
            _, restore_message = code_and_message(restore_error, "ROLLBACK_FAILED")
            raise ApplicationError(
                f"{message}; restoring {previous_image} failed too: {restore_message}",
                type=code,
                non_retryable=True,
            ) from error

    def _result(self, status: str) -> RollbackResult:
        return RollbackResult(
            deployment_id=self._request.deployment_id,
            status=status,
            version=self._request.version,
            image_ref=self._request.image_ref,
            previous_image=self._previous_image,
        )

    async def _move(
        self,
        status: str,
        stage: str,
        details: str,
        *,
        image_ref: str | None = None,
        failure_reason: str | None = None,
        finished: bool = False,
    ) -> None:
        self._status, self._stage = status, stage
        await report_deployment(
            self._steps, self._request.deployment_id, status, stage, details,
            image_ref=image_ref, failure_reason=failure_reason, finished=finished,
        )  # fmt: skip

    async def _audit(self, result: str, detail: dict[str, Any]) -> None:
        request = self._request
        await self._steps.record(
            records.RECORD_AUDIT_EVENT,
            records.AuditEventInput(
                event_key=f"rollback:{request.deployment_id}",
                tenant_id=request.tenant_id,
                actor=request.requested_by,
                action="environment.rollback",
                target=f"environment:{request.app_id}/{request.environment}",
                result=result,
                detail={
                    "version": request.version,
                    "image_ref": request.image_ref,
                    "previous_image": self._previous_image,
                    "reason": request.reason,
                    "workflow_id": workflow.info().workflow_id,
                    **detail,
                },
            ),
        )
