"""Activities on an app environment in Kubernetes: apply, wait for the rollout, swap, delete."""

from __future__ import annotations

import time

from temporalio import activity

from activities.failures import as_activity_failures
from clients.kube import AppEnvironmentSpec, KubeClient, RolloutProgress
from core import metrics
from workflows.contracts import kube as contract


class KubeActivities:
    """Synchronous (the kubernetes client is), so they run in the worker's thread pool."""

    def __init__(self, kube: KubeClient, base_domain: str) -> None:
        self._kube = kube
        self._base_domain = base_domain

    @activity.defn(name=contract.APPLY_ENVIRONMENT.name)
    def apply_environment(self, request: contract.ApplyEnvironmentInput) -> int:
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

    @activity.defn(name=contract.WAIT_FOR_ROLLOUT.name)
    def wait_for_rollout(self, request: contract.WaitForRolloutInput) -> str:
        def report(progress: RolloutProgress) -> None:
            activity.heartbeat(progress.message)

        target = request.target
        # Heartbeat well inside the heartbeat timeout: heartbeats also carry cancellation.
        heartbeat_timeout = activity.info().heartbeat_timeout
        report_every = heartbeat_timeout.total_seconds() / 3 if heartbeat_timeout else 5.0
        started = time.monotonic()
        outcome = "failed"
        try:
            with as_activity_failures():
                done = self._kube.wait_for_rollout(
                    target.namespace,
                    target.name,
                    request.timeout_seconds,
                    on_progress=report,
                    report_every=report_every,
                )
            outcome = "succeeded"
        finally:
            seconds = time.monotonic() - started
            metrics.rollout_took(target.tenant, target.environment, seconds, outcome)
        return done.message

    @activity.defn(name=contract.CURRENT_IMAGE.name)
    def current_image(self, target: contract.EnvironmentTarget) -> contract.CurrentImageResult:
        with as_activity_failures():
            return contract.CurrentImageResult(
                image_ref=self._kube.current_image(target.namespace, target.name)
            )

    @activity.defn(name=contract.SET_IMAGE.name)
    def set_image(self, request: contract.SetImageInput) -> int:
        with as_activity_failures():
            return self._kube.set_image(
                request.target.namespace, request.target.name, request.image_ref
            )

    @activity.defn(name=contract.CHECK_HEALTH.name)
    def check_health(self, target: contract.EnvironmentTarget) -> contract.HealthReport:
        with as_activity_failures():
            diagnosis = self._kube.diagnose(target.namespace, target.name)
        return contract.HealthReport(healthy=diagnosis.healthy, summary=diagnosis.summary)

    @activity.defn(name=contract.DELETE_ENVIRONMENT.name)
    def delete_environment(self, target: contract.EnvironmentTarget) -> None:
        with as_activity_failures():
            self._kube.delete_app_environment(target.namespace)
