"""App templates, global or a tenant's."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class TemplatePublic(BaseModel):
    id: str
    name: str
    language: str
    description: str
    source: str
    scope: Literal["global", "tenant"]
    base_image: str
    command: list[str]
    port: int
    health_path: str
