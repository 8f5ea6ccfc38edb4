"""The activity that writes an environment's secrets into its namespace as one Kubernetes Secret.

Values are decrypted here, inside the worker, and go straight to the cluster: the workflow only
ever sees the environment's reference and the secret names.
"""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.failures import as_activity_failures
from clients.kube import LABEL_ENVIRONMENT, LABEL_MANAGED_BY, KubeClient
from core.models import Environment, EnvironmentSecret
from core.secrets import SecretKeyError, decrypt
from workflows.contracts.config import APPLY_SECRETS, EnvironmentRef


class ConfigActivities:
    """Synchronous (the kubernetes client is), so they run in the worker's thread pool."""

    def __init__(self, engine: Engine, kube: KubeClient, secret_key: str) -> None:
        self._engine = engine
        self._kube = kube
        self._secret_key = secret_key

    @activity.defn(name=APPLY_SECRETS.name)
    def apply_secrets(self, ref: EnvironmentRef) -> list[str]:
        """Apply the Secret `ref.secret_name` holding exactly the environment's secrets (an
        empty one if it has none, so a Deployment that refers to it still starts); returns
        their names."""
        values = self._values(ref)
        labels = {LABEL_MANAGED_BY: "shipyard", LABEL_ENVIRONMENT: ref.environment}
        with as_activity_failures():
            # Only when missing: applying the namespace again with fewer labels would take away
            # the ones the environment's own apply gave it (same field manager).
            if not self._kube.namespace_exists(ref.namespace):
                self._kube.apply_namespace(ref.namespace, {LABEL_MANAGED_BY: "shipyard"})
            self._kube.apply_secret(ref.namespace, ref.secret_name, values, labels=labels)
        return sorted(values)

    def _values(self, ref: EnvironmentRef) -> dict[str, str]:
        with Session(self._engine) as session:
            environment = session.exec(
                select(Environment).where(
                    Environment.app_id == uuid.UUID(ref.app_id),
                    Environment.name == ref.environment,
                )
            ).first()
            if environment is None:
                raise ApplicationError(
                    f"app {ref.app_id} has no environment {ref.environment!r}",
                    type="ENVIRONMENT_UNKNOWN",
                    non_retryable=True,
                )
            rows = session.exec(
                select(EnvironmentSecret)
                .where(EnvironmentSecret.environment_id == environment.id)
                .order_by(col(EnvironmentSecret.name))
            ).all()
        try:
            return {row.name: decrypt(row.ciphertext, self._secret_key) for row in rows}
        except SecretKeyError as exc:
            # A wrong key stays wrong until an operator fixes it: retrying cannot help.
            raise ApplicationError(
                str(exc), type="SECRET_KEY_MISMATCH", non_retryable=True
            ) from None
