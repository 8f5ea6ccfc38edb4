"""App templates, global or a tenant's: a tenant's are made, changed and deleted through the
API; global ones come with Shipyard (templates/)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from api.schemas.common import Strict

# DNS-label-like: a letter first, then a-z, 0-9 and '-', not ending with '-', at most 63.
TEMPLATE_ID = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$"
# builtin:<a directory under templates/> or github:<owner>/<repository>.
TEMPLATE_SOURCE = (
    r"^(builtin:[a-z0-9][a-z0-9._-]{0,99}"
    r"|github:[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100})$"
)
BUILD_SETTINGS = ("base_image", "command", "port", "health_path")

CommandPart = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Command = Annotated[list[CommandPart], Field(min_length=1, max_length=50)]
Port = Annotated[int, Field(ge=1, le=65535)]
HealthPath = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^/[\x21-\x7e]*$")]
BaseImage = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^[\x21-\x7e]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Language = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9.+#_-]+$")]
Description = Annotated[str, Field(max_length=2000)]


class TemplateCreate(Strict):
    id: str = Field(pattern=TEMPLATE_ID, description="DNS label: a-z, 0-9, '-', ≤ 63")
    name: Name
    language: Language
    description: Description = ""
    source: str = Field(
        pattern=TEMPLATE_SOURCE,
        description="`github:<owner>/<repo>`, a template repository the tenant's GitHub App "
        "installation reads, or `builtin:<dir>`, a built-in template's directory",
    )
    base_image: BaseImage | None = Field(
        default=None, description="github: sources only; the repository's own build rules"
    )
    command: Command | None = None
    port: Port | None = None
    health_path: HealthPath | None = None


class TemplateUpdate(Strict):
    """Only the fields sent change; the id and the source stay as made."""

    name: Name | None = None
    language: Language | None = None
    description: Description | None = None
    base_image: BaseImage | None = None
    command: Command | None = None
    port: Port | None = None
    health_path: HealthPath | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> TemplateUpdate:
        # A field sent as null would clear a required value; leave it out to keep it.
        for name in ("name", "language", "description", "health_path"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null; leave it out to keep it")
        return self


class TemplatePublic(BaseModel):
    id: str
    name: str
    language: str
    description: str
    source: str
    scope: Literal["global", "tenant"]
    base_image: str | None
    command: list[str]
    port: int | None
    health_path: str
    created_at: datetime
    updated_at: datetime
