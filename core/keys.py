"""API keys `shp_<id>_<secret>`: minted, parsed and checked against their stored hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "shp"
ROLES = ("admin", "member")
SCOPES = (
    "apps:read",
    "apps:write",
    "deploy",
    "promote",
    "approve",
    "freeze:override",
    "keys",
    "retention",
    # Register images a CI job built (POST /apps/{app_id}/releases): a CI key needs only this.
    "releases:write",
    # Manage the tenant's outbound webhooks and read their deliveries.
    "webhooks",
)
MEMBER_DEFAULT_SCOPES = ("apps:read", "apps:write", "deploy", "promote")


@dataclass(frozen=True)
class MintedKey:
    key_id: str
    plaintext: str
    secret_hash: str


def hash_secret(secret: str) -> str:
    # Secrets are 256 random bits, so a plain SHA-256 is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_key() -> MintedKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_hex(32)
    return MintedKey(key_id, f"{PREFIX}_{key_id}_{secret}", hash_secret(secret))


def parse_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, or None."""
    parts = presented.split("_")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def default_scopes(role: str) -> list[str]:
    return list(SCOPES) if role == "admin" else list(MEMBER_DEFAULT_SCOPES)
