"""Cluster steps shared by every workflow that changes an environment: one way to call the
cluster's task queue, to apply an environment, to wait for a rollout, and to put back the image
that ran before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, TypeVar

from temporalio import workflow
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from workflows import policies
    from workflows.calls import execute
    from workflows.contracts import config, kube
    from workflows.contracts.activity import Activity
    from workflows.policies import StepTimeouts

In = TypeVar("In")
Out = TypeVar("Out")


class Placement(Protocol):
    """Where and how an app environment runs: every deploy, promotion and rollback input."""

    @property
    def app_id(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def replicas(self) -> int: ...
    @property
    def variables(self) -> dict[str, str]: ...
    def target(self) -> kube.EnvironmentTarget: ...


class Serving(Protocol):
    """What an image says of itself that its Deployment needs."""

    @property
    def port(self) -> int: ...
    @property
    def health_path(self) -> str: ...


@dataclass(frozen=True)
class Cluster:
    """The target cluster's task queue and the limits its steps run under."""

    task_queue: str
    timeouts: StepTimeouts

    async def call(self, activity: Activity[In, Out], arg: In, summary: str | None = None) -> Out:
        return await execute(
            activity,
            arg,
            start_to_close=self.timeouts.call,
            retry=policies.KUBERNETES,
            task_queue=self.task_queue,
            summary=summary,
        )

    async def apply(self, placement: Placement, image_ref: str, image: Serving) -> None:
        """The environment's secrets, then its Deployment, Service and Ingress running the image
        (by digest) with the environment's variables; the Deployment reads the secrets by
        reference, never their values. Deploys, promotions and rollbacks all apply this way."""
        target = placement.target()
        secret_name = kube.config_secret_name(target.app)
        await self.call(
            config.APPLY_SECRETS,
            config.EnvironmentRef(
                app_id=placement.app_id,
                environment=target.environment,
                namespace=target.namespace,
                secret_name=secret_name,
            ),
            "write the environment's secrets",
        )
        await self.call(
            kube.APPLY_ENVIRONMENT,
            kube.ApplyEnvironmentInput(
                target=target,
                image_ref=image_ref,
                port=image.port,
                health_path=image.health_path,
                host=placement.host,
                replicas=placement.replicas,
                env=placement.variables,
                secret_name=secret_name,
                progress_deadline_seconds=int(self.timeouts.rollout_seconds),
            ),
            "apply the Deployment, Service and Ingress",
        )

    async def wait_for_rollout(self, target: kube.EnvironmentTarget) -> None:
        """Until every replica runs the new spec; heartbeats carry progress and cancellation."""
        limit = self.timeouts.rollout_seconds
        workflow.set_current_details(
            f"Waiting for the rollout in {target.namespace} (up to {limit:.0f}s)"
        )
        await execute(
            kube.WAIT_FOR_ROLLOUT,
            kube.WaitForRolloutInput(target=target, timeout_seconds=limit),
            start_to_close=self.timeouts.rollout + timedelta(seconds=30),
            heartbeat=self.timeouts.heartbeat,
            retry=policies.KUBERNETES,
            task_queue=self.task_queue,
            cancellation=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary="wait for the rollout",
        )

    async def current_image(self, target: kube.EnvironmentTarget) -> str | None:
        running = await self.call(kube.CURRENT_IMAGE, target, "read the running image")
        return running.image_ref

    async def put_back(self, target: kube.EnvironmentTarget, image_ref: str) -> None:
        """Run `image_ref` (by digest), the image that ran before, again and wait until it
        does: how a failed or cancelled deploy, promotion or rollback undoes its change."""
        workflow.set_current_details(f"Putting {image_ref} in place")
        await self.call(
            kube.SET_IMAGE,
            kube.SetImageInput(target=target, image_ref=image_ref),
            f"set the image to {image_ref}",
        )
        await self.wait_for_rollout(target)
