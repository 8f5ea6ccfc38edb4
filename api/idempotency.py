"""Idempotency-Key on every mutating POST, as in Stripe's API: the first request with a key runs,
and its answer is kept for a day with a fingerprint of the request; the same key with the same
request replays that answer, with another request it is 422 IDEMPOTENCY_KEY_REUSED, and while the
first is still running it is 409 IDEMPOTENCY_KEY_IN_PROGRESS. The claim is a row with a unique key
in the database, so it holds across API replicas.

Only successful answers are kept: a request that failed (refused, or Temporal unreachable) gave
the key back, so the client retries it with the same key. Kept answers are sealed with
SHIPYARD_SECRET_KEY like environment secrets: some carry a new API key, shown once, and again
only to a replay of the very request that made it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import refuse
from api.routers import API_PREFIX
from core.clock import utcnow
from core.models import IdempotencyKey
from core.secrets import decrypt, encrypt

HEADER = "idempotency-key"
KEPT_FOR = timedelta(hours=24)
# A claim this old whose answer never came belonged to a request that died with its process.
ABANDONED_AFTER = timedelta(minutes=5)
ACCEPTABLE_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
# Deliveries from GitHub carry their own dedupe (X-GitHub-Delivery).
EXEMPT = (f"{API_PREFIX}/webhooks/github",)
MAX_KEPT_BODY = 1_000_000


@dataclass(frozen=True)
class Claim:
    """What the key says about this request: run it, replay an answer, or refuse."""

    run: bool = False
    replay: IdempotencyKey | None = None
    refusal: tuple[int, str, str] | None = None


def caller(scope: Scope) -> str | None:
    """Whose keys these are: the API key's id, or a digest of another credential; keys are
    never shared between callers. None without a credential (the request will be refused)."""
    headers = dict(scope["headers"])
    presented = headers.get(b"x-api-key", b"").decode("latin-1")
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    if not presented and authorization.lower().startswith("bearer "):
        presented = authorization[7:].strip()
    if not presented:
        return None
    parts = presented.split("_")
    if len(parts) >= 3 and parts[0] == "shp":
        return f"key:{parts[1][:60]}"
    return "token:" + hashlib.sha256(presented.encode()).hexdigest()[:32]


def fingerprint(scope: Scope, body: bytes) -> str:
    """The request as it matters: method, path, query and the JSON body in a canonical form."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
        digest.update(part.encode() + b"\0")
    digest.update(canonical)
    return digest.hexdigest()


class IdempotencyStore:
    def __init__(self, engine: Engine, secret_key: str) -> None:
        self._engine = engine
        self._secret_key = secret_key

    def opened(self, kept: IdempotencyKey) -> bytes:
        return decrypt(kept.response_body or "", self._secret_key).encode()

    def claim(self, owner: str, key: str, printed: str) -> Claim:
        # A key given back, or found abandoned, between two looks is claimed on the next.
        for _look in range(3):
            now = utcnow()
            with Session(self._engine, expire_on_commit=False) as session:
                session.execute(
                    sa.delete(IdempotencyKey).where(col(IdempotencyKey.expires_at) < now)
                )
                session.add(
                    IdempotencyKey(
                        owner=owner, key=key, fingerprint=printed, expires_at=now + KEPT_FOR
                    )
                )
                try:
                    session.commit()
                    return Claim(run=True)
                except IntegrityError:
                    session.rollback()
                held = session.get(IdempotencyKey, (owner, key))
                if held is None:
                    continue
                if held.fingerprint != printed:
                    return Claim(refusal=(422, "IDEMPOTENCY_KEY_REUSED", REUSED))
                if held.response_status is not None:
                    return Claim(replay=held)
                if now - held.created_at < ABANDONED_AFTER:
                    return Claim(refusal=(409, "IDEMPOTENCY_KEY_IN_PROGRESS", IN_PROGRESS))
                session.delete(held)
                session.commit()
        return Claim(refusal=(409, "IDEMPOTENCY_KEY_IN_PROGRESS", IN_PROGRESS))

    def keep(self, owner: str, key: str, status: int, body: bytes, content_type: str) -> None:
        with Session(self._engine) as session:
            held = session.get(IdempotencyKey, (owner, key))
            if held is not None:
                held.response_status = status
                held.response_body = encrypt(
                    body.decode("utf-8", errors="replace"), self._secret_key
                )
                held.response_content_type = content_type
                session.add(held)
                session.commit()

    def give_back(self, owner: str, key: str) -> None:
        with Session(self._engine) as session:
            session.execute(
                sa.delete(IdempotencyKey).where(
                    col(IdempotencyKey.owner) == owner, col(IdempotencyKey.key) == key
                )
            )
            session.commit()


REUSED = "this Idempotency-Key was used for a different request; use a new key for a new request"
IN_PROGRESS = "a request with this Idempotency-Key is still running; ask again when it has ended"


class IdempotencyMiddleware:
    """Pure ASGI, so it sees the raw body and the whole answer of every POST it guards."""

    def __init__(self, app: ASGIApp, engine: Engine, secret_key: str) -> None:
        self.app = app
        self.store = IdempotencyStore(engine, secret_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _key(scope)
        owner = caller(scope) if key is not None else None
        if key is None or owner is None:
            await self.app(scope, receive, send)
            return
        if not ACCEPTABLE_KEY.match(key):
            await refuse(scope, send, 422, "VALIDATION_FAILED", "Idempotency-Key must be 1 "
                          "to 200 printable characters")  # fmt: skip
            return
        body = await _read_body(receive)
        claim = await asyncio.to_thread(self.store.claim, owner, key, fingerprint(scope, body))
        if claim.refusal is not None:
            await refuse(scope, send, *claim.refusal)
            return
        if claim.replay is not None:
            await _replay(send, claim.replay, self.store.opened(claim.replay))
            return

        async def settle(answer: _Answer) -> None:
            if 200 <= answer.status < 300 and len(answer.body) <= MAX_KEPT_BODY:
                await asyncio.to_thread(
                    self.store.keep, owner, key, answer.status, bytes(answer.body),
                    answer.content_type,
                )  # fmt: skip
            else:
                await asyncio.to_thread(self.store.give_back, owner, key)

        answer = _Answer(send, settle)
        try:
            await self.app(scope, _replaying(body), answer.send)
        except BaseException:
            if not answer.settled:
                await asyncio.to_thread(self.store.give_back, owner, key)
            raise


def _key(scope: Scope) -> str | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path = scope["path"]
    if not path.startswith(API_PREFIX) or path in EXEMPT:
        return None
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replaying(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


class _Answer:
    """Passes the answer through, keeping a copy; the key is settled (the answer kept, or the
    key given back) before the answer's last part leaves, so a client that has the answer and
    asks again finds it kept."""

    def __init__(self, send: Send, settle: Callable[[_Answer], Awaitable[None]]) -> None:
        self._send = send
        self._settle = settle
        self.settled = False
        self.status = 500
        self.content_type = "application/json"
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    self.content_type = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.body.extend(message.get("body", b""))
            if not message.get("more_body", False) and not self.settled:
                self.settled = True
                await self._settle(self)
        await self._send(message)


async def _replay(send: Send, kept: IdempotencyKey, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": kept.response_status or 200,
            "headers": [
                (b"content-type", kept.response_content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode()),
                (b"idempotent-replayed", b"true"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds the Idempotency-Key header to every operation it guards in the OpenAPI schema."""
    header = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": "Makes a retry safe: the same key and request replay the first answer "
        "for 24 hours (Idempotent-Replayed: true); another request with the key is 422 "
        "IDEMPOTENCY_KEY_REUSED, one while the first still runs 409 IDEMPOTENCY_KEY_IN_PROGRESS.",
    }
    for path, operations in schema.get("paths", {}).items():
        post = operations.get("post")
        if post is None or not path.startswith(API_PREFIX) or path in EXEMPT:
            continue
        post.setdefault("parameters", []).append(header)
        post.setdefault("responses", {}).setdefault("409", {"description": "Conflict"})
    return schema
