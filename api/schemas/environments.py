"""Environments: policy, replicas, configuration (secret values write-only) and freeze windows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints, field_validator

from api.schemas.common import Strict, check_slug
from core.keys import SCOPES

ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


VariableName = Annotated[str, StringConstraints(pattern=ENV_VAR_NAME, max_length=120)]


MAX_ENTRIES = 200


MAX_VARIABLE_LENGTH = 10_000


# Bytes, not characters: the sealed value must fit its column (environment_secrets.ciphertext).
MAX_SECRET_BYTES = 10_000


# Thirty days: an approval nobody gave within a month is no longer about the same release.
MAX_APPROVAL_EXPIRY = 30 * 86_400


class ApprovalPolicy(BaseModel):
    required_approvals: int = Field(description="distinct approvals a promotion here needs")
    approver_scope: str = Field(description="the scope an approver's key must hold")
    requester_may_approve: bool
    approval_expiry_seconds: int = Field(
        description="a promotion not approved this long after it was requested expires"
    )


class LockPublic(BaseModel):
    holder_kind: str = Field(description="deploy | promotion | rollback")
    holder_workflow_id: str
    acquired_at: datetime


class LockWaiterPublic(BaseModel):
    kind: str = Field(description="deploy | promotion")
    workflow_id: str
    waiting_for: str = Field(description="the workflow id of the holder it waits for")
    since: datetime


class EnvironmentPublic(BaseModel):
    name: str
    position: int
    namespace: str
    current_release_id: uuid.UUID | None
    current_version: int | None
    replicas: int
    approval_policy: ApprovalPolicy
    soak_seconds: int
    frozen_until: datetime | None = Field(description="set while a freeze window holds it now")
    lock: LockPublic | None = Field(
        description="the operation changing its cluster state now, if any"
    )
    waiting: list[LockWaiterPublic] = Field(
        description="operations waiting for the lock, longest waiting first"
    )
    updated_at: datetime


class NotNull(Strict):
    """A partial update: fields left out keep their value; a field sent as null is refused."""

    @field_validator("*")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class ApprovalPolicyUpdate(NotNull):
    required_approvals: int | None = Field(default=None, ge=0, le=10)
    approver_scope: str | None = Field(default=None, description=f"one of {list(SCOPES)}")
    requester_may_approve: bool | None = None
    approval_expiry_seconds: int | None = Field(default=None, ge=1, le=MAX_APPROVAL_EXPIRY)

    @field_validator("approver_scope")
    @classmethod
    def _known_scope(cls, value: str | None) -> str | None:
        if value is not None and value not in SCOPES:
            raise ValueError(f"unknown scope; known: {list(SCOPES)}")
        return value


class EnvironmentCreate(Strict):
    name: str = Field(description="DNS label: a-z, 0-9, '-', starts with a letter, ≤ 30")
    after: str | None = Field(
        default=None, description="the environment it follows in the pipeline; default: last"
    )

    _name = field_validator("name")(check_slug)


class EnvironmentRemoval(BaseModel):
    environment: str
    workflow_id: str
    workflow_url: str


class EnvironmentUpdate(NotNull):
    approval_policy: ApprovalPolicyUpdate | None = None
    soak_seconds: int | None = Field(default=None, ge=0, le=86_400)
    replicas: int | None = Field(default=None, ge=0, le=50)


class ConfigUpdate(Strict):
    variables: dict[VariableName, str] = Field(
        default_factory=dict, description="replaces every plain variable"
    )
    secrets: dict[VariableName, str | None] = Field(
        default_factory=dict,
        description="a value sets or replaces the secret, null deletes it, a name left out "
        "keeps it; values are never returned",
    )

    @field_validator("variables")
    @classmethod
    def _variable_sizes(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_ENTRIES:
            raise ValueError(f"at most {MAX_ENTRIES} variables")
        for name, text in value.items():
            if len(text) > MAX_VARIABLE_LENGTH:
                raise ValueError(f"{name} is longer than {MAX_VARIABLE_LENGTH} characters")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_sizes(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        if len(value) > MAX_ENTRIES:
            raise ValueError(f"at most {MAX_ENTRIES} secrets")
        for name, text in value.items():
            if text is not None and len(text.encode()) > MAX_SECRET_BYTES:
                # The name only: a message must never carry the value.
                raise ValueError(f"the value of {name} is longer than {MAX_SECRET_BYTES} bytes")
        return value


class SecretName(BaseModel):
    name: str
    updated_at: datetime


class ConfigPublic(BaseModel):
    environment: str
    variables: dict[str, str]
    secrets: list[SecretName] = Field(description="names only; values are write-only")
    updated_at: datetime


class FreezeWindowCreate(Strict):
    kind: Literal["one_off", "recurring"]
    reason: str = Field(min_length=1, max_length=500)
    starts_at: AwareDatetime | None = Field(default=None, description="one_off: UTC start")
    ends_at: AwareDatetime | None = Field(default=None, description="one_off: UTC end")
    cron: str | None = Field(
        default=None, max_length=120, description="recurring: 5-field cron of each start"
    )
    duration_minutes: int | None = Field(default=None, description="recurring: 1 to 20160")
    timezone: str = Field(
        default="UTC", max_length=60, description="recurring: IANA zone the cron reads in"
    )


class FreezeWindowPublic(BaseModel):
    id: uuid.UUID
    environment: str
    kind: str
    reason: str
    starts_at: datetime | None
    ends_at: datetime | None
    cron: str | None
    duration_minutes: int | None
    timezone: str
    created_by: str
    created_at: datetime
    active_now: bool
    opens_at: datetime | None = Field(description="while active: when this window ends")
    next_starts_at: datetime | None = Field(description="when it freezes next, if it will")
