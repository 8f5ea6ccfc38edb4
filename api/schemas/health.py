"""Liveness and readiness answers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: str = Field(description="ok")
    service: str = Field(description="which server answers: shipyard-api")


class Readiness(BaseModel):
    status: str = Field(description="ready")
    checks: dict[str, str] = Field(description="each dependency: ok, or what is wrong")
