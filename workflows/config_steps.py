"""Name and input of the activity that writes an environment's secrets to Kubernetes.

Only references cross into workflow history: the activity reads and decrypts the values itself.
"""

from __future__ import annotations

from pydantic import BaseModel

APPLY_SECRETS = "config.apply_secrets"


class EnvironmentRef(BaseModel):
    app_id: str
    environment: str
    namespace: str
    secret_name: str
