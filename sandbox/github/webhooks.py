"""Webhook delivery: builds `push` and `ping` events as GitHub sends them and posts them, signed.

Deliveries run as tasks on the fake's event loop, so a push answers the git client at once and
the receiver hears about it a moment later, as with GitHub. Each delivery is recorded (what was
sent, what came back) for `GET /_sandbox/deliveries`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import deque
from typing import Any

import httpx
from dulwich.diff_tree import tree_changes
from dulwich.objects import Commit, ObjectID

from . import payloads
from .state import ZERO_SHA, GitHubState, iso, person

USER_AGENT = "GitHub-Hookshot/sandbox"
# A short retry covers a receiver that is restarting; GitHub itself leaves redelivery to users.
RETRY_DELAYS = (0.2, 1.0)
TIMEOUT_SECONDS = 10.0
MAX_COMMITS = 20


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookDeliverer:
    """Sends events to a repository's hooks and remembers every delivery."""

    def __init__(self, state: GitHubState) -> None:
        self.state = state
        self._records: deque[dict[str, Any]] = deque(maxlen=1000)
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_id = 1

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records]

    def deliver(
        self, repo: dict[str, Any], hook: dict[str, Any], event: str, payload: dict
    ) -> None:
        """Queue one delivery on the running loop; returns immediately."""
        task = asyncio.get_running_loop().create_task(self._send(repo, hook, event, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def deliver_to_hooks(self, repo: dict[str, Any], event: str, payload: dict) -> None:
        for hook in repo["hooks"]:
            if hook["active"] and (event in hook["events"] or "*" in hook["events"]):
                self.deliver(repo, hook, event, payload)

    async def _send(self, repo: dict[str, Any], hook: dict[str, Any], event: str, payload: dict):
        body = json.dumps(payload).encode()
        guid = str(uuid.uuid4())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": guid,
            "X-GitHub-Hook-ID": str(hook["id"]),
            "X-GitHub-Hook-Installation-Target-Type": "repository",
            "X-GitHub-Hook-Installation-Target-ID": str(repo["id"]),
        }
        secret = hook["config"].get("secret")
        if secret:
            headers["X-Hub-Signature-256"] = signature(secret, body)
            headers["X-Hub-Signature"] = (
                "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
            )
        with self._lock:
            record: dict[str, Any] = {
                "id": self._next_id,
                "guid": guid,
                "event": event,
                "hook_id": hook["id"],
                "repository": f"{repo['owner']}/{repo['name']}",
                "url": hook["config"]["url"],
                "request_headers": headers,
                "payload": payload,
                "status_code": None,
                "attempts": 0,
                "error": None,
                "delivered_at": None,
            }
            self._next_id += 1
            self._records.append(record)
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, trust_env=False) as client:
            for delay in (*RETRY_DELAYS, None):
                record["attempts"] += 1
                try:
                    response = await client.post(
                        hook["config"]["url"], content=body, headers=headers
                    )
                except httpx.HTTPError as exc:
                    record["error"] = f"{type(exc).__name__}: {exc}"
                    code: int | None = None
                else:
                    code = record["status_code"] = response.status_code
                    record["error"] = None if response.is_success else response.text[:500]
                    if response.status_code < 500:
                        break
                if delay is not None:
                    await asyncio.sleep(delay)
        record["delivered_at"] = iso(time.time())
        message = "OK" if code is not None and code < 400 else (record["error"] or f"HTTP {code}")
        self.state.record_hook_response(repo["id"], hook["id"], code, message)


def ping_payload(base: str, state: GitHubState, repo: dict[str, Any], hook: dict) -> dict:
    owner = state.account(repo["owner"])
    assert owner is not None
    return {
        "zen": "Keep it logically awesome.",
        "hook_id": hook["id"],
        "hook": payloads.hook(base, repo["owner"], repo["name"], hook),
        "repository": payloads.repository(base, repo, owner, full=False),
        "sender": payloads.bot(base),
    }


def push_payload(
    base: str,
    state: GitHubState,
    repo: dict[str, Any],
    ref: str,
    before: str,
    after: str,
    other_tips: list[str],
) -> dict[str, Any]:
    """The `push` event for one ref update; `other_tips` are the repository's other branch heads
    before the push, whose history is not new to the repository."""
    owner = state.account(repo["owner"])
    assert owner is not None
    html = f"{base}/{repo['owner']}/{repo['name']}"
    commits: list[dict[str, Any]] = []
    if after != ZERO_SHA:
        with state.open_git(repo["id"]) as git:
            exclude = [ObjectID(s.encode()) for s in [before, *other_tips] if s != ZERO_SHA]
            walker = git.get_walker(
                include=[ObjectID(after.encode())], exclude=exclude, max_entries=MAX_COMMITS
            )
            for entry in walker:
                commits.append(_commit_summary(git, entry.commit, html))
        commits.reverse()
    head_commit = commits[-1] if commits else None
    if head_commit is None and after != ZERO_SHA:
        with state.open_git(repo["id"]) as git:
            found = git[after.encode()]
            assert isinstance(found, Commit)
            head_commit = _commit_summary(git, found, html)
    repository = payloads.repository(base, repo, owner, full=False)
    # GitHub's push event carries these two as Unix timestamps, unlike every other payload.
    repository["created_at"] = int(repo["created_at"])
    repository["pushed_at"] = int(time.time())
    repository["owner"] = {**repository["owner"], "name": owner["login"], "email": None}
    bot = payloads.bot(base)
    return {
        "ref": ref,
        "before": before,
        "after": after,
        "repository": repository,
        "pusher": {"name": bot["login"], "email": None},
        "sender": bot,
        "installation": {
            "id": (state.installation_for(repo["owner"]) or {"id": 0})["id"],
            "node_id": payloads.node_id("Installation", repo["id"]),
        },
        "created": before == ZERO_SHA,
        "deleted": after == ZERO_SHA,
        "forced": False,
        "base_ref": None,
        "compare": f"{html}/compare/{before[:12]}...{after[:12]}",
        "commits": commits,
        "head_commit": head_commit,
    }


def _commit_summary(git: Any, commit: Commit, html: str) -> dict[str, Any]:
    parent_tree = None
    if commit.parents:
        parent = git[commit.parents[0]]
        parent_tree = parent.tree
    added: list[str] = []
    removed: list[str] = []
    modified: list[str] = []
    for change in tree_changes(git.object_store, parent_tree, commit.tree):
        if change.type == "add" and change.new is not None:
            added.append(change.new.path.decode())
        elif change.type == "delete" and change.old is not None:
            removed.append(change.old.path.decode())
        elif change.new is not None:
            modified.append(change.new.path.decode())
    sha = commit.id.decode()
    return {
        "id": sha,
        "tree_id": commit.tree.decode(),
        "distinct": True,
        "message": commit.message.decode(errors="replace").rstrip("\n"),
        "timestamp": iso(commit.commit_time),
        "url": f"{html}/commit/{sha}",
        "author": person(commit.author, commit.author_time),
        "committer": person(commit.committer, commit.commit_time),
        "added": added,
        "removed": removed,
        "modified": modified,
    }
