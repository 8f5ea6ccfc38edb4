"""The release lifecycle: every transition, every refusal, and pipelines without qa."""

from __future__ import annotations

import pytest

from core import lifecycle
from core.lifecycle import LifecycleError, Transition, allowed_actions, apply, may_promote

FULL = ["dev", "qa", "staging", "prod"]
NO_QA = ["dev", "staging", "prod"]
SHORT = ["dev", "prod"]


@pytest.mark.parametrize(
    ("state", "action", "target", "expected"),
    [
        ("DEV", "declare-rc", None, Transition("RC")),
        ("RC", "accept-rc", None, Transition("QA", deploys_to="qa")),
        ("RC", "reject-rc", None, Transition("REJECTED")),
        ("QA", "declare-stable", None, Transition("STABLE")),
        ("QA", "declare-rejected", None, Transition("REJECTED")),
        ("STABLE", "deploy-stable", "staging", Transition("STAGING", deploys_to="staging")),
        ("STABLE", "deploy-stable", "prod", Transition("PROD", deploys_to="prod")),
        ("STAGING", "deploy-stable", "prod", Transition("PROD", deploys_to="prod")),
    ],
)
def test_every_transition_of_the_full_pipeline(state, action, target, expected):
    assert apply(state, action, FULL, target) == expected


@pytest.mark.parametrize(
    ("state", "allowed"),
    [
        ("BUILD", []),
        ("DEV", ["declare-rc"]),
        ("RC", ["accept-rc", "reject-rc"]),
        ("QA", ["declare-stable", "declare-rejected"]),
        ("STABLE", ["deploy-stable"]),
        ("STAGING", ["deploy-stable"]),
        ("PROD", []),
        ("REJECTED", []),
    ],
)
def test_allowed_actions_of_each_state(state, allowed):
    assert allowed_actions(state, FULL) == allowed


@pytest.mark.parametrize("state", lifecycle.STATES)
@pytest.mark.parametrize("action", lifecycle.ACTIONS)
def test_every_action_not_allowed_is_refused_naming_the_state(state, action):
    allowed = allowed_actions(state, FULL)
    if action in allowed:
        return
    with pytest.raises(LifecycleError) as refused:
        apply(state, action, FULL, "prod")
    assert refused.value.current == state
    assert refused.value.allowed == allowed
    assert state in str(refused.value)


def test_a_rejected_release_allows_nothing_and_is_never_promoted():
    assert allowed_actions("REJECTED", FULL) == []
    for env in FULL:
        ok, reason = may_promote("REJECTED", env, FULL)
        assert not ok and "REJECTED" in reason
    with pytest.raises(LifecycleError, match="allowed actions: none"):
        apply("REJECTED", "deploy-stable", FULL, "prod")


def test_deploy_stable_needs_a_target_it_can_reach():
    with pytest.raises(LifecycleError, match="without an environment") as missing:
        apply("STABLE", "deploy-stable", FULL)
    assert missing.value.allowed == ["deploy-stable"]
    with pytest.raises(LifecycleError, match="staging, prod"):
        apply("STABLE", "deploy-stable", FULL, "qa")
    # Down the pipeline is not a lifecycle move: a STAGING release goes on to prod only.
    with pytest.raises(LifecycleError, match="it can go to: prod"):
        apply("STAGING", "deploy-stable", FULL, "staging")
    with pytest.raises(LifecycleError):
        apply("STABLE", "deploy-stable", SHORT, "staging")


def test_unknown_action_is_refused():
    with pytest.raises(LifecycleError, match="not a lifecycle action"):
        apply("DEV", "ship-it", FULL)


def test_pipeline_without_qa_declares_stable_on_the_lowest_environment():
    assert allowed_actions("DEV", NO_QA) == ["declare-stable", "declare-rejected"]
    assert apply("DEV", "declare-stable", NO_QA) == Transition("STABLE")
    assert apply("DEV", "declare-rejected", NO_QA) == Transition("REJECTED")
    for action in ("declare-rc", "accept-rc"):
        with pytest.raises(LifecycleError):
            apply("DEV", action, NO_QA)
    assert apply("STABLE", "deploy-stable", NO_QA, "staging").deploys_to == "staging"
    assert allowed_actions("STABLE", SHORT) == ["deploy-stable"]
    assert apply("STABLE", "deploy-stable", SHORT, "prod") == Transition("PROD", "prod")


def test_with_qa_a_dev_release_cannot_skip_to_stable():
    with pytest.raises(LifecycleError) as refused:
        apply("DEV", "declare-stable", FULL)
    assert refused.value.allowed == ["declare-rc"]


def test_states_after_deploy():
    assert [lifecycle.state_after_deploy(env) for env in FULL] == ["DEV", "QA", "STAGING", "PROD"]
    assert lifecycle.state_after_deploy("preview") is None


@pytest.mark.parametrize(
    ("state", "env", "pipeline", "ok"),
    [
        ("RC", "qa", FULL, True),
        ("QA", "qa", FULL, True),
        ("DEV", "qa", FULL, False),
        ("STABLE", "staging", FULL, True),
        ("QA", "staging", FULL, False),
        ("PROD", "staging", FULL, False),
        ("STABLE", "prod", FULL, True),
        ("STAGING", "prod", FULL, True),
        ("PROD", "prod", FULL, True),
        ("QA", "prod", FULL, False),
        ("DEV", "prod", NO_QA, False),
        ("STABLE", "prod", NO_QA, True),
        ("STABLE", "dev", FULL, False),
        ("STABLE", "qa", NO_QA, False),
        ("BUILD", "prod", FULL, False),
        ("DEV", "preview", ["dev", "preview"], True),
    ],
)
def test_may_promote(state, env, pipeline, ok):
    allowed, reason = may_promote(state, env, pipeline)
    assert allowed is ok, reason
    assert reason


def test_may_promote_says_why_in_words():
    assert may_promote("QA", "prod", FULL) == (
        False,
        "the release is QA; prod takes releases that are STABLE or STAGING or PROD "
        "(allowed actions now: declare-stable, declare-rejected)",
    )
    assert "first environment" in may_promote("STABLE", "dev", FULL)[1]
    assert "not in the app's pipeline" in may_promote("STABLE", "qa", NO_QA)[1]
