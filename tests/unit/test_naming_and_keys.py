"""Slugs, namespaces and API key formats."""

from __future__ import annotations

import pytest

from core.keys import mint_key, parse_key, secret_matches
from core.naming import namespace_for, slug_problem


@pytest.mark.parametrize("slug", ["a", "shop", "my-app-2", "a" * 30])
def test_valid_slugs(slug):
    assert slug_problem(slug) is None


@pytest.mark.parametrize("slug", ["", "2shop", "Shop", "my_app", "a" * 31, "trailing-", "émoji"])
def test_invalid_slugs(slug):
    assert slug_problem(slug)


def test_namespace_is_plain_when_short():
    assert namespace_for("acme", "shop", "dev") == "acme-shop-dev"


def test_long_namespace_is_shortened_stably():
    name = namespace_for("t" * 30, "a" * 30, "staging")
    assert len(name) <= 63
    assert name == namespace_for("t" * 30, "a" * 30, "staging")
    assert name != namespace_for("t" * 30, "a" * 30, "prod")
    assert not name.startswith("-") and name[-9] == "-"


def test_keys_round_trip():
    minted = mint_key()
    key_id, secret = parse_key(minted.plaintext) or ("", "")
    assert key_id == minted.key_id
    assert minted.plaintext.startswith(f"shp_{key_id}_")
    assert secret_matches(secret, minted.secret_hash)
    assert not secret_matches(secret + "0", minted.secret_hash)
    assert secret not in minted.secret_hash


@pytest.mark.parametrize("bad", ["", "shp", "shp_abc", "xyz_a_b", "shp__b", "shp_a_", "shp_a_b_c"])
def test_malformed_keys(bad):
    assert parse_key(bad) is None
