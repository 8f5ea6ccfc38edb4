"""Keyset pagination, newest first, with opaque cursors: `{items, total, next_cursor}`."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import sqlalchemy as sa
from fastapi import Query
from pydantic import BaseModel
from sqlmodel import Session, select

from api.errors import ApiError

T = TypeVar("T")
# Log pages are the one exception to `{items, total, next_cursor}`: up to this many lines.
MAX_LOG_PAGE = 1000
LogLimit = Annotated[int, Query(ge=1, le=MAX_LOG_PAGE, description="lines per page")]


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "the cursor is not one this API gave out",
            errors=[{"field": "query.cursor", "message": "invalid cursor"}],
        ) from None


def newest_first(
    session: Session,
    model: Any,
    where: list[Any],
    page: PageParams,
) -> tuple[list[Any], int, str | None]:
    """Rows of `model` matching `where`, newest first by (created_at, id), one page at a time."""
    total = session.exec(select(sa.func.count()).select_from(model).where(*where)).one()
    statement = select(model).where(*where)
    if page.cursor:
        created_at, row_id = decode_cursor(page.cursor)
        id_value: Any = _typed_id(model, row_id)
        statement = statement.where(
            sa.or_(
                model.created_at < created_at,
                sa.and_(model.created_at == created_at, model.id < id_value),
            )
        )
    statement = statement.order_by(model.created_at.desc(), model.id.desc()).limit(page.limit + 1)
    rows = list(session.exec(statement).all())
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, int(total), next_cursor


def _typed_id(model: Any, row_id: str) -> Any:
    if isinstance(model.__table__.c.id.type, sa.Uuid):
        try:
            return uuid.UUID(row_id)
        except ValueError:
            raise ApiError(
                422, "VALIDATION_FAILED", "the cursor is not one this API gave out"
            ) from None
    return row_id
