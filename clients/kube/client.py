"""Kubernetes client for app environments: apply, roll out, diagnose, read logs, delete.

Wraps the official `kubernetes` client, built from a kubeconfig and context (or in-cluster
credentials). Knows nothing of Temporal: failures are domain exceptions that say whether a
retry can help (`KubeUnavailable`) or not (`KubeRejected`, `RolloutFailed`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from pydantic import BaseModel

from clients.kube.diagnosis import (
    ConditionReport,
    Diagnosis,
    LogLine,
    RolloutProgress,
    app_container,
    container_image,
    deployment_condition,
    object_meta,
    object_name,
    parse_log,
    pod_report_of,
    pod_selector,
    recent_event_reports,
    rollout_progress_of,
    rollout_summary,
)
from clients.kube.errors import (
    KubeAuthError,
    KubeConfigError,
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubeRejected,
    KubeUnavailable,
    RolloutFailed,
)
from clients.kube.manifests import (
    LABEL_NAME,
    AppEnvironmentSpec,
    AppliedEnvironment,
    deployment_manifest,
    ingress_manifest,
    service_manifest,
)
from core.settings import Settings

FIELD_MANAGER = "shipyard"


DEFAULT_REQUEST_TIMEOUT = 15.0


# Longest a watch waits without news, so `on_progress` (an activity heartbeat) keeps beating.
PROGRESS_INTERVAL_SECONDS = 5.0


APPLY = "application/apply-patch+yaml"


STRATEGIC_MERGE = "application/strategic-merge-patch+json"


class ClusterInfo(BaseModel):
    server: str
    version: str


ProgressCallback = Callable[[RolloutProgress], None]


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
    def from_settings(
        cls, settings: Settings, request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    ) -> KubeClient:
        """The cluster the settings name (SHIPYARD_KUBECONFIG and SHIPYARD_KUBE_CONTEXT)."""
        return cls.from_config(settings.kubeconfig, settings.kube_context, request_timeout)

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
                spec.app, spec.namespace, deployment_manifest(spec),
                field_manager=FIELD_MANAGER, force=True, **self._apply_options(),
            )  # fmt: skip
        with self._translated(f"applying service {spec.app} in {spec.namespace}"):
            self._core.patch_namespaced_service(
                spec.app, spec.namespace, service_manifest(spec),
                field_manager=FIELD_MANAGER, force=True, **self._apply_options(),
            )  # fmt: skip
        with self._translated(f"applying ingress {spec.app} in {spec.namespace}"):
            self._networking.patch_namespaced_ingress(
                spec.app, spec.namespace, ingress_manifest(spec),
                field_manager=FIELD_MANAGER, force=True, **self._apply_options(),
            )  # fmt: skip
        return AppliedEnvironment(
            namespace=spec.namespace,
            deployment=spec.app,
            service=spec.app,
            ingress=spec.app,
            host=spec.host,
            image=spec.image,
            generation=int(object_meta(deployment).generation or 0),
            deployment_uid=str(object_meta(deployment).uid),
        )

    # -- rollout ---------------------------------------------------------------------------

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
            progress = rollout_progress_of(deployment)
            if on_progress is not None:
                on_progress(progress)
            if progress.done:
                return progress
            stalled = deployment_condition(deployment, "Progressing")
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
                str(object_meta(deployment).resource_version),
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
        selector = pod_selector(deployment)
        with self._translated(f"listing pods of {name} in {namespace}"):
            pods = self._core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=self._timeout
            ).items
            events = self._core.list_namespaced_event(
                namespace, _request_timeout=self._timeout
            ).items
        progress = rollout_progress_of(deployment)
        pod_reports = [pod_report_of(pod) for pod in pods]
        conditions = [
            ConditionReport(
                type=str(c.type), status=str(c.status), reason=c.reason, message=c.message
            )
            for c in (deployment.status.conditions if deployment.status else None) or []
        ]
        related = {name} | {object_name(pod) for pod in pods}
        event_reports = recent_event_reports(events, name, related)
        healthy = progress.done and all(report.ready for report in pod_reports)
        return Diagnosis(
            namespace=namespace,
            name=name,
            found=True,
            healthy=healthy,
            summary=rollout_summary(namespace, name, progress, healthy, pod_reports, conditions),
            image=container_image(deployment),
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
            selector = pod_selector(self._read_deployment(namespace, name))
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
                with self._translated(f"reading logs of pod {object_name(pod)}"):
                    try:
                        text = self._core.read_namespaced_pod_log(
                            object_name(pod), namespace, _request_timeout=self._timeout,
                            **options,
                        )  # fmt: skip
                    except ApiException as exc:
                        # A pod removed since the listing has no logs to give.
                        if exc.status == 404:
                            continue
                        raise
                lines += parse_log(str(text), object_name(pod), container.name)
        lines.sort(key=lambda line: line.timestamp)
        return lines[-limit:] if limit is not None and limit > 0 else lines

    # -- image -----------------------------------------------------------------------------

    def current_image(self, namespace: str, name: str) -> str | None:
        """The image the Deployment's app container runs; None when it does not exist."""
        try:
            return container_image(self._read_deployment(namespace, name))
        except KubeNotFound:
            return None

    def set_image(self, namespace: str, name: str, image: str) -> int:
        """Swap the app container's image (a rollback); returns the new generation."""
        deployment = self._read_deployment(namespace, name)
        container = app_container(deployment)
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
        return int(object_meta(updated).generation or 0)

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
