"""Pauses of automated deploys (DESIGN.md §4, operator controls): an app is paused when it or
its tenant is. While paused, pushes and CI releases are held by the app's deploy run, and
manual deploys and promotions are refused unless forced; rollbacks stay allowed."""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from core.models import AppPause

APP = "app"
TENANT = "tenant"


def app_key(app_id: uuid.UUID | str) -> str:
    return f"app:{app_id}"


def tenant_key(tenant_id: uuid.UUID | str) -> str:
    return f"tenant:{tenant_id}"


def pause_of(
    session: Session, app_id: uuid.UUID | str, tenant_id: uuid.UUID | str, *, lock: bool = False
) -> AppPause | None:
    """What pauses the app: its own pause first, else its tenant's; None when it runs freely.
    `lock` takes the pause rows for update, so a resume waits for a check in progress."""
    query = select(AppPause).where(col(AppPause.key).in_([app_key(app_id), tenant_key(tenant_id)]))
    if lock:
        query = query.with_for_update()
    pauses = {pause.scope: pause for pause in session.exec(query).all()}
    return pauses.get(APP) or pauses.get(TENANT)


def describe(pause: AppPause) -> str:
    """How the Web UI and messages say it: who, when, why, and whether the tenant's."""
    whose = "the tenant is paused" if pause.scope == TENANT else "the app is paused"
    reason = f": {pause.reason}" if pause.reason else ""
    return f"{whose} by {pause.paused_by} since {pause.paused_at.isoformat()}{reason}"
