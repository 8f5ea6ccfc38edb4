"""Which release a rollback puts back in an environment, and why one is refused (DESIGN.md §4).

One rule for the rollback route, which chooses the target, and for retention, which keeps the
last releases a rollback could still put back."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from sqlmodel import Session, col, select

from core import lifecycle
from core.models import App, Environment, Release, ReleaseActivation


class RollbackRefused(Exception):
    """There is no release to put back, or the one asked for may not be."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ReleaseNotFound(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def rollback_refusal(
    *, version: int, state: str, environment: str, ran_there: bool, is_current: bool
) -> str | None:
    """Why a rollback may not put this release back in the environment, or None when it may:
    never a REJECTED release, only what ran there, and not what runs there now."""
    if state == lifecycle.REJECTED:
        return f"release v{version} is REJECTED"
    if not ran_there:
        return (
            f"release v{version} never ran in {environment}: "
            "a rollback only puts back what ran there; promote it instead"
        )
    if is_current:
        return f"release v{version} is already current in {environment}"
    return None


def previous_good(
    activations: Sequence[tuple[uuid.UUID, str]],
    current: uuid.UUID | None,
    state_of: Callable[[uuid.UUID], str | None],
) -> uuid.UUID | None:
    """From an environment's activations (release id, how it came to run), oldest first: the
    most recent release that ran before the current one, skipping REJECTED releases (and ones
    `state_of` no longer knows) and ones a rollback moved away from (until they are deployed
    again), so that rolling back twice goes two steps back instead of returning to the bad
    release."""
    abandoned: set[uuid.UUID] = set()
    running: uuid.UUID | None = None
    for release_id, via in activations:
        if via == "rollback" and running is not None:
            abandoned.add(running)
        else:
            abandoned.discard(release_id)
        running = release_id
    seen: set[uuid.UUID] = set()
    for release_id, _via in reversed(activations):
        if release_id == current or release_id in abandoned or release_id in seen:
            continue
        seen.add(release_id)
        state = state_of(release_id)
        if state is not None and state != lifecycle.REJECTED:
            return release_id
    return None


def rollback_target(
    session: Session, app: App, environment: Environment, to_version: int | None
) -> Release:
    """The release a rollback of the environment puts back: `to_version`, or by default the
    previous good one. Raises ReleaseNotFound or RollbackRefused saying why there is none."""
    ledger = session.exec(
        select(ReleaseActivation)
        .where(
            ReleaseActivation.app_id == app.id, ReleaseActivation.environment == environment.name
        )
        .order_by(col(ReleaseActivation.created_at))
    ).all()
    if to_version is not None:
        release = session.exec(
            select(Release).where(Release.app_id == app.id, Release.version == to_version)
        ).first()
        if release is None:
            raise ReleaseNotFound(f"release v{to_version} of app {app.slug}")
        refusal = rollback_refusal(
            version=release.version,
            state=release.lifecycle,
            environment=environment.name,
            ran_there=any(activation.release_id == release.id for activation in ledger),
            is_current=release.id == environment.current_release_id,
        )
        if refusal is not None:
            raise RollbackRefused(refusal)
        return release

    def state_of(release_id: uuid.UUID) -> str | None:
        release = session.get(Release, release_id)
        return release.lifecycle if release is not None else None

    chosen = previous_good(
        [(activation.release_id, activation.via) for activation in ledger],
        environment.current_release_id,
        state_of,
    )
    found = session.get(Release, chosen) if chosen is not None else None
    if found is None:
        raise RollbackRefused(f"{environment.name} has no earlier good release to roll back to")
    return found
