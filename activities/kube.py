"""Kubernetes client for app environments: apply, roll out, diagnose, read logs, delete.

Wraps the official `kubernetes` client, built from a kubeconfig and context (or in-cluster
credentials). Knows nothing of Temporal: failures are domain exceptions that say whether a
retry can help (`KubeUnavailable`) or not (`KubeRejected`, `RolloutFailed`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from pydantic import BaseModel, Field, field_validator

FIELD_MANAGER = "shipyard"
CONTAINER_NAME = "app"
DEFAULT_REQUEST_TIMEOUT = 15.0
# Longest a watch waits without news, so `on_progress` (an activity heartbeat) keeps beating.
PROGRESS_INTERVAL_SECONDS = 5.0
RECENT_EVENTS = 10
APPLY = "application/apply-patch+yaml"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_TENANT = "shipyard.dev/tenant"
LABEL_APP = "shipyard.dev/app"
LABEL_ENVIRONMENT = "shipyard.dev/environment"


# -- errors --------------------------------------------------------------------------------


class KubeError(Exception):
    """Kubernetes refused or failed a request; `code` names the fact for the API."""

    retryable = False

    def __init__(self, message: str, code: str = "KUBE_ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class KubeUnavailable(KubeError):
    """The API server could not be reached or failed on its side (network, 429, 5xx)."""

    retryable = True

    def __init__(self, message: str, code: str = "KUBE_UNAVAILABLE") -> None:
        super().__init__(message, code)


class KubeConfigError(KubeError):
    """The kubeconfig, context or TLS trust is wrong: fix the configuration, then retry."""

    def __init__(self, message: str, code: str = "KUBE_CONFIG_INVALID") -> None:
        super().__init__(message, code)


class KubeRejected(KubeError):
    """The API server answered 4xx: the request itself is wrong, retrying will not help."""

    def __init__(
        self, message: str, status: int, reason: str = "", code: str = "KUBE_REJECTED"
    ) -> None:
        super().__init__(message, code)
        self.status = status
        self.reason = reason


class KubeNotFound(KubeRejected):
    def __init__(self, message: str, reason: str = "NotFound") -> None:
        super().__init__(message, 404, reason, "KUBE_NOT_FOUND")


class KubeConflict(KubeRejected):
    def __init__(self, message: str, reason: str = "Conflict") -> None:
        super().__init__(message, 409, reason, "KUBE_CONFLICT")


class KubeAuthError(KubeRejected):
    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message, status, reason, "KUBE_AUTH_FAILED")


# -- what goes in and out ------------------------------------------------------------------


class ResourceSettings(BaseModel):
    cpu_request: str = "50m"
    memory_request: str = "64Mi"
    cpu_limit: str = "500m"
    memory_limit: str = "256Mi"


class AppEnvironmentSpec(BaseModel):
    """Everything that makes one app run in one environment, without any secret value."""

    namespace: str
    tenant: str
    app: str = Field(description="the app slug; also the Deployment, Service and Ingress name")
    environment: str
    image: str = Field(description="registry/repository@sha256:<digest>")
    port: int = Field(default=8080, ge=1, le=65535)
    health_path: str = "/healthz"
    replicas: int = Field(default=1, ge=0)
    subdomain: str
    base_domain: str
    env: dict[str, str] = Field(default_factory=dict)
    env_secret_name: str | None = Field(
        default=None, description="a Secret in the namespace whose keys become variables"
    )
    image_pull_secret: str | None = None
    progress_deadline_seconds: int = Field(default=600, ge=1)
    resources: ResourceSettings = Field(default_factory=ResourceSettings)
    annotations: dict[str, str] = Field(
        default_factory=dict, description="on the Deployment only, so they cause no rollout"
    )
    ingress_class_name: str | None = None

    @field_validator("image")
    @classmethod
    def _by_digest(cls, value: str) -> str:
        if "@sha256:" not in value:
            raise ValueError("the image must be referenced by digest (repository@sha256:...)")
        return value

    @property
    def host(self) -> str:
        return f"{self.subdomain}.{self.base_domain}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_NAME: self.app,
            LABEL_MANAGED_BY: "shipyard",
            LABEL_TENANT: self.tenant,
            LABEL_APP: self.app,
            LABEL_ENVIRONMENT: self.environment,
        }


class AppliedEnvironment(BaseModel):
    namespace: str
    deployment: str
    service: str
    ingress: str
    host: str
    image: str
    generation: int
    deployment_uid: str


class RolloutProgress(BaseModel):
    """Where a Deployment's rollout stands; `message` reads like "2/3 pods ready"."""

    namespace: str
    name: str
    generation: int
    observed_generation: int
    replicas: int
    updated: int
    ready: int
    available: int
    done: bool
    message: str


class RolloutFailed(KubeError):
    """The rollout did not finish: deadline exceeded on the cluster, or our timeout passed."""

    def __init__(self, message: str, reason: str, diagnosis: Diagnosis | None = None) -> None:
        super().__init__(message, "ROLLOUT_FAILED")
        self.reason = reason
        self.diagnosis = diagnosis


class ConditionReport(BaseModel):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class PodReport(BaseModel):
    name: str
    phase: str
    ready: bool
    restart_count: int
    image: str | None = None
    image_id: str | None = None
    waiting_reason: str | None = None
    waiting_message: str | None = None
    last_exit_code: int | None = None


class EventReport(BaseModel):
    type: str
    reason: str
    message: str
    object: str
    count: int
    last_seen: datetime.datetime | None = None


class Diagnosis(BaseModel):
    namespace: str
    name: str
    found: bool
    healthy: bool
    summary: str
    image: str | None = None
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    conditions: list[ConditionReport] = Field(default_factory=list)
    pods: list[PodReport] = Field(default_factory=list)
    events: list[EventReport] = Field(default_factory=list)


class LogLine(BaseModel):
    pod: str
    container: str
    timestamp: datetime.datetime
    message: str


class ClusterInfo(BaseModel):
    server: str
    version: str


ProgressCallback = Callable[[RolloutProgress], None]


# -- the client ----------------------------------------------------------------------------


class KubeClient:
    """Shipyard's operations on one cluster, over the official client's sync API."""

    def __init__(
        self,
        api_client: client.ApiClient,
        description: str,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> None:
        self._api_client = api_client
        self._description = description
        self._timeout = request_timeout
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._networking = client.NetworkingV1Api(api_client)

    @classmethod
    def from_config(
        cls,
        kubeconfig: Path | None,
        context: str | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
    ) -> KubeClient:
        """From a kubeconfig file and context; in-cluster credentials when kubeconfig is None."""
        configuration = client.Configuration()
        try:
            if kubeconfig is None:
                if "KUBERNETES_SERVICE_HOST" not in os.environ:
                    raise KubeConfigError(
                        "no kubeconfig is configured (SHIPYARD_KUBECONFIG) and Shipyard is not "
                        "running inside a Kubernetes cluster"
                    )
                config.load_incluster_config(client_configuration=configuration)
                description = "the in-cluster service account"
            else:
                if not Path(kubeconfig).is_file():
                    raise KubeConfigError(f"the kubeconfig {kubeconfig} does not exist")
                config.load_kube_config(
                    config_file=str(kubeconfig),
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
                description = f"context {context or '(current)'} of kubeconfig {kubeconfig}"
        except ConfigException as exc:
            raise KubeConfigError(f"cannot load Kubernetes credentials: {exc}") from exc
        # Retrying is the caller's business (Temporal's RetryPolicy); fail fast here.
        configuration.retries = 1
        return cls(client.ApiClient(configuration), description, request_timeout)

    @property
    def server(self) -> str:
        return str(self._api_client.configuration.host)

    def close(self) -> None:
        self._api_client.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- health ----------------------------------------------------------------------------

    def check(self) -> ClusterInfo:
        """Ask the API server for its version: proves it is reachable and takes our token."""
        with self._translated("reading the server version"):
            version = client.VersionApi(self._api_client).get_code(_request_timeout=self._timeout)
            # /version answers anonymous callers; discovery proves the credentials are accepted.
            client.CoreApi(self._api_client).get_api_versions(_request_timeout=self._timeout)
        return ClusterInfo(server=self.server, version=version.git_version)

    # -- apply -----------------------------------------------------------------------------

    def apply_namespace(self, namespace: str, labels: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": labels},
        }
        with self._translated(f"applying namespace {namespace}"):
            self._core.patch_namespace(
                namespace, body, field_manager=FIELD_MANAGER, force=True, **self._apply_options()
            )

    def apply_secret(
        self,
        namespace: str,
        name: str,
        values: dict[str, str],
        secret_type: str = "Opaque",  # noqa: S107 - a Secret type, not a password
        labels: dict[str, str] | None = None,
    ) -> None:
        """Create or update a Secret; keys left out of `values` are removed."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "type": secret_type,
            # `data`, not `stringData`: server-side apply owns `data` keys, so a key left out
            # is removed (stringData is merged into data and its keys would stay forever).
            "data": {
                key: base64.b64encode(value.encode()).decode() for key, value in values.items()
            },
        }
        with self._translated(f"applying secret {name} in {namespace}"):
            self._core.patch_namespaced_secret(
                name, namespace, body, field_manager=FIELD_MANAGER, force=True,
                **self._apply_options(),
            )  # fmt: skip

    def apply_app_environment(self, spec: AppEnvironmentSpec) -> AppliedEnvironment:
        """Namespace, Deployment, Service and Ingress, by server-side apply. Idempotent."""
        self.apply_namespace(spec.namespace, spec.labels)
        with self._translated(f"applying deployment {spec.app} in {spec.namespace}"):
            deployment = self._apps.patch_namespaced_deployment(
                spec.app, spec.namespace, _deployment_manifest(spec),
                field_manager=FIELD_MANAGER, force=True, **self._apply_options(),
            )  # fmt: skip
        with self._translated(f"applying service {spec.app} in {spec.namespace}"):
            self._core.patch_namespaced_service(
                spec.app, spec.namespace, _service_manifest(spec),
                field_manager=FIELD_MANAGER, force=True, **self._apply_options(),
            )  # fmt: skip
        with self._translated(f"applying ingress {spec.app} in {spec.namespace}"):
            self._networking.patch_namespaced_ingress(
                spec.app, spec.namespace, _ingress_manifest(spec),
                field_manager=FIELD_MANAGER, force=True, **self._apply_options(),
            )  # fmt: skip
        return AppliedEnvironment(
            namespace=spec.namespace,
            deployment=spec.app,
            service=spec.app,
            ingress=spec.app,
            host=spec.host,
            image=spec.image,
            generation=int(_meta(deployment).generation or 0),
            deployment_uid=str(_meta(deployment).uid),
        )

    # -- rollout ---------------------------------------------------------------------------

    def rollout_progress(self, namespace: str, name: str) -> RolloutProgress:
        return _progress(self._read_deployment(namespace, name))

    def wait_for_rollout(
        self,
        namespace: str,
        name: str,
        timeout_seconds: float,
        on_progress: ProgressCallback | None = None,
        report_every: float = PROGRESS_INTERVAL_SECONDS,
    ) -> RolloutProgress:
        """Wait until every replica runs the current generation, ready and available.

        Calls `on_progress` on every change and at least every few seconds. Raises
        `RolloutFailed` when the Deployment reports ProgressDeadlineExceeded or when
        `timeout_seconds` pass first; the exception carries a diagnosis.
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            deployment = self._read_deployment(namespace, name)
            progress = _progress(deployment)
            if on_progress is not None:
                on_progress(progress)
            if progress.done:
                return progress
            stalled = _condition(deployment, "Progressing")
            # A condition from before the current generation was observed is stale: the
            # controller has not looked at this rollout yet.
            current = progress.observed_generation >= progress.generation
            if current and stalled is not None and stalled.reason == "ProgressDeadlineExceeded":
                raise self._rollout_failed(
                    namespace, name, "ProgressDeadlineExceeded",
                    f"deployment {name} in {namespace} made no progress within its deadline "
                    f"of {deployment.spec.progress_deadline_seconds}s ({progress.message})",
                )  # fmt: skip
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._rollout_failed(
                    namespace, name, "Timeout",
                    f"deployment {name} in {namespace} did not finish rolling out within "
                    f"{timeout_seconds:g}s ({progress.message})",
                )  # fmt: skip
            self._wait_for_change(
                namespace,
                name,
                str(_meta(deployment).resource_version),
                min(remaining, report_every),
            )

    def _wait_for_change(
        self, namespace: str, name: str, resource_version: str, seconds: float
    ) -> None:
        """Block until the Deployment changes after `resource_version`, or `seconds` pass."""
        watcher = watch.Watch()
        timeout = max(1, math.ceil(seconds))
        with self._translated(f"watching deployment {name} in {namespace}"):
            try:
                for _event in watcher.stream(
                    self._apps.list_namespaced_deployment,
                    namespace,
                    field_selector=f"metadata.name={name}",
                    resource_version=resource_version,
                    timeout_seconds=timeout,
                    _request_timeout=timeout + self._timeout,
                ):
                    break
            except ApiException as exc:
                # 410 Gone: our version is older than the watch history; re-reading is enough.
                if exc.status != 410:
                    raise
            finally:
                watcher.stop()

    def _rollout_failed(self, namespace: str, name: str, reason: str, what: str) -> RolloutFailed:
        diagnosis = self.diagnose(namespace, name)
        return RolloutFailed(f"{what}. {diagnosis.summary}", reason, diagnosis)

    # -- diagnosis -------------------------------------------------------------------------

    def diagnose(self, namespace: str, name: str) -> Diagnosis:
        """Healthy or not, and why: conditions, pods, restarts, waiting reasons, events."""
        try:
            deployment = self._read_deployment(namespace, name)
        except KubeNotFound:
            return Diagnosis(
                namespace=namespace,
                name=name,
                found=False,
                healthy=False,
                summary=f"deployment {name} does not exist in namespace {namespace}",
            )
        selector = _selector(deployment)
        with self._translated(f"listing pods of {name} in {namespace}"):
            pods = self._core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=self._timeout
            ).items
            events = self._core.list_namespaced_event(
                namespace, _request_timeout=self._timeout
            ).items
        progress = _progress(deployment)
        pod_reports = [_pod_report(pod) for pod in pods]
        conditions = [
            ConditionReport(
                type=str(c.type), status=str(c.status), reason=c.reason, message=c.message
            )
            for c in (deployment.status.conditions if deployment.status else None) or []
        ]
        related = {name} | {_name(pod) for pod in pods}
        event_reports = _event_reports(events, name, related)
        healthy = progress.done and all(report.ready for report in pod_reports)
        return Diagnosis(
            namespace=namespace,
            name=name,
            found=True,
            healthy=healthy,
            summary=_summary(namespace, name, progress, healthy, pod_reports, conditions),
            image=_container_image(deployment),
            replicas=progress.replicas,
            ready_replicas=progress.ready,
            updated_replicas=progress.updated,
            available_replicas=progress.available,
            conditions=conditions,
            pods=pod_reports,
            events=event_reports,
        )

    # -- logs ------------------------------------------------------------------------------

    def read_logs(
        self,
        namespace: str,
        name: str,
        since_seconds: int | None = None,
        limit: int | None = None,
    ) -> list[LogLine]:
        """The app's log lines from all its pods, oldest first, at most `limit` (the newest)."""
        try:
            selector = _selector(self._read_deployment(namespace, name))
        except KubeNotFound:
            selector = f"{LABEL_NAME}={name}"
        with self._translated(f"listing pods of {name} in {namespace}"):
            pods = self._core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=self._timeout
            ).items
        lines: list[LogLine] = []
        for pod in pods:
            for container in pod.spec.containers if pod.spec else []:
                options: dict[str, Any] = {"container": container.name, "timestamps": True}
                if since_seconds is not None:
                    options["since_seconds"] = max(1, since_seconds)
                if limit is not None:
                    options["tail_lines"] = limit
                with self._translated(f"reading logs of pod {_name(pod)}"):
                    try:
                        text = self._core.read_namespaced_pod_log(
                            _name(pod), namespace, _request_timeout=self._timeout,
                            **options,
                        )  # fmt: skip
                    except ApiException as exc:
                        # A pod removed since the listing has no logs to give.
                        if exc.status == 404:
                            continue
                        raise
                lines += _parse_log(str(text), _name(pod), container.name)
        lines.sort(key=lambda line: line.timestamp)
        return lines[-limit:] if limit is not None and limit > 0 else lines

    # -- image -----------------------------------------------------------------------------

    def current_image(self, namespace: str, name: str) -> str | None:
        """The image the Deployment's app container runs; None when it does not exist."""
        try:
            return _container_image(self._read_deployment(namespace, name))
        except KubeNotFound:
            return None

    def set_image(self, namespace: str, name: str, image: str) -> int:
        """Swap the app container's image (a rollback); returns the new generation."""
        deployment = self._read_deployment(namespace, name)
        container = _app_container(deployment)
        if container is None:
            raise KubeRejected(f"deployment {name} in {namespace} has no containers", 422)
        patch = {
            "spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}
        }
        with self._translated(f"setting the image of deployment {name} in {namespace}"):
            updated = self._apps.patch_namespaced_deployment(
                name, namespace, patch, field_manager=FIELD_MANAGER,
                _content_type=STRATEGIC_MERGE, _request_timeout=self._timeout,
            )  # fmt: skip
        return int(_meta(updated).generation or 0)

    # -- delete ----------------------------------------------------------------------------

    def namespace_exists(self, namespace: str) -> bool:
        try:
            with self._translated(f"reading namespace {namespace}"):
                self._core.read_namespace(namespace, _request_timeout=self._timeout)
        except KubeNotFound:
            return False
        return True

    def delete_app_environment(self, namespace: str) -> bool:
        """Delete the namespace and all in it; True if it existed, False if already gone."""
        try:
            with self._translated(f"deleting namespace {namespace}"):
                self._core.delete_namespace(namespace, _request_timeout=self._timeout)
        except KubeNotFound:
            return False
        return True

    # -- internals -------------------------------------------------------------------------

    def _apply_options(self) -> dict[str, Any]:
        return {"_content_type": APPLY, "_request_timeout": self._timeout}

    def _read_deployment(self, namespace: str, name: str) -> client.V1Deployment:
        with self._translated(f"reading deployment {name} in {namespace}"):
            return self._apps.read_namespaced_deployment(
                name, namespace, _request_timeout=self._timeout
            )

    @contextlib.contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn the client's exceptions into Shipyard's, naming what was being done."""
        try:
            yield
        except ApiException as exc:
            raise self._from_api_exception(exc, action) from exc
        except urllib3.exceptions.SSLError as exc:
            raise KubeConfigError(
                f"TLS verification of the Kubernetes API at {self.server} failed while "
                f"{action}: {exc}; check the certificate authority in {self._description}"
            ) from exc
        except urllib3.exceptions.MaxRetryError as exc:
            if isinstance(exc.reason, urllib3.exceptions.SSLError):
                raise KubeConfigError(
                    f"TLS verification of the Kubernetes API at {self.server} failed while "
                    f"{action}: {exc.reason}; check the certificate authority in "
                    f"{self._description}"
                ) from exc
            raise KubeUnavailable(
                f"cannot reach the Kubernetes API at {self.server} while {action}: "
                f"{_cause(exc.reason)}"
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(
                f"cannot reach the Kubernetes API at {self.server} while {action}: {_cause(exc)}"
            ) from exc

    def _from_api_exception(self, exc: ApiException, action: str) -> KubeError:
        status = int(exc.status or 0)
        reason, message = _status_of(exc)
        if status == 0:
            return KubeUnavailable(
                f"cannot reach the Kubernetes API at {self.server} while {action}: {message}"
            )
        if status == 401:
            return KubeAuthError(
                f"the Kubernetes API at {self.server} refused the credentials of "
                f"{self._description} (401 Unauthorized) while {action}",
                status,
                reason or "Unauthorized",
            )
        if status == 403:
            return KubeAuthError(
                f"the credentials of {self._description} may not do this ({action}): {message}",
                status,
                reason or "Forbidden",
            )
        if status == 404:
            return KubeNotFound(f"{message} ({action})", reason or "NotFound")
        if status == 409:
            return KubeConflict(f"{message} ({action})", reason or "Conflict")
        if status == 429 or status >= 500:
            return KubeUnavailable(
                f"the Kubernetes API at {self.server} failed while {action}: "
                f"{status} {reason}: {message}"
            )
        return KubeRejected(f"{message} ({action})", status, reason)


# -- manifests -----------------------------------------------------------------------------


def _deployment_manifest(spec: AppEnvironmentSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": key, "value": value} for key, value in sorted(spec.env.items())],
        "readinessProbe": {
            "httpGet": {"path": spec.health_path, "port": spec.port},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "resources": {
            "requests": {
                "cpu": spec.resources.cpu_request,
                "memory": spec.resources.memory_request,
            },
            "limits": {"cpu": spec.resources.cpu_limit, "memory": spec.resources.memory_limit},
        },
    }
    if spec.env_secret_name:
        container["envFrom"] = [{"secretRef": {"name": spec.env_secret_name}}]
    pod_spec: dict[str, Any] = {"containers": [container]}
    if spec.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": spec.image_pull_secret}]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": spec.app,
            "namespace": spec.namespace,
            "labels": spec.labels,
            "annotations": spec.annotations,
        },
        "spec": {
            "replicas": spec.replicas,
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "selector": {"matchLabels": {LABEL_NAME: spec.app}},
            "template": {"metadata": {"labels": spec.labels}, "spec": pod_spec},
        },
    }


def _service_manifest(spec: AppEnvironmentSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.app, "namespace": spec.namespace, "labels": spec.labels},
        "spec": {
            "selector": {LABEL_NAME: spec.app},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def _ingress_manifest(spec: AppEnvironmentSpec) -> dict[str, Any]:
    ingress_spec: dict[str, Any] = {
        "rules": [
            {
                "host": spec.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": spec.app, "port": {"name": "http"}}},
                        }
                    ]
                },
            }
        ]
    }
    if spec.ingress_class_name:
        ingress_spec["ingressClassName"] = spec.ingress_class_name
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": spec.app, "namespace": spec.namespace, "labels": spec.labels},
        "spec": ingress_spec,
    }


# -- reading objects -----------------------------------------------------------------------


def _meta(obj: Any) -> client.V1ObjectMeta:
    if obj.metadata is None:
        raise KubeError("the Kubernetes API sent an object without metadata")
    meta: client.V1ObjectMeta = obj.metadata
    return meta


def _name(obj: Any) -> str:
    return str(_meta(obj).name)


def _condition(deployment: client.V1Deployment, kind: str) -> client.V1DeploymentCondition | None:
    conditions = (deployment.status.conditions if deployment.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def _progress(deployment: client.V1Deployment) -> RolloutProgress:
    """The rollout state by the rule `kubectl rollout status` applies."""
    status = deployment.status or client.V1DeploymentStatus()
    desired = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    generation = int(_meta(deployment).generation or 0)
    observed = int(status.observed_generation or 0)
    replicas = int(status.replicas or 0)
    updated = int(status.updated_replicas or 0)
    ready = int(status.ready_replicas or 0)
    available = int(status.available_replicas or 0)
    if observed < generation:
        message = "waiting for the deployment spec update to be observed"
    elif updated < desired:
        message = f"{updated}/{desired} pods updated"
    elif replicas > updated:
        message = f"{replicas - updated} old pods pending termination"
    else:
        message = f"{ready}/{desired} pods ready"
    done = (
        observed >= generation
        and updated == desired
        and replicas == updated
        and (available == updated and ready == updated)
    )
    return RolloutProgress(
        namespace=str(_meta(deployment).namespace),
        name=str(_meta(deployment).name),
        generation=generation,
        observed_generation=observed,
        replicas=desired,
        updated=updated,
        ready=ready,
        available=available,
        done=done,
        message=message,
    )


def _selector(deployment: client.V1Deployment) -> str:
    labels = deployment.spec.selector.match_labels or {}
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _app_container(deployment: client.V1Deployment) -> str | None:
    containers = deployment.spec.template.spec.containers if deployment.spec.template.spec else []
    names = [c.name for c in containers]
    if CONTAINER_NAME in names:
        return CONTAINER_NAME
    return names[0] if names else None


def _container_image(deployment: client.V1Deployment) -> str | None:
    name = _app_container(deployment)
    containers = deployment.spec.template.spec.containers if deployment.spec.template.spec else []
    return next((c.image for c in containers if c.name == name), None)


def _pod_report(pod: client.V1Pod) -> PodReport:
    status = pod.status or client.V1PodStatus()
    containers = status.container_statuses or []
    waiting = next((c.state.waiting for c in containers if c.state and c.state.waiting), None)
    terminated = next(
        (
            c.last_state.terminated
            for c in containers
            if c.last_state is not None and c.last_state.terminated is not None
        ),
        None,
    )
    first = containers[0] if containers else None
    return PodReport(
        name=_name(pod),
        phase=str(status.phase or "Unknown"),
        ready=bool(containers) and all(c.ready for c in containers),
        restart_count=sum(int(c.restart_count or 0) for c in containers),
        image=first.image if first else None,
        image_id=first.image_id if first else None,
        waiting_reason=waiting.reason if waiting else None,
        waiting_message=waiting.message if waiting else None,
        last_exit_code=terminated.exit_code if terminated else None,
    )


def _event_reports(events: list[Any], name: str, related: set[str]) -> list[EventReport]:
    """The newest events about the Deployment, its ReplicaSets and its pods."""
    chosen = [
        e
        for e in events
        if e.involved_object.name in related
        or (
            e.involved_object.kind == "ReplicaSet" and e.involved_object.name.startswith(f"{name}-")
        )
    ]

    def seen(event: Any) -> datetime.datetime:
        moment = event.last_timestamp or event.event_time or event.metadata.creation_timestamp
        return moment or datetime.datetime.min.replace(tzinfo=datetime.UTC)

    chosen.sort(key=seen)
    return [
        EventReport(
            type=str(e.type or "Normal"),
            reason=str(e.reason or ""),
            message=str(e.message or ""),
            object=f"{str(e.involved_object.kind).lower()}/{e.involved_object.name}",
            count=int(e.count or 1),
            last_seen=seen(e),
        )
        for e in chosen[-RECENT_EVENTS:]
    ]


def _summary(
    namespace: str,
    name: str,
    progress: RolloutProgress,
    healthy: bool,
    pods: list[PodReport],
    conditions: list[ConditionReport],
) -> str:
    where = f"deployment {name} in {namespace}"
    if healthy:
        return f"{where} is healthy: {progress.ready}/{progress.replicas} pods ready"
    parts = [f"{where} is not healthy: {progress.message}"]
    for pod in pods:
        if pod.waiting_reason:
            restarts = f", restarted {pod.restart_count} times" if pod.restart_count else ""
            parts.append(f"pod {pod.name} is in {pod.waiting_reason}{restarts}")
    stalled = next((c for c in conditions if c.type == "Progressing" and c.status == "False"), None)
    if stalled is not None:
        parts.append(f"rollout stopped: {stalled.reason} ({stalled.message})")
    return "; ".join(parts)


def _parse_log(text: str, pod: str, container: str) -> list[LogLine]:
    lines = []
    for raw in text.splitlines():
        stamp, _, message = raw.partition(" ")
        try:
            moment = _parse_rfc3339(stamp)
        except ValueError:
            continue
        lines.append(LogLine(pod=pod, container=container, timestamp=moment, message=message))
    return lines


def _parse_rfc3339(text: str) -> datetime.datetime:
    """Kubernetes log timestamps carry nanoseconds, more than `datetime` parses."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        fraction = re.match(r"\d*", rest)
        digits = fraction.group(0) if fraction else ""
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return datetime.datetime.fromisoformat(text)


def _status_of(exc: ApiException) -> tuple[str, str]:
    """The reason and message of the Status body the server sent, if it sent one."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.reason or ""), str(exc.reason or exc)
    if not isinstance(body, dict):
        return str(exc.reason or ""), str(exc.reason or exc)
    return str(body.get("reason") or exc.reason or ""), str(body.get("message") or exc.reason)


def _cause(exc: BaseException | None) -> str:
    """The innermost useful words of a connection error ("Connection refused")."""
    if exc is None:
        return "no response"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        return _cause(reason)
    return str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
