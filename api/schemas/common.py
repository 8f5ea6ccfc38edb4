"""What every resource's bodies share: strict input, bounded numbers, slug checks."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from core.naming import pipeline_problem, slug_problem


def check_slug(value: str) -> str:
    problem = slug_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def check_pipeline(value: list[str] | None) -> list[str] | None:
    problem = None if value is None else pipeline_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# One bounded type per kind of number the API takes, so no value outside what the database
# column holds gets past validation (where it would be a 500), and null is a 422.
MAX_VERSION = 999_999_999  # nine digits, as a release's path allows
MAX_INSTALLATION_ID = 2**63 - 1  # GitHub's ids, and the column holding them, are 64-bit
Version = Annotated[int, Field(ge=1, le=MAX_VERSION, description="a release version: 3")]
InstallationId = Annotated[
    int, Field(ge=1, le=MAX_INSTALLATION_ID, description="a GitHub App installation id")
]
