"""Kubernetes failures as domain exceptions that say whether a retry can help
(`KubeUnavailable`) or not (`KubeRejected`, `RolloutFailed`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the diagnosis module raises these errors
    from clients.kube.diagnosis import Diagnosis


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


class RolloutFailed(KubeError):
    """The rollout did not finish: deadline exceeded on the cluster, or our timeout passed."""

    def __init__(self, message: str, reason: str, diagnosis: Diagnosis | None = None) -> None:
        super().__init__(message, "ROLLOUT_FAILED")
        self.reason = reason
        self.diagnosis = diagnosis
