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
from pydantic import BaseModel, Field
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


TOTAL_DESCRIPTION = (
    "how many items the whole list held when its first page was read: counted for the first "
    "page and carried by next_cursor to the pages after it, so paging does not count again"
)

NEXT_CURSOR_DESCRIPTION = "pass as ?cursor= for the next page; null on the last page"


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description=TOTAL_DESCRIPTION)
    next_cursor: str | None = Field(description=NEXT_CURSOR_DESCRIPTION)


@dataclass(frozen=True)
class Cursor:
    """Where a page ends: the last item's sort key (created_at, id), and the list's total as
    counted for its first page (None in cursors given out before totals were carried)."""

    created_at: datetime
    row_id: str
    total: int | None = None


def encode_cursor(created_at: datetime, row_id: Any, total: int | None = None) -> str:
    fields: list[Any] = [created_at.isoformat(), str(row_id)]
    if total is not None:
        fields.append(total)
    raw = json.dumps(fields).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str) -> Cursor:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        fields = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(fields, list) or len(fields) not in (2, 3):
            raise ValueError(cursor)
        total = fields[2] if len(fields) == 3 else None
        if total is not None and (not isinstance(total, int) or total < 0):
            raise ValueError(cursor)
        return Cursor(datetime.fromisoformat(fields[0]), str(fields[1]), total)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ApiError(
            422,
            "VALIDATION_FAILED",
            "the cursor is not one this API gave out",
            errors=[{"field": "query.cursor", "message": "invalid cursor"}],
        ) from None


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    read = read_cursor(cursor)
    return read.created_at, read.row_id


def newest_first(
    session: Session,
    model: Any,
    where: list[Any],
    page: PageParams,
) -> tuple[list[Any], int, str | None]:
    """Rows of `model` matching `where`, newest first by (created_at, id), one page at a time.

    Keyset pagination: a page starts after the previous page's last (created_at, id), so an
    index on the filter's columns followed by (created_at, id) reads only the page, however
    deep it is, and rows added meanwhile neither shift nor repeat items. The total is counted
    for the first page only and then carried in the cursor."""
    statement = select(model).where(*where)
    total: int | None = None
    if page.cursor:
        cursor = read_cursor(page.cursor)
        id_value: Any = _typed_id(model, cursor.row_id)
        created_at = model.__table__.c.created_at
        statement = statement.where(
            sa.tuple_(created_at, model.__table__.c.id)
            < sa.tuple_(
                sa.literal(cursor.created_at, created_at.type),
                sa.literal(id_value, model.__table__.c.id.type),
            )
        )
        total = cursor.total
    statement = statement.order_by(model.created_at.desc(), model.id.desc()).limit(page.limit + 1)
    rows = list(session.exec(statement).all())
    if total is None:
        total = int(session.exec(select(sa.func.count()).select_from(model).where(*where)).one())
    next_cursor = None
    if len(rows) > page.limit:
        rows = rows[: page.limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id, total)
    return rows, total, next_cursor


def _typed_id(model: Any, row_id: str) -> Any:
    if isinstance(model.__table__.c.id.type, sa.Uuid):
        try:
            return uuid.UUID(row_id)
        except ValueError:
            raise ApiError(
                422, "VALIDATION_FAILED", "the cursor is not one this API gave out"
            ) from None
    return row_id
