"""Writes the kubeconfig that points clients (kubectl, the `kubernetes` library) at the fake."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

CONTEXT_NAME = "shipyard-sandbox"


def write_kubeconfig(
    path: Path, server_url: str, ca_pem: bytes, token: str, context: str = CONTEXT_NAME
) -> Path:
    """One cluster (trusting the sandbox CA), one bearer-token user, one current context."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": context,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": f"{context}-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": f"{context}-admin", "namespace": "default"},
            }
        ],
        "current-context": context,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    path.chmod(0o600)
    return path
