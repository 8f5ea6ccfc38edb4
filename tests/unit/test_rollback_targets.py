"""The rollback rule of core.releases: what a rollback may put back, and the default target."""

from __future__ import annotations

import uuid

from core.releases import previous_good, rollback_refusal


def test_a_rollback_puts_back_only_what_ran_there_and_is_not_rejected_or_current() -> None:
    def refusal(state: str, ran_there: bool = True, is_current: bool = False) -> str | None:
        return rollback_refusal(
            version=3, state=state, environment="prod", ran_there=ran_there, is_current=is_current
        )

    assert refusal("PROD") is None
    assert refusal("REJECTED") == "release v3 is REJECTED"
    never = refusal("STABLE", ran_there=False)
    assert never is not None and "never ran in prod" in never
    current = refusal("PROD", is_current=True)
    assert current == "release v3 is already current in prod"


def test_the_default_target_goes_one_step_further_back_after_each_rollback() -> None:
    v1, v2, v3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    states = {v1: "PROD", v2: "PROD", v3: "PROD"}
    deployed = [(v1, "promotion"), (v2, "promotion"), (v3, "promotion")]
    assert previous_good(deployed, v3, states.get) == v2
    # After rolling back from v3 to v2, the next rollback goes to v1, not back to v3.
    assert previous_good([*deployed, (v2, "rollback")], v2, states.get) == v1


def test_rejected_and_forgotten_releases_are_never_the_default_target() -> None:
    v1, v2, v3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    deployed = [(v1, "deploy"), (v2, "deploy"), (v3, "deploy")]
    assert previous_good(deployed, v3, {v1: "DEV", v2: "REJECTED", v3: "DEV"}.get) == v1
    assert previous_good(deployed, v3, {v3: "DEV"}.get) is None
