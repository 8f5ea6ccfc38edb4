"""The environment lock's records: acquired (refused, or waited for) and released."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from workflows.contracts.activity import Activity

ENVIRONMENT_LOCKED = "ENVIRONMENT_LOCKED"

HolderKind = Literal["deploy", "promotion", "rollback", "deletion"]


class LockInput(BaseModel):
    """The environment (by app and name) and who holds, or wants, its lock."""

    app_id: str
    environment: str
    holder_workflow_id: str
    holder_kind: HolderKind
    # False: a held lock is refused at once (ENVIRONMENT_LOCKED, not retried). True: the
    # caller is recorded as waiting and the refusal is retried until the lock is free.
    wait: bool = False


class LockHolder(BaseModel):
    workflow_id: str
    kind: str

    def waiting_message(self, environment: str) -> str:
        return f"Waiting for {environment}: locked by {self.kind} {self.workflow_id}"


class LockGrant(BaseModel):
    """The lock is held; `took_over_from` names a holder that had ended without releasing it,
    `waited_for` the holder this operation waited for before it got the lock."""

    took_over_from: str | None = None
    waited_for: str | None = None


ACQUIRE: Activity[LockInput, LockGrant] = Activity("locks.acquire", LockGrant)
RELEASE: Activity[LockInput, None] = Activity("locks.release")
