"""Failed authentications, limited per client address and per key id from an address.

Two windows of failures (core.counters: shared through Redis when configured):
- per client address: every credential that did not authenticate, whatever it was;
- per (key id, client address): wrong secrets presented for one `shp_<id>_...` key id.

Both are consulted before the credential is checked, so a guesser past either limit gets 429
without a lookup, and a right guess from that address is refused too: checking the secret
first and letting a success through would leave the guessing rate unlimited, which is what
the limit is for. The key id is counted per address, not on its own, so that wrong guesses at
a key id from one address never lock its owner out elsewhere. (Guesses spread over many
addresses are each held to these limits; the 256-bit secrets are what keeps them from ever
succeeding.) A client sharing its address with an attacker, behind one NAT or a proxy whose
X-Forwarded-For uvicorn is not told to trust (FORWARDED_ALLOW_IPS), is held up with it.
"""

from __future__ import annotations

import re

from fastapi import Request

from api.errors import ApiError
from core.counters import Counters
from core.keys import parse_key

# What minted key ids look like; anything else is counted by address only, so a made-up id
# cannot name (or bloat) another id's window.
KEY_ID = re.compile(r"[0-9a-f]{1,16}")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def presented_key_id(credential: str) -> str | None:
    parsed = parse_key(credential)
    if parsed is None or not KEY_ID.fullmatch(parsed[0]):
        return None
    return parsed[0]


class FailedAuthGuard:
    def __init__(self, counters: Counters, per_address: int, per_key: int) -> None:
        self._counters = counters
        self._per_address = per_address
        self._per_key = per_key

    def refuse_if_limited(self, address: str, credential: str) -> None:
        """429 with Retry-After when the address, or this key id from it, failed too often."""
        key_id = presented_key_id(credential)
        windows = [self._counters.peek(self._per_address, "auth-failures", address)]
        if key_id is not None:
            windows.append(self._counters.peek(self._per_key, "auth-failures-key", key_id, address))
        spent = [window for window in windows if not window.allowed]
        if spent:
            raise _limited(max(window.reset_seconds for window in spent))

    def failed(self, address: str, credential: str) -> None:
        self._counters.hit(self._per_address, "auth-failures", address)
        key_id = presented_key_id(credential)
        if key_id is not None:
            self._counters.hit(self._per_key, "auth-failures-key", key_id, address)


def _limited(reset_seconds: int) -> ApiError:
    return ApiError(
        429,
        "AUTH_RATE_LIMITED",
        "too many failed authentications from this address; check the API key and try again "
        f"in {reset_seconds}s",
        headers={"Retry-After": str(reset_seconds)},
    )
