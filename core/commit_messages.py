"""What pushed commits say, kept from GitHub's push deliveries, so a deployment can show the
message of the commit it deploys."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from core.models import CommitMessage

MAX_MESSAGE = 2000
MAX_AUTHOR = 200


def pushed_commits(payload: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(sha, message, author) of each commit a push delivery names, its head commit included."""
    commits = [c for c in payload.get("commits") or [] if isinstance(c, dict)]
    head = payload.get("head_commit")
    if isinstance(head, dict):
        commits.append(head)
    found: dict[str, tuple[str, str, str]] = {}
    for commit in commits:
        sha = str(commit.get("id") or "")
        message = commit.get("message")
        if len(sha) != 40 or not isinstance(message, str):
            continue
        author = commit.get("author") if isinstance(commit.get("author"), dict) else {}
        name = str((author or {}).get("name") or "")
        found[sha] = (sha, message[:MAX_MESSAGE], name[:MAX_AUTHOR])
    return list(found.values())


def record(session: Session, app_id: uuid.UUID, commits: Iterable[tuple[str, str, str]]) -> None:
    """Keeps each commit's message once; a message already kept stays as it is (a commit's
    message never changes, and a redelivered push says the same)."""
    wanted = {sha: (message, author) for sha, message, author in commits}
    if not wanted:
        return
    known = set(
        session.exec(
            select(CommitMessage.sha).where(
                CommitMessage.app_id == app_id, col(CommitMessage.sha).in_(list(wanted))
            )
        ).all()
    )
    for sha, (message, author) in wanted.items():
        if sha not in known:
            session.add(CommitMessage(app_id=app_id, sha=sha, message=message, author=author))


def lookup(
    session: Session, keys: Iterable[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], str]:
    """The messages kept for these (app, sha) pairs, in one query."""
    pairs = list({key for key in keys if key[1]})
    if not pairs:
        return {}
    rows = session.exec(
        select(CommitMessage.app_id, CommitMessage.sha, CommitMessage.message).where(
            sa.tuple_(col(CommitMessage.app_id), col(CommitMessage.sha)).in_(pairs)
        )
    ).all()
    return {(app_id, sha): message for app_id, sha, message in rows}
