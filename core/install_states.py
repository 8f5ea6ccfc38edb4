"""One-time states of the GitHub App install flow: made, hashed, and read as a status.

A state is a 256-bit random secret handed to the caller who starts an install; it travels in
the install URL to GitHub and back to the Setup URL. Only its SHA-256 is stored (a guess of a
random 256-bit value is hopeless, so no slow hash is needed); logs mask its `sis_` form."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Literal

from core.models import GitHubInstallState

STATE_PREFIX = "sis_"

InstallStatus = Literal["pending", "returned", "completed", "expired"]


def new_state() -> str:
    return STATE_PREFIX + secrets.token_urlsafe(32)


def state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def install_status(row: GitHubInstallState, now: datetime) -> InstallStatus:
    if row.completed_at is not None:
        return "completed"
    if row.expires_at <= now:
        return "expired"
    if row.returned_installation_id is not None:
        return "returned"
    return "pending"
