"""An environment's secrets written to Kubernetes. Only references cross into workflow history:
the activity reads and decrypts the values itself."""

from __future__ import annotations

from pydantic import BaseModel

from workflows.contracts.activity import Activity


class EnvironmentRef(BaseModel):
    app_id: str
    environment: str
    namespace: str
    secret_name: str


# The names of the secrets written (never their values).
APPLY_SECRETS: Activity[EnvironmentRef, list] = Activity("config.apply_secrets", list)
