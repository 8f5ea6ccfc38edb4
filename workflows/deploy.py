"""DeployRelease: resolve a commit, build and push its image, roll it out by digest, record it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows import policies, records, search, steps
    from workflows.errors import code_and_message, is_cancellation
    from workflows.policies import StepTimeouts


class DeployInput(BaseModel):
    deployment_id: str
    tenant_id: str
    tenant_slug: str
    app_id: str
    app_slug: str
    environment: str
    namespace: str
    host: str
    repo_full_name: str
    installation_id: int
    branch: str = "main"
    commit_sha: str | None = None
    trigger: str = "manual"
    force_rebuild: bool = False
    replicas: int = 1
    kube_task_queue: str
    timeouts: StepTimeouts = Field(default_factory=StepTimeouts)


class DeployResult(BaseModel):
    deployment_id: str
    status: str  # succeeded | failed | cancelled
    commit_sha: str | None = None
    image_ref: str | None = None
    release_version: int | None = None
    error_code: str | None = None
    error_message: str | None = None


def deploy_workflow_id(app_id: str, environment: str) -> str:
    return f"deploy:{app_id}:{environment}"


@workflow.defn(name="DeployRelease")
class DeployRelease:
    def __init__(self) -> None:
        self._status = "pending"
        self._stage = "resolve"

    @workflow.query
    def progress(self) -> dict[str, str]:
        return {"status": self._status, "stage": self._stage}

    @workflow.run
    async def run(self, request: DeployInput) -> DeployResult:
        self._request = request
        workflow.upsert_search_attributes(
            [
                search.TENANT.value_set(request.tenant_slug),
                search.APP.value_set(request.app_slug),
                search.ENV.value_set(request.environment),
                search.STAGE.value_set("resolve"),
            ]
        )
        await self._record(
            records.START_DEPLOYMENT,
            records.DeploymentStart(
                deployment_id=request.deployment_id,
                tenant_id=request.tenant_id,
                app_id=request.app_id,
                environment=request.environment,
                commit_sha=request.commit_sha or "",
                commits=[request.commit_sha] if request.commit_sha else [],
                trigger=request.trigger,
                workflow_id=workflow.info().workflow_id,
            ),
        )
        target = steps.EnvironmentTarget(
            tenant=request.tenant_slug,
            app=request.app_slug,
            environment=request.environment,
            namespace=request.namespace,
            name=request.app_slug,
        )
        previous_image: str | None = None
        rollout_began = False
        commit: str | None = request.commit_sha
        image_ref: str | None = None
        try:
            commit = await self._resolve_commit()
            image_ref, port, health_path, digest = await self._image_for(commit)
            await self._move("deploying", "deploy", f"Rolling out {image_ref}")
            current = await self._kube(
                steps.CURRENT_IMAGE, target, steps.CurrentImageResult, "read the running image"
            )
            previous_image = current.image_ref
            rollout_began = True
            await self._kube(
                steps.APPLY_ENVIRONMENT,
                steps.ApplyEnvironmentInput(
                    target=target,
                    image_ref=image_ref,
                    port=port,
                    health_path=health_path,
                    host=request.host,
                    replicas=request.replicas,
                    progress_deadline_seconds=int(request.timeouts.rollout_seconds),
                ),
                None,
                "apply the Deployment, Service and Ingress",
            )
            await self._wait_for_rollout(target)
            release = await self._record(
                records.RECORD_RELEASE,
                records.ReleaseInput(
                    deployment_id=request.deployment_id,
                    app_id=request.app_id,
                    environment=request.environment,
                    commit_sha=commit,
                    image_digest=digest,
                    image_ref=image_ref,
                ),
                result_type=records.ReleaseResult,
            )
            await self._move(
                "succeeded",
                "done",
                f"Release v{release.version} runs in {request.environment}",
                image_ref=image_ref,
                finished=True,
            )
            return DeployResult(
                deployment_id=request.deployment_id,
                status="succeeded",
                commit_sha=commit,
                image_ref=image_ref,
                release_version=release.version,
            )
        except BaseException as error:
            cancelled = is_cancellation(error)
            code, message = code_and_message(error, "DEPLOY_FAILED")
            if rollout_began:
                await self._restore(target, previous_image)
            status = "cancelled" if cancelled else "failed"
            reason = "cancelled by request" if cancelled else f"{code}: {message}"
            await self._move(status, self._stage, reason, failure_reason=reason, finished=True)
            if cancelled:
                raise
            raise ApplicationError(message, type=code, non_retryable=True) from error

    async def _resolve_commit(self) -> str:
        request = self._request
        await self._move("pending", "resolve", f"Resolving the head of {request.branch}")
        result = await workflow.execute_activity(
            steps.RESOLVE_COMMIT,
            steps.ResolveCommitInput(
                repository=self._repository(), branch=request.branch, commit_sha=request.commit_sha
            ),
            result_type=steps.CommitResult,
            start_to_close_timeout=request.timeouts.call,
            retry_policy=policies.GIT,
            summary="resolve the commit to deploy",
        )
        return result.sha

    async def _image_for(self, commit: str) -> tuple[str, int, str, str]:
        """(image reference by digest, port, health path, digest) of the commit's image."""
        request = self._request
        target = steps.ImageTarget(
            repository=f"{request.tenant_slug}/{request.app_slug}", tag=commit
        )
        await self._move("building", "build", f"Building {commit[:12]}", commit_sha=commit)
        built = await workflow.execute_activity(
            steps.BUILD_IMAGE,
            steps.BuildImageInput(source=self._repository(), commit_sha=commit, target=target),
            result_type=steps.BuiltImage,
            start_to_close_timeout=request.timeouts.build,
            heartbeat_timeout=request.timeouts.heartbeat,
            retry_policy=policies.REGISTRY,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=f"build the image of {commit[:12]}",
        )
        await self._move("pushing", "push", f"Pushing {target.repository}:{commit[:12]}")
        pushed = await workflow.execute_activity(
            steps.PUSH_IMAGE,
            built,
            result_type=steps.PushImageResult,
            start_to_close_timeout=request.timeouts.call,
            retry_policy=policies.REGISTRY,
            summary="push the image manifest",
        )
        return pushed.image_ref, built.port, built.health_path, pushed.digest

    async def _wait_for_rollout(self, target: steps.EnvironmentTarget) -> None:
        request = self._request
        limit = request.timeouts.rollout_seconds
        workflow.set_current_details(
            f"Waiting for the rollout in {target.namespace} (up to {limit:.0f}s)"
        )
        await workflow.execute_activity(
            steps.WAIT_FOR_ROLLOUT,
            steps.WaitForRolloutInput(
                target=target, timeout_seconds=request.timeouts.rollout_seconds
            ),
            start_to_close_timeout=request.timeouts.rollout + timedelta(seconds=30),
            heartbeat_timeout=request.timeouts.heartbeat,
            retry_policy=policies.KUBERNETES,
            task_queue=request.kube_task_queue,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary="wait for the rollout",
        )

    async def _restore(self, target: steps.EnvironmentTarget, previous_image: str | None) -> None:
        """Put back what ran before; a first deploy had nothing, so there is nothing to restore."""
        if previous_image is None:
            return
        workflow.set_current_details(f"Restoring the previous image {previous_image}")
        await self._kube(
            steps.SET_IMAGE,
            steps.SetImageInput(target=target, image_ref=previous_image),
            None,
            "restore the previous image",
        )
        await self._wait_for_rollout(target)

    def _repository(self) -> steps.RepositoryRef:
        return steps.RepositoryRef(
            full_name=self._request.repo_full_name, installation_id=self._request.installation_id
        )

    async def _kube(self, name: str, arg: Any, result_type: type | None, summary: str) -> Any:
        return await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=self._request.timeouts.call,
            retry_policy=policies.KUBERNETES,
            task_queue=self._request.kube_task_queue,
            summary=summary,
        )

    async def _move(
        self,
        status: str,
        stage: str,
        details: str,
        *,
        image_ref: str | None = None,
        commit_sha: str | None = None,
        failure_reason: str | None = None,
        finished: bool = False,
    ) -> None:
        self._status, self._stage = status, stage
        workflow.upsert_search_attributes([search.STAGE.value_set(stage)])
        workflow.set_current_details(details)
        await self._record(
            records.UPDATE_DEPLOYMENT,
            records.DeploymentProgress(
                deployment_id=self._request.deployment_id,
                status=status,
                stage=stage,
                image_ref=image_ref,
                commit_sha=commit_sha,
                failure_reason=failure_reason,
                log_line=f"[{workflow.now().isoformat(timespec='seconds')}] {details}",
                finished=finished,
            ),
        )

    async def _record(self, name: str, arg: Any, result_type: type | None = None) -> Any:
        return await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=policies.DATABASE,
            summary=name,
        )
