"""The release lifecycle of DESIGN.md §3: states, named actions and which promotions it allows.

Pure functions over a release's state and its app's pipeline, shared by the API (lifecycle
actions, preflight) and the promotion workflow, so both decide the same way.

    BUILD → DEV → RC → QA → STABLE → STAGING → PROD      (REJECTED from RC or QA, for good)

Apps whose pipeline has no `qa` skip RC and QA: STABLE is declared on the lowest environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

BUILD = "BUILD"
DEV = "DEV"
RC = "RC"
QA = "QA"
STABLE = "STABLE"
STAGING = "STAGING"
PROD = "PROD"
REJECTED = "REJECTED"
STATES = (BUILD, DEV, RC, QA, STABLE, STAGING, PROD, REJECTED)

DECLARE_RC = "declare-rc"
ACCEPT_RC = "accept-rc"
REJECT_RC = "reject-rc"
DECLARE_STABLE = "declare-stable"
DECLARE_REJECTED = "declare-rejected"
DEPLOY_STABLE = "deploy-stable"
ActionName = Literal[
    "declare-rc", "accept-rc", "reject-rc", "declare-stable", "declare-rejected", "deploy-stable"
]
ACTIONS: tuple[str, ...] = get_args(ActionName)
DEPLOYING_ACTIONS = (ACCEPT_RC, DEPLOY_STABLE)

STATE_OF_ENVIRONMENT = {"dev": DEV, "qa": QA, "staging": STAGING, "prod": PROD}
# Where deploy-stable may take a release, and from which states.
STABLE_TARGETS = {"staging": (STABLE,), "prod": (STABLE, STAGING)}


class LifecycleError(Exception):
    """An action the release's current state does not allow; names the ones it does."""

    def __init__(self, current: str, allowed: Sequence[str], reason: str | None = None) -> None:
        self.current = current
        self.allowed = list(allowed)
        choices = ", ".join(self.allowed) if self.allowed else "none"
        self.reason = reason or f"the release is {current}"
        super().__init__(f"{self.reason}; allowed actions: {choices}")


@dataclass(frozen=True)
class Transition:
    """Where an action takes a release. For a deploying action `new_state` is the state the
    release reaches once the promotion to `deploys_to` succeeds, not before."""

    new_state: str
    deploys_to: str | None = None


def has_qa(pipeline: Sequence[str]) -> bool:
    return "qa" in pipeline


def state_after_deploy(env_name: str) -> str | None:
    """The state a release is in once it runs in the environment; None for an environment
    whose name has no place in the lifecycle (it leaves the state as it was)."""
    return STATE_OF_ENVIRONMENT.get(env_name)


def stable_targets(state: str, pipeline: Sequence[str]) -> list[str]:
    """The environments deploy-stable may take a release in `state` to, in pipeline order."""
    return [env for env in pipeline if state in STABLE_TARGETS.get(env, ())]


def allowed_actions(state: str, pipeline: Sequence[str]) -> list[str]:
    """The actions a release in `state` allows, in the lifecycle's order."""
    qa = has_qa(pipeline)
    allowed = []
    if state == DEV and qa:
        allowed.append(DECLARE_RC)
    if state == RC and qa:
        allowed.append(ACCEPT_RC)
    if state == RC:
        allowed.append(REJECT_RC)
    if state == QA or (state == DEV and not qa):
        allowed.append(DECLARE_STABLE)
    if state == QA or (state == DEV and not qa):
        # Without a qa stage the lowest environment is where a release is judged, so it can
        # be rejected there too; otherwise a bad release could never be stopped for good.
        allowed.append(DECLARE_REJECTED)
    if stable_targets(state, pipeline):
        allowed.append(DEPLOY_STABLE)
    return allowed


def apply(
    state: str, action: str, pipeline: Sequence[str], target_env: str | None = None
) -> Transition:
    """The transition `action` makes from `state`, or LifecycleError if it is not allowed."""
    allowed = allowed_actions(state, pipeline)
    if action not in allowed:
        if action not in ACTIONS:
            raise LifecycleError(state, allowed, f"{action!r} is not a lifecycle action")
        raise LifecycleError(state, allowed)
    if action == DECLARE_RC:
        return Transition(RC)
    if action == ACCEPT_RC:
        return Transition(QA, deploys_to="qa")
    if action in (REJECT_RC, DECLARE_REJECTED):
        return Transition(REJECTED)
    if action == DECLARE_STABLE:
        return Transition(STABLE)
    targets = stable_targets(state, pipeline)
    if target_env not in targets:
        asked = f"to {target_env!r}" if target_env else "without an environment"
        raise LifecycleError(
            state,
            allowed,
            f"deploy-stable of a {state} release {asked} is not possible; "
            f"it can go to: {', '.join(targets)}",
        )
    return Transition(STATE_OF_ENVIRONMENT[target_env], deploys_to=target_env)


def may_promote(state: str, env: str, pipeline: Sequence[str]) -> tuple[bool, str]:
    """Whether a release in `state` may be promoted to `env`, and why (for preflight)."""
    if state == REJECTED:
        return False, "the release is REJECTED and can never be promoted again"
    if env not in pipeline:
        return False, f"{env!r} is not in the app's pipeline ({' → '.join(pipeline)})"
    if env == pipeline[0]:
        return False, f"{env} is the first environment: it takes deploys, not promotions"
    if state == BUILD:
        return False, "the release has not been deployed anywhere yet"
    required = _states_for(env)
    if required is None or state in required:
        return True, f"a {state} release may be promoted to {env}"
    actions = ", ".join(allowed_actions(state, pipeline)) or "none"
    return False, (
        f"the release is {state}; {env} takes releases that are {' or '.join(required)} "
        f"(allowed actions now: {actions})"
    )


def _states_for(env: str) -> tuple[str, ...] | None:
    """The states a release must be in to be promoted to `env`; a release already there may be
    promoted again. None for an environment the lifecycle does not name."""
    if env == "qa":
        return (RC, QA)
    if env in STABLE_TARGETS:
        return (*STABLE_TARGETS[env], STATE_OF_ENVIRONMENT[env])
    return None
