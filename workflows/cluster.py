"""Cluster steps shared by every workflow that changes an environment: one way to call the
cluster's task queue, to wait for a rollout, and to swap an image back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows import config_steps, policies, steps
    from workflows.policies import StepTimeouts


@dataclass(frozen=True)
class Cluster:
    """The target cluster's task queue and the limits its steps run under."""

    task_queue: str
    timeouts: StepTimeouts

    async def call(
        self, name: str, arg: Any, result_type: type | None = None, summary: str | None = None
    ) -> Any:
        return await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=self.timeouts.call,
            retry_policy=policies.KUBERNETES,
            task_queue=self.task_queue,
            summary=summary or name,
        )

    async def apply(
        self,
        app_id: str,
        target: steps.EnvironmentTarget,
        *,
        image_ref: str,
        port: int,
        health_path: str,
        host: str,
        replicas: int,
        variables: dict[str, str],
    ) -> None:
        """The environment's secrets, then its Deployment, Service and Ingress running the image
        (by digest) with the environment's variables; the Deployment reads the secrets by
        reference, never their values. Deploys, promotions and rollbacks all apply this way."""
        secret_name = steps.config_secret_name(target.app)
        spec = steps.ApplyEnvironmentInput(
            target=target,
            image_ref=image_ref,
            port=port,
            health_path=health_path,
            host=host,
            replicas=replicas,
            env=variables,
            secret_name=secret_name,
            progress_deadline_seconds=int(self.timeouts.rollout_seconds),
        )
        await self.call(
            config_steps.APPLY_SECRETS,
            config_steps.EnvironmentRef(
                app_id=app_id,
                environment=target.environment,
                namespace=target.namespace,
                secret_name=secret_name,
            ),
            list,
            "write the environment's secrets",
        )
        await self.call(
            steps.APPLY_ENVIRONMENT, spec, None, "apply the Deployment, Service and Ingress"
        )

    async def wait_for_rollout(self, target: steps.EnvironmentTarget) -> None:
        """Until every replica runs the new spec; heartbeats carry progress and cancellation."""
        limit = self.timeouts.rollout_seconds
        workflow.set_current_details(
            f"Waiting for the rollout in {target.namespace} (up to {limit:.0f}s)"
        )
        await workflow.execute_activity(
            steps.WAIT_FOR_ROLLOUT,
            steps.WaitForRolloutInput(target=target, timeout_seconds=limit),
            start_to_close_timeout=self.timeouts.rollout + timedelta(seconds=30),
            heartbeat_timeout=self.timeouts.heartbeat,
            retry_policy=policies.KUBERNETES,
            task_queue=self.task_queue,
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary="wait for the rollout",
        )

    async def swap_image(self, target: steps.EnvironmentTarget, image_ref: str) -> None:
        """Run `image_ref` (by digest) again and wait until it does."""
        workflow.set_current_details(f"Putting {image_ref} in place")
        await self.call(
            steps.SET_IMAGE,
            steps.SetImageInput(target=target, image_ref=image_ref),
            summary=f"set the image to {image_ref}",
        )
        await self.wait_for_rollout(target)
