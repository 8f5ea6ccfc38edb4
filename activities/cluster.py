"""Activities on an app environment in Kubernetes: apply, wait for the rollout, swap, delete."""

from __future__ import annotations

from temporalio import activity

from activities.failures import as_activity_failures
from clients.kube import AppEnvironmentSpec, KubeClient, RolloutProgress
from workflows import promotion_steps, steps


class ClusterActivities:
    """Synchronous (the kubernetes client is), so they run in the worker's thread pool."""

    def __init__(self, kube: KubeClient, base_domain: str) -> None:
        self._kube = kube
        self._base_domain = base_domain

    @activity.defn(name=steps.APPLY_ENVIRONMENT)
    def apply_environment(self, request: steps.ApplyEnvironmentInput) -> int:
        target = request.target
        subdomain, _, _ = request.host.partition(".")
        spec = AppEnvironmentSpec(
            namespace=target.namespace,
            tenant=target.tenant,
            app=target.name,
            environment=target.environment,
            image=request.image_ref,
            port=request.port,
            health_path=request.health_path,
            replicas=request.replicas,
            subdomain=subdomain,
            base_domain=self._base_domain,
            env=request.env,
            env_secret_name=request.secret_name,
            progress_deadline_seconds=request.progress_deadline_seconds,
        )
        with as_activity_failures():
            return self._kube.apply_app_environment(spec).generation

    @activity.defn(name=steps.WAIT_FOR_ROLLOUT)
    def wait_for_rollout(self, request: steps.WaitForRolloutInput) -> str:
        def report(progress: RolloutProgress) -> None:
            activity.heartbeat(progress.message)

        target = request.target
        # Heartbeat well inside the heartbeat timeout: heartbeats also carry cancellation.
        heartbeat_timeout = activity.info().heartbeat_timeout
        report_every = heartbeat_timeout.total_seconds() / 3 if heartbeat_timeout else 5.0
        with as_activity_failures():
            done = self._kube.wait_for_rollout(
                target.namespace,
                target.name,
                request.timeout_seconds,
                on_progress=report,
                report_every=report_every,
            )
        return done.message

    @activity.defn(name=steps.CURRENT_IMAGE)
    def current_image(self, target: steps.EnvironmentTarget) -> steps.CurrentImageResult:
        with as_activity_failures():
            return steps.CurrentImageResult(
                image_ref=self._kube.current_image(target.namespace, target.name)
            )

    @activity.defn(name=steps.SET_IMAGE)
    def set_image(self, request: steps.SetImageInput) -> int:
        with as_activity_failures():
            return self._kube.set_image(
                request.target.namespace, request.target.name, request.image_ref
            )

    @activity.defn(name=promotion_steps.CHECK_HEALTH)
    def check_health(self, target: steps.EnvironmentTarget) -> promotion_steps.HealthReport:
        with as_activity_failures():
            diagnosis = self._kube.diagnose(target.namespace, target.name)
        return promotion_steps.HealthReport(healthy=diagnosis.healthy, summary=diagnosis.summary)

    @activity.defn(name=steps.DELETE_ENVIRONMENT)
    def delete_environment(self, target: steps.EnvironmentTarget) -> None:
        with as_activity_failures():
            self._kube.delete_app_environment(target.namespace)
