"""Label and field selectors of the fake Kubernetes API, as kube-apiserver parses them."""

from __future__ import annotations

import pytest

from sandbox.kube.selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "shop", "env": "dev", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("app=shop", True),
        ("app==shop", True),
        ("app!=shop", False),
        ("env in (dev, qa)", True),
        ("env notin (dev,qa)", False),
        ("missing notin (x)", True),
        ("missing!=x", True),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("app=shop,env in (prod)", False),
        ("", True),
    ],
)
def test_label_selector(selector: str, matches: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is matches


def test_label_selector_errors() -> None:
    with pytest.raises(SelectorError):
        parse_label_selector("env in dev")
    with pytest.raises(SelectorError):
        parse_label_selector("a=b c=d")


def test_field_selector() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert fields_match(parse_field_selector("metadata.name=p,status.phase=Running"), pod)
    assert not fields_match(parse_field_selector("status.phase!=Running"), pod)
    assert fields_match(parse_field_selector("metadata.namespace==ns"), pod)
    with pytest.raises(SelectorError):
        parse_field_selector("spec.unknown=1")
