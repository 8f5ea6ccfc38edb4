"""Encrypting values at rest (environment secrets, kept idempotent answers), keyed by
SHIPYARD_SECRET_KEY.

Values are sealed with Fernet (AES-128-CBC with an HMAC, from `cryptography`). The Fernet key
is derived from the configured string with SHA-256, so any string works as a key; production
refuses an empty or placeholder one (core.settings).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyError(Exception):
    """A stored value cannot be opened with the configured key."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(value: str, secret_key: str) -> str:
    """The value sealed with the key, as text fit for a database column."""
    return _fernet(secret_key).encrypt(value.encode()).decode()


def decrypt(ciphertext: str, secret_key: str) -> str:
    """The value sealed by `encrypt` with the same key; SecretKeyError otherwise."""
    try:
        return _fernet(secret_key).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            "a stored secret cannot be decrypted with the configured SHIPYARD_SECRET_KEY: "
            "the key was changed since the secret was written, or the value is damaged"
        ) from None
