"""Who is signed in to the console: the session cookie, resolved on each page, and the CSRF
token every form of the session carries."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from api.deps import SessionDep
from core import console_sessions
from core.models import ApiKey, Tenant

COOKIE = "shipyard_session"
# Before sign-in there is no session to hold a CSRF token: the sign-in form carries one that
# must match this cookie (double submit), so no other site can sign a browser in.
SIGN_IN_COOKIE = "shipyard_sign_in"
CSRF_FIELD = "csrf_token"


class SignInRequired(Exception):
    """No live session: the page sends the browser to the sign-in form."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in session: its token (which the console calls the API with), its key's
    subject, role and scopes, and its tenant."""

    token: str
    session_id: str
    key_id: str
    csrf_token: str
    subject: str
    role: str
    scopes: frozenset[str]
    tenant_id: uuid.UUID
    tenant_slug: str
    tenant_name: str

    def may(self, scope: str) -> bool:
        return scope in self.scopes


def resolve_viewer(db: Session, token: str | None) -> Viewer | None:
    if not token:
        return None
    row = console_sessions.resolve(db, token)
    if row is None:
        return None
    key = db.get(ApiKey, row.key_id)
    tenant = db.get(Tenant, row.tenant_id)
    if key is None or key.revoked_at is not None or tenant is None:
        return None
    return Viewer(
        token=token,
        session_id=row.id,
        key_id=key.id,
        csrf_token=row.csrf_token,
        subject=key.subject,
        role=key.role,
        scopes=frozenset(key.scopes),
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        tenant_name=tenant.name,
    )


def signed_in(request: Request, db: SessionDep) -> Viewer:
    viewer = resolve_viewer(db, request.cookies.get(COOKIE))
    if viewer is None:
        raise SignInRequired()
    return viewer


ViewerDep = Annotated[Viewer, Depends(signed_in)]


def csrf_matches(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())
