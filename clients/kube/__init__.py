"""The Kubernetes client for app environments: apply, roll out, diagnose, read logs, delete.

`client` talks to the API server; `manifests` says what an app environment is there;
`diagnosis` reads a rollout; `errors` says whether a retry can help."""

from clients.kube.client import ClusterInfo, KubeClient
from clients.kube.diagnosis import Diagnosis, LogLine, RolloutProgress
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
    LABEL_APP,
    LABEL_ENVIRONMENT,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    LABEL_TENANT,
    AppEnvironmentSpec,
    AppliedEnvironment,
)

__all__ = [
    "LABEL_APP",
    "LABEL_ENVIRONMENT",
    "LABEL_MANAGED_BY",
    "LABEL_NAME",
    "LABEL_TENANT",
    "AppEnvironmentSpec",
    "AppliedEnvironment",
    "ClusterInfo",
    "Diagnosis",
    "KubeAuthError",
    "KubeClient",
    "KubeConfigError",
    "KubeConflict",
    "KubeError",
    "KubeNotFound",
    "KubeRejected",
    "KubeUnavailable",
    "LogLine",
    "RolloutFailed",
    "RolloutProgress",
]
