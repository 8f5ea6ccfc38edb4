"""Secret values at rest: sealed with the configured key, opened only with the same key."""

from __future__ import annotations

import pytest

from core.secrets import SecretKeyError, decrypt, encrypt
from core.settings import Settings

VALUE = "postgres://app:hunter2-very-secret@db/app"


def test_round_trip_with_any_string_as_key():
    for key in ("k", "a much longer key with spaces and ünïcode", ""):
        assert decrypt(encrypt(VALUE, key), key) == VALUE


def test_ciphertext_does_not_contain_the_value():
    sealed = encrypt(VALUE, "key-1")
    assert VALUE not in sealed
    assert "hunter2" not in sealed
    # Sealed twice, it reads differently: equal values cannot be spotted in the database.
    assert encrypt(VALUE, "key-1") != sealed


def test_wrong_key_fails_clearly_without_the_value():
    sealed = encrypt(VALUE, "key-1")
    with pytest.raises(SecretKeyError, match="SHIPYARD_SECRET_KEY") as failed:
        decrypt(sealed, "key-2")
    assert "hunter2" not in str(failed.value)
    with pytest.raises(SecretKeyError):
        decrypt(sealed[:-4] + "AAAA", "key-1")


def test_production_refuses_an_empty_or_placeholder_key():
    real = {"admin_token": "adm-real-token", "github_webhook_secret": "whsec-real"}
    for placeholder in ("", "changethis"):
        with pytest.raises(ValueError, match="SHIPYARD_SECRET_KEY"):
            Settings(environment="production", secret_key=placeholder, **real)  # type: ignore[arg-type]
    settings = Settings(environment="production", secret_key="a-real-key", **real)  # type: ignore[arg-type]
    assert "a-real-key" not in repr(settings)
