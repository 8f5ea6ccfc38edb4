"""Rollbacks: which release to put back, and the deployment that does it."""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from api.schemas.common import Version


def _version_number(value: Any) -> Any:
    """`3` and `"v3"` name the same release; an explicit null names none."""
    if value is None:
        raise ValueError("may be left out, but not null")
    if isinstance(value, str) and re.fullmatch(r"[vV]?[0-9]{1,9}", value.strip()):
        return int(value.strip().lstrip("vV"))
    return value


class RollbackCreate(BaseModel):
    # Left out means the previous good release; null is not a version (422).
    to_version: Annotated[Version | None, BeforeValidator(_version_number)] = Field(
        default=None,
        description='The release to put back (3 or "v3"); by default the previous good one.',
    )
    reason: str = Field(default="", max_length=500)


class RollbackPublic(BaseModel):
    deployment_id: uuid.UUID
    app_id: uuid.UUID
    environment: str
    status: str
    to_version: int
    to_image_ref: str
    from_version: int | None
    reason: str
    workflow_id: str
    workflow_url: str
    status_url: str
