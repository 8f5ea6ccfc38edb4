"""Events: what happened to a tenant's apps, said once, in order.

Each event is a row of the feed (`AppEvent`) written in the same transaction as the change it
describes, so it exists exactly when the change does. The feed is what the app's and the
tenant's event streams send and what outbound webhooks deliver.

An event said once carries a key: a step that runs again (a retried activity, a repeated
request) publishes the same key, finds the row already there and adds nothing, but still gets
the event back, so whatever announces it (webhook deliveries, commit statuses) is started again
with the same ids, and is therefore started at least once and run once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import Session, select

from core.models import AppEvent

# Events an outbound webhook can subscribe to.
BOOTSTRAP_FINISHED = "bootstrap.finished"
DEPLOYMENT_STARTED = "deployment.started"
DEPLOYMENT_FINISHED = "deployment.finished"
ROLLBACK_FINISHED = "rollback.finished"
PROMOTION_FINISHED = "promotion.finished"
PROMOTION_WAITING_WINDOW = "promotion.waiting_window"
PROMOTION_DEPLOYING = "promotion.deploying"
APPROVAL_REQUESTED = "approval.requested"
APPROVAL_GIVEN = "approval.given"
APPROVAL_REFUSED = "approval.refused"
RELEASE_REJECTED = "release.rejected"
RETENTION_FINISHED = "retention.finished"
CONFIG_CHANGED = "config.changed"
APP_DELETED = "app.deleted"
SUBSCRIBABLE = (
    BOOTSTRAP_FINISHED,
    DEPLOYMENT_STARTED,
    DEPLOYMENT_FINISHED,
    ROLLBACK_FINISHED,
    PROMOTION_FINISHED,
    PROMOTION_WAITING_WINDOW,
    PROMOTION_DEPLOYING,
    APPROVAL_REQUESTED,
    APPROVAL_GIVEN,
    APPROVAL_REFUSED,
    RELEASE_REJECTED,
    RETENTION_FINISHED,
    CONFIG_CHANGED,
    APP_DELETED,
)
# Progress on the streams only, as it happens: a deployment's stages and log lines, a
# bootstrap's stages, a promotion's status.
DEPLOYMENT_PROGRESS = "deployment"
BOOTSTRAP_PROGRESS = "bootstrap"
PROMOTION_PROGRESS = "promotion"


def publish(
    session: Session,
    *,
    tenant_id: uuid.UUID | None,
    app_id: uuid.UUID | None,
    kind: str,
    data: dict[str, Any],
    key: str | None = None,
) -> AppEvent:
    """The event, added to the session to be written with the change it describes. With a key,
    the event already written under it, if any (the change was made before)."""
    if key is not None:
        existing = session.exec(select(AppEvent).where(AppEvent.key == key)).first()
        if existing is not None:
            return existing
    event = AppEvent(tenant_id=tenant_id, app_id=app_id, kind=kind, data=data, key=key)
    session.add(event)
    return event
