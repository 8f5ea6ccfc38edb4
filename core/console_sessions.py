"""Web console sessions `shs_<id>_<secret>`: minted at sign-in, resolved on each request,
ended at sign-out. Like API keys, only a hash of the secret is stored."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from core.clock import utcnow
from core.keys import hash_secret, secret_matches
from core.models import ApiKey, ConsoleSession

PREFIX = "shs"


@dataclass(frozen=True)
class StartedSession:
    token: str
    session: ConsoleSession


def is_session_token(presented: str) -> bool:
    return presented.startswith(PREFIX + "_")


def start(db: Session, key: ApiKey, lifetime: timedelta) -> StartedSession:
    session_id = secrets.token_hex(8)
    secret = secrets.token_hex(32)
    now = utcnow()
    row = ConsoleSession(
        id=session_id,
        tenant_id=key.tenant_id,
        key_id=key.id,
        secret_hash=hash_secret(secret),
        csrf_token=secrets.token_hex(32),
        created_at=now,
        expires_at=now + lifetime,
    )
    db.add(row)
    db.commit()
    return StartedSession(f"{PREFIX}_{session_id}_{secret}", row)


def resolve(db: Session, presented: str, now: datetime | None = None) -> ConsoleSession | None:
    """The live session this token opens, or None (unknown, wrong secret, ended, expired)."""
    parts = presented.split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    row = db.get(ConsoleSession, parts[1])
    if row is None or not secret_matches(parts[2], row.secret_hash):
        return None
    if row.ended_at is not None or row.expires_at <= (now or utcnow()):
        return None
    return row


def end(db: Session, row: ConsoleSession) -> None:
    if row.ended_at is None:
        row.ended_at = utcnow()
        db.add(row)
        db.commit()
