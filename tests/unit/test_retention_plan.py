"""The retention plan as a pure function: policies per state, and what is always kept."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core.clock import utcnow
from core.retention import Ledger, Policy, ReleaseFacts, plan

NOW = utcnow()
APP = uuid.uuid4()


def release(version: int, state: str, age_days: float) -> ReleaseFacts:
    return ReleaseFacts(
        id=uuid.uuid4(), app_id=APP, app_slug="shop", repository="acme/shop", version=version,
        lifecycle=state, image_digest=f"sha256:{version:064d}", image_ref=f"r@{version}",
        created_at=NOW - timedelta(days=age_days),
    )  # fmt: skip


def actions(ledger: Ledger, targets: int = 3) -> dict[int, tuple[str, list[str]]]:
    return {
        d.release.version: (d.action, [r.code for r in d.reasons])
        for d in plan(ledger, NOW, targets)
    }


def test_keep_last_and_max_age_both_apply():
    releases = [release(v, "DEV", age) for v, age in ((1, 50), (2, 20), (3, 10), (4, 1))]
    ledger = Ledger(releases=releases, policies={APP: {"DEV": Policy(2, 30)}})
    assert actions(ledger) == {
        4: ("keep", ["policy_keep_last"]),
        3: ("keep", ["policy_keep_last"]),
        2: ("delete", ["beyond_keep_last"]),
        1: ("delete", ["beyond_keep_last", "max_age"]),
    }


def test_active_rollback_targets_and_in_flight_are_kept_whatever_the_policy():
    releases = [release(v, "PROD", 500) for v in range(1, 8)]
    ids = {r.version: r.id for r in releases}
    ledger = Ledger(
        releases=releases,
        policies={APP: {"PROD": Policy(0, 1)}},
        current={(APP, "prod"): ids[6]},
        activations={(APP, "prod"): [ids[6], ids[5], ids[6], ids[4], ids[3], ids[2]]},
        in_flight={ids[1]: ["promotion to prod is pending_approval"]},
    )
    got = actions(ledger, targets=2)
    assert got[6] == ("keep", ["active"])
    assert got[5] == ("keep", ["rollback_target"]) and got[4] == ("keep", ["rollback_target"])
    assert got[3][0] == "delete" and got[2][0] == "delete" and got[7][0] == "delete"
    assert got[1] == ("keep", ["in_flight"])


def test_defaults_cover_every_state_and_rejected_is_not_a_rollback_target():
    rejected = release(2, "REJECTED", 30)
    stable = release(1, "STABLE", 1)
    ledger = Ledger(
        releases=[rejected, stable],
        current={(APP, "prod"): stable.id},
        activations={(APP, "prod"): [stable.id, rejected.id]},
    )
    got = actions(ledger)
    assert got[2] == ("delete", ["max_age"])
    assert got[1] == ("keep", ["active"])
